// Package acme speaks ACME (RFC 8555) with one CA directory and one
// account, one order step at a time, so that the Issue step places at
// most one order per certificate: Place returns an Order that the caller
// persists, and State, Authorize, Finalize and Fetch pick that order up
// again in any later invocation (after a timeout, a crash, a cold start).
// The client keeps no certificate key: NewKeyAndCSR hands the key to the
// caller, who seals it and keeps it with the order before finalizing.
//
// Every request to the CA is a JWS of the package's own (jws.go) over
// lego's types, and honours its context; lego provides the challenge
// types (HTTP-01 and DNS-01 providers, DNS-01 propagation checks), key and
// CSR generation and the ARI certificate ID. Failures come back as the
// types of package failure (Classify), or ErrOrderGone when an order can
// no longer be followed.
//
// The account heals itself: when the CA no longer knows or accepts it
// (a restarted Pebble, a deactivated account), the client registers again,
// replaces the stored account and retries the request once; orders of the
// old account are gone.
package acme

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	legoacme "github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"
	legodns01 "github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/registration"

	"github.com/certflow/certflow/internal/account"
	"github.com/certflow/certflow/internal/failure"
)

const userAgent = "certflow"

// Accounts keeps the ACME account of each directory; *account.Store
// implements it. Implementations must be safe for concurrent use.
type Accounts interface {
	// LoadOrCreate returns the account stored for directoryURL, creating
	// one and registering it through register when there is none.
	LoadOrCreate(ctx context.Context, directoryURL, email string, register func(ctx context.Context, a *account.Account) error) (*account.Account, error)
	// Replace stores next in place of old; account.ErrChanged when old is
	// no longer the stored account.
	Replace(ctx context.Context, old, next *account.Account) error
}

var _ Accounts = (*account.Store)(nil)

// Client talks to one ACME directory with one account. It is built once
// per cold start and is safe for concurrent use.
type Client struct {
	cfg      Config
	accounts Accounts
	poster   *poster
	poll     poller
	now      func() time.Time
	dirJSON  []byte // the directory as served, for keyCore

	mu sync.Mutex // guards id
	id *identity
	// healMu lets one caller at a time replace the account.
	healMu sync.Mutex
}

// identity is the account the client signs with, and a lego core that
// holds its key for lego's challenge types (keyCore).
type identity struct {
	acct *account.Account
	core *api.Core
}

func (id *identity) uri() string { return id.acct.Registration.URI }

func (id *identity) signer() signer { return signer{key: id.acct.Key, kid: id.uri()} }

// New fetches the directory of cfg.DirectoryURL, loads its account (or
// registers one) and returns the client. A client without challenge
// providers (the API's, which only revokes) is fine: an authorization that
// needs a provider it lacks fails with failure.InvalidInputError.
func New(ctx context.Context, cfg Config, accounts Accounts) (*Client, error) {
	cfg = cfg.withDefaults()
	httpClient, err := NewHTTPClient(cfg)
	if err != nil {
		return nil, err
	}
	dir, raw, err := fetchDirectory(ctx, httpClient, cfg.DirectoryURL)
	if err != nil {
		return nil, fmt.Errorf("ACME directory: %w", Classify(err, time.Now()))
	}
	if len(cfg.DNSResolvers) > 0 {
		// lego keeps its resolvers in a package variable: this sets them
		// for the process.
		legodns01.NewChallenge(nil, nil, nil, legodns01.AddRecursiveNameservers(cfg.DNSResolvers))
	}
	c := &Client{
		cfg:      cfg,
		accounts: accounts,
		poster:   &poster{http: httpClient, dir: dir},
		poll:     poller{now: time.Now, sleep: sleep, rand: rand.Float64, margin: cfg.DeadlineMargin},
		now:      time.Now,
		dirJSON:  raw,
	}
	acct, err := accounts.LoadOrCreate(ctx, cfg.DirectoryURL, cfg.Email, c.register)
	if err != nil {
		return nil, fmt.Errorf("ACME account for %s: %w", cfg.DirectoryURL, Classify(err, c.now()))
	}
	if _, err := c.use(acct); err != nil {
		return nil, err
	}
	return c, nil
}

