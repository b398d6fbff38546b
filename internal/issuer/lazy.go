package issuer

import (
	"context"
	"fmt"
	"sync"
)

// Lazy builds its Issuer on first use and retries on the next call if that
// failed, so that a CA or account store that is briefly unavailable fails
// one invocation (with a classified error) instead of the function's cold
// start. It is safe for concurrent use.
type Lazy struct {
	cfg      Config
	accounts Accounts

	mu     sync.Mutex
	issuer *Issuer
}

// NewLazy returns a Lazy for cfg and accounts; nothing is contacted yet.
func NewLazy(cfg Config, accounts Accounts) *Lazy {
	return &Lazy{cfg: cfg, accounts: accounts}
}

// Issuer returns the Issuer, building it if needed.
func (l *Lazy) Issuer(ctx context.Context) (*Issuer, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.issuer != nil {
		return l.issuer, nil
	}
	i, err := New(ctx, l.cfg, l.accounts)
	if err != nil {
		return nil, fmt.Errorf("set up ACME client: %w", err)
	}
	l.issuer = i
	return i, nil
}

// Obtain is Issuer.Obtain on the lazily built Issuer.
func (l *Lazy) Obtain(ctx context.Context, req Request) (*Certificate, error) {
	i, err := l.Issuer(ctx)
	if err != nil {
		return nil, err
	}
	return i.Obtain(ctx, req)
}
