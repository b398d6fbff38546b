package acme

import (
	"context"
	"fmt"
	"sync"
)

// Lazy builds its Client on first use and retries on the next call if that
// failed, so that a CA or account store that is briefly unavailable fails
// one invocation (with a classified error) instead of the function's cold
// start. Its methods are the Client's. It is safe for concurrent use.
type Lazy struct {
	cfg      Config
	accounts Accounts

	mu     sync.Mutex
	client *Client
}

// NewLazy returns a Lazy for cfg and accounts; nothing is contacted yet.
func NewLazy(cfg Config, accounts Accounts) *Lazy {
	return &Lazy{cfg: cfg.withDefaults(), accounts: accounts}
}

// Client returns the Client, building it if needed.
func (l *Lazy) Client(ctx context.Context) (*Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.client != nil {
		return l.client, nil
	}
	c, err := New(ctx, l.cfg, l.accounts)
	if err != nil {
		return nil, fmt.Errorf("set up ACME client: %w", err)
	}
	l.client = c
	return c, nil
}

// DirectoryURL is Client.DirectoryURL; it needs no client.
func (l *Lazy) DirectoryURL() string { return l.cfg.DirectoryURL }

// NewKeyAndCSR is Client.NewKeyAndCSR; it needs no client.
func (l *Lazy) NewKeyAndCSR(names []string) (keyPEM, csrDER []byte, err error) {
	return newKeyAndCSR(l.cfg.KeyType, names)
}

// AccountURI is Client.AccountURI on the lazily built Client.
func (l *Lazy) AccountURI(ctx context.Context) (string, error) {
	c, err := l.Client(ctx)
	if err != nil {
		return "", err
	}
	return c.AccountURI(), nil
}

// Place is Client.Place on the lazily built Client.
func (l *Lazy) Place(ctx context.Context, names []string, replaces, profile string) (Order, error) {
	c, err := l.Client(ctx)
	if err != nil {
		return Order{}, err
	}
	return c.Place(ctx, names, replaces, profile)
}

// State is Client.State on the lazily built Client.
func (l *Lazy) State(ctx context.Context, o Order) (OrderState, error) {
	c, err := l.Client(ctx)
	if err != nil {
		return OrderState{}, err
	}
	return c.State(ctx, o)
}

// Authorize is Client.Authorize on the lazily built Client.
func (l *Lazy) Authorize(ctx context.Context, o Order, m Method) error {
	c, err := l.Client(ctx)
	if err != nil {
		return err
	}
	return c.Authorize(ctx, o, m)
}

// Finalize is Client.Finalize on the lazily built Client.
func (l *Lazy) Finalize(ctx context.Context, o Order, csrDER []byte) (OrderState, error) {
	c, err := l.Client(ctx)
	if err != nil {
		return OrderState{}, err
	}
	return c.Finalize(ctx, o, csrDER)
}

// Fetch is Client.Fetch on the lazily built Client.
func (l *Lazy) Fetch(ctx context.Context, o Order) (*Certificate, error) {
	c, err := l.Client(ctx)
	if err != nil {
		return nil, err
	}
	return c.Fetch(ctx, o)
}

// Revoke is Client.Revoke on the lazily built Client.
func (l *Lazy) Revoke(ctx context.Context, certPEM []byte, reason uint) error {
	c, err := l.Client(ctx)
	if err != nil {
		return err
	}
	return c.Revoke(ctx, certPEM, reason)
}