// DirectoryURL returns the ACME directory the client uses.
func (c *Client) DirectoryURL() string { return c.cfg.DirectoryURL }

// AccountURI returns the URL of the account the client uses (the JWS
// kid), as Order.Account records it. It changes when the account heals.
func (c *Client) AccountURI() string { return c.identity().uri() }

// CAAIdentities returns the issuer domain names of the CA (the
// directory's meta.caaIdentities): the names its CAA records and
// dns-persist-01 records (PersistRecord) use.
func (c *Client) CAAIdentities() []string {
	return append([]string(nil), c.poster.dir.Meta.CaaIdentities...)
}

func (c *Client) identity() *identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// use makes acct the account the client signs with.
func (c *Client) use(acct *account.Account) (*identity, error) {
	if acct.Registration == nil || acct.Registration.URI == "" || acct.Key == nil {
		return nil, fmt.Errorf("ACME account for %s has no registration URI or key", c.cfg.DirectoryURL)
	}
	core, err := keyCore(c.dirJSON, acct)
	if err != nil {
		return nil, err
	}
	id := &identity{acct: acct, core: core}
	c.mu.Lock()
	c.id = id
	c.mu.Unlock()
	return id, nil
}

// keyCore returns a lego core that holds acct's key only so that lego's
// challenge types can compute key authorizations. It cannot reach the CA:
// its HTTP client serves the directory lego reads when building it from
// memory and refuses everything else, so every request goes through the
// poster, with its context.
func keyCore(directory []byte, acct *account.Account) (*api.Core, error) {
	client := &http.Client{Transport: directoryOnly(directory)}
	core, err := api.New(client, userAgent, "https://directory.invalid/", acct.Registration.URI, acct.Key)
	if err != nil {
		return nil, fmt.Errorf("lego core: %w", err)
	}
	return core, nil
}

// directoryOnly answers GETs with a directory and refuses other requests.
type directoryOnly []byte

func (d directoryOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet {
		return nil, errors.New("lego's core does not talk to the CA here")
	}
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(bytes.NewReader(d)),
		Request:    r,
	}, nil
}

// register creates a's account at the CA with a's key (newAccount, RFC
// 8555 section 7.3), with the contact, the external account binding when
// configured, and agreement to the terms of service. For a key the CA
// already knows, it returns that key's account.
func (c *Client) register(ctx context.Context, a *account.Account) error {
	req := legoacme.Account{TermsOfServiceAgreed: true}
	if a.Email != "" {
		req.Contact = []string{"mailto:" + a.Email}
	}
	if c.cfg.EAB != nil {
		eab, err := eabJWS(a.Key, c.poster.dir.NewAccountURL, c.cfg.EAB)
		if err != nil {
			return err
		}
		req.ExternalAccountBinding = eab
	}
	r, err := c.poster.postJSON(ctx, signer{key: a.Key}, c.poster.dir.NewAccountURL, req)
	if err != nil {
		return fmt.Errorf("register ACME account: %w", err)
	}
	var body legoacme.Account
	if err := r.decode(&body); err != nil {
		return fmt.Errorf("register ACME account: %w", err)
	}
	uri := r.header.Get("Location")
	if uri == "" {
		return fmt.Errorf("register ACME account: %w", &answerError{Status: r.status, Method: r.method, URL: r.url, Err: errors.New("no Location")})
	}
	a.Registration = &registration.Resource{URI: uri, Body: body}
	return nil
}

// accountGone reports whether err says the CA no longer knows or accepts
// the account that signed the request: it forgot it (accountDoesNotExist,
// as Pebble after a restart) or deactivated or revoked it (unauthorized,
// about the account).
func accountGone(err error) bool {
	var p *legoacme.ProblemDetails
	if !errors.As(err, &p) {
		return false
	}
	switch strings.TrimPrefix(p.Type, problemPrefix) {
	case "accountDoesNotExist":
		return true
	case "unauthorized":
		d := strings.ToLower(p.Detail)
		return strings.Contains(d, "account") &&
			(strings.Contains(d, "deactivated") || strings.Contains(d, "revoked") || strings.Contains(d, "not valid"))
	}
	return false
}

