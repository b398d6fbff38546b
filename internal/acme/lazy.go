package acme

import (
	"context"
	"fmt"
	"sync"
)

// Lazy builds its Client on first use and retries on the next call if that
// failed, so that a CA or account store that is briefly unavailable fails
// one invocation (with a classified error) instead of the function's cold
// start. It is safe for concurrent use.
type Lazy struct {
	cfg      Config
	accounts Accounts

	mu     sync.Mutex
	client *Client
}

// NewLazy returns a Lazy for cfg and accounts; nothing is contacted yet.
func NewLazy(cfg Config, accounts Accounts) *Lazy {
	return &Lazy{cfg: cfg, accounts: accounts}
}

// Client returns the Client, building it if needed.
func (l *Lazy) Client(ctx context.Context) (*Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.client != nil {
		return l.client, nil
	}
	i, err := New(ctx, l.cfg, l.accounts)
	if err != nil {
		return nil, fmt.Errorf("set up ACME client: %w", err)
	}
	l.client = i
	return i, nil
}

// Obtain is Client.Obtain on the lazily built Client.
func (l *Lazy) Obtain(ctx context.Context, req Request) (*Certificate, error) {
	i, err := l.Client(ctx)
	if err != nil {
		return nil, err
	}
	return i.Obtain(ctx, req)
}