// withAccount runs op with the client's account. When the CA says the
// account is gone, it heals the account and runs op once more with the
// new one.
func (c *Client) withAccount(ctx context.Context, op func(*identity) error) error {
	id := c.identity()
	err := op(id)
	if !accountGone(err) {
		return err
	}
	next, herr := c.heal(ctx, id)
	if herr != nil {
		return fmt.Errorf("replace the account the CA no longer accepts (%v): %w", err, herr)
	}
	return op(next)
}

// heal replaces stale, the account the CA no longer accepts, and returns
// the identity to use from now on: the stored account when another cold
// start replaced it already, else a new registration, of stale's key when
// the CA takes it again and of a new key otherwise, stored with
// Accounts.Replace. Callers healing at once converge on one account.
func (c *Client) heal(ctx context.Context, stale *identity) (*identity, error) {
	c.healMu.Lock()
	defer c.healMu.Unlock()
	if cur := c.identity(); cur != stale {
		return cur, nil
	}
	load := func() (*account.Account, error) {
		return c.accounts.LoadOrCreate(ctx, c.cfg.DirectoryURL, c.cfg.Email, c.register)
	}
	stored, err := load()
	if err != nil {
		return nil, Classify(err, c.now())
	}
	if stored.Registration != nil && stored.Registration.URI != stale.uri() {
		return c.use(stored)
	}
	next, err := c.reregister(ctx, stored)
	if err != nil {
		return nil, Classify(err, c.now())
	}
	switch err := c.accounts.Replace(ctx, stored, next); {
	case errors.Is(err, account.ErrChanged):
		if next, err = load(); err != nil {
			return nil, Classify(err, c.now())
		}
	case err != nil:
		return nil, err
	}
	return c.use(next)
}

// reregister registers old's key again, or a new key when the CA refuses
// it (the key of a deactivated account cannot register). A CA that fails
// (no problem document, 5xx, badNonce) keeps the key for the next try.
func (c *Client) reregister(ctx context.Context, old *account.Account) (*account.Account, error) {
	next := &account.Account{DirectoryURL: old.DirectoryURL, Email: c.cfg.Email, Key: old.Key}
	err := c.register(ctx, next)
	var p *legoacme.ProblemDetails
	var bad *legoacme.NonceError
	if err == nil || !errors.As(err, &p) || p.HTTPStatus >= http.StatusInternalServerError || errors.As(err, &bad) {
		return next, err
	}
	key, kerr := account.NewKey()
	if kerr != nil {
		return nil, kerr
	}
	next = &account.Account{DirectoryURL: old.DirectoryURL, Email: c.cfg.Email, Key: key}
	if err := c.register(ctx, next); err != nil {
		return nil, err
	}
	return next, nil
}

// enough returns a TransientError (CodeStepTimeout) when ctx ends within
// the configured margin: a phase started now would be cut off, and the
// caller resumes the order on its next attempt instead.
func (c *Client) enough(ctx context.Context, phase string) error {
	if err := ctx.Err(); err != nil {
		return cut(ctx, phase, err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		if left := deadline.Sub(c.now()); left < c.cfg.DeadlineMargin {
			return &failure.TransientError{Code: failure.CodeStepTimeout,
				Message: fmt.Sprintf("%s: %s left before the step's deadline, less than the %s margin", phase, left.Round(time.Millisecond), c.cfg.DeadlineMargin),
				Err:     errNotSent}
		}
	}
	return nil
}

// NewHTTPClient returns an HTTP client for the CA of cfg: system roots plus
// cfg.CARoots, and cfg.HTTPTimeout per request. Other clients of the CA (the
// ARI client) use it.
func NewHTTPClient(cfg Config) (*http.Client, error) {
	cfg = cfg.withDefaults()
	t, err := newTransport(cfg)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: cfg.HTTPTimeout, Transport: t}, nil
}

func newTransport(cfg Config) (*http.Transport, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if cfg.CARoots != "" {
		pemBytes, err := os.ReadFile(cfg.CARoots)
		if err != nil {
			return nil, fmt.Errorf("read ACME CA roots: %w", err)
		}
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("read ACME CA roots %s: no PEM certificate found", cfg.CARoots)
		}
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: cfg.HTTPTimeout,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}, nil
}
