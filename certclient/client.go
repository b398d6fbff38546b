// Package certclient is a caching client for certflow's certificate delivery
// endpoint, for edge proxies that pick a certificate per TLS handshake:
//
//	c, err := certclient.New(certclient.Config{BaseURL: "https://delivery.example.net"})
//	...
//	srv := &http.Server{TLSConfig: &tls.Config{GetCertificate: c.GetCertificate}}
//
// The client asks GET {BaseURL}/sni/{name} once per name and then answers
// handshakes from a bounded in-memory cache (W-TinyLFU, see otterStore).
// Concurrent handshakes for a name that is not cached share one backend
// request, and at most MaxConcurrentFetches backend requests run at once: a
// handshake for an uncached name that finds them all busy waits briefly and
// then fails with ErrBusy instead of queueing. A cached certificate is
// revalidated in the background (with If-None-Match) when the response's
// Cache-Control max-age has passed or when the certificate nears its expiry,
// and the cached certificate keeps being served meanwhile. When the endpoint
// is unreachable or failing, a cached certificate keeps being served until
// its NotAfter, never after.
//
// Names the endpoint does not know (404) are cached as misses, in a cache of
// their own (MaxNegativeEntries), so junk SNI values neither reach the
// backend on every handshake nor push real certificates out of the cache.
//
// Returned certificates are shared between handshakes and must not be
// modified.
package certclient

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults used when the corresponding Config field is zero.
const (
	DefaultMaxEntries           = 10000
	DefaultMaxNegativeEntries   = 10000
	DefaultMaxConcurrentFetches = 64
	DefaultNegativeTTL          = 60 * time.Second
	DefaultTimeout              = 5 * time.Second
	// DefaultMaxAge is how long a response without a Cache-Control max-age
	// counts as fresh.
	DefaultMaxAge = 5 * time.Minute
)

const (
	// retryAfterFailure spaces background refreshes of a name whose last
	// refresh failed, so an outage does not turn every handshake into a
	// backend request.
	retryAfterFailure = 30 * time.Second
	// errorTTL is how long a failed fetch for an uncached name is
	// remembered, for the same reason.
	errorTTL = 5 * time.Second
	// minRevalidate is the shortest interval between revalidations of one
	// name, whatever max-age the endpoint sends.
	minRevalidate = 5 * time.Second
	// fetchSlotWait is how long a fetch waits for one of the
	// MaxConcurrentFetches slots before giving up with ErrBusy: long enough
	// to ride out a burst of new names at a proxy's start, short enough
	// that a flood of junk names cannot pile up waiting handshakes.
	fetchSlotWait = 100 * time.Millisecond
)

var (
	// ErrNotFound means the delivery endpoint has no certificate for the name.
	ErrNotFound = errors.New("no certificate for this name")
	// ErrInvalidName means the server name cannot be a certificate name
	// (empty, too long, or containing characters other than letters,
	// digits, hyphens and dots); the endpoint is not asked.
	ErrInvalidName = errors.New("invalid server name")
	// ErrBusy means the name is not cached and MaxConcurrentFetches backend
	// requests were already under way; the endpoint is not asked and the
	// answer is not cached.
	ErrBusy = errors.New("too many certificate fetches under way")
)

// Doer sends HTTP requests. *http.Client implements it. It must be safe for
// concurrent use.
type Doer interface {
	Do(req *http.Request) (*http.Response, error)
}

// Hooks are optional callbacks for metrics and logging. They are called
// synchronously on the handshake or refresh path, so they must be fast and
// safe for concurrent use. Nil hooks are skipped.
type Hooks struct {
	// OnHit is called when a handshake is answered from the cache.
	OnHit func(name string)
	// OnStale is called, after OnHit, when the certificate served is kept
	// only because its last refresh failed (the endpoint is down or
	// failing); it is still valid, or it would not be served.
	OnStale func(name string)
	// OnMiss is called when a name has to be fetched before the handshake
	// can continue.
	OnMiss func(name string)
	// OnNegativeHit is called when a handshake is refused from the cache
	// because the name was recently not found or failed.
	OnNegativeHit func(name string)
	// OnRefresh is called when a background refresh ends; err is nil when
	// the cached entry was confirmed or replaced.
	OnRefresh func(name string, err error)
	// OnFetch is called after every backend request with how long it took
	// and its error, nil for any answer the contract defines (200, 304 and
	// 404).
	OnFetch func(name string, took time.Duration, err error)
	// OnError is called for every failed backend request. err never
	// contains key material.
	OnError func(name string, err error)
}

// Config configures a Client. The zero value of every field except BaseURL
// means the documented default.
type Config struct {
	// BaseURL is the delivery endpoint without the /sni/ path, for example
	// "https://abc.execute-api.eu-west-1.amazonaws.com". Required. It must
	// be https:// unless AllowInsecureHTTP is set: the answers carry
	// private keys.
	BaseURL string
	// AllowInsecureHTTP accepts an http:// BaseURL, for a local endpoint
	// such as the offline stack's API on 127.0.0.1.
	AllowInsecureHTTP bool
	// HTTPClient sends the requests. Default: an *http.Client using
	// http.DefaultTransport.
	HTTPClient Doer
	// MaxEntries bounds the number of cached certificates.
	// Default DefaultMaxEntries.
	MaxEntries int
	// MaxNegativeEntries bounds the number of cached negative answers (names
	// not found, and recent failures), which are kept apart from the
	// certificates so that they never evict one. Default
	// DefaultMaxNegativeEntries.
	MaxNegativeEntries int
	// MaxConcurrentFetches bounds the backend requests under way at once,
	// background refreshes included. Default DefaultMaxConcurrentFetches.
	MaxConcurrentFetches int
	// RefreshBefore starts a background refresh this long before a cached
	// certificate's NotAfter. Default: when a third of the certificate's
	// validity period remains (day 60 of a 90-day certificate). A refresh
	// also starts when the response's max-age has passed, whichever is
	// first.
	RefreshBefore time.Duration
	// NegativeTTL is how long a 404 is cached when the response carries no
	// Cache-Control max-age. Default DefaultNegativeTTL.
	NegativeTTL time.Duration
	// Timeout bounds each backend request, including retries the Doer may
	// do. Default DefaultTimeout.
	Timeout time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// RequestSigner, if set, is called on every request just before it is
	// sent, for example to sign it with AWS SigV4 for IAM authorisation.
	RequestSigner func(req *http.Request) error
	// Hooks are optional observation callbacks.
	Hooks Hooks
}

// Client fetches and caches certificates. It is safe for concurrent use.
type Client struct {
	baseURL       string
	doer          Doer
	refreshBefore time.Duration
	negativeTTL   time.Duration
	timeout       time.Duration
	slotWait      time.Duration
	now           func() time.Time
	sign          func(*http.Request) error
	hooks         Hooks

	group     singleflight.Group
	slots     chan struct{} // one token per backend request under way
	certs     store[*entry]
	negatives store[*negative]
}

// entry is one cached certificate. Entries are replaced, never modified,
// except for the refreshing flag.
type entry struct {
	cert      *tls.Certificate
	notAfter  time.Time // cert.Leaf.NotAfter, kept here to spare a pointer chase per handshake
	etag      string
	refreshAt time.Time // start a background refresh at or after this
	stale     bool      // the last refresh failed
	// refreshing is set by the handshake that starts a background refresh,
	// so that one refresh runs however many handshakes see it due.
	refreshing atomic.Bool
}

// negative is one cached negative answer: the name was not found, or
// fetching it failed.
type negative struct {
	err   error
	until time.Time // the answer stands until this
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	base := strings.TrimRight(cfg.BaseURL, "/")
	switch {
	case strings.HasPrefix(base, "https://"):
	case strings.HasPrefix(base, "http://"):
		if !cfg.AllowInsecureHTTP {
			return nil, fmt.Errorf("certclient: BaseURL %q is http://: private keys would cross the network in clear; use https:// or set AllowInsecureHTTP for a local endpoint", cfg.BaseURL)
		}
	default:
		return nil, fmt.Errorf("certclient: BaseURL %q must be an https:// URL", cfg.BaseURL)
	}
	if cfg.MaxEntries < 0 || cfg.MaxNegativeEntries < 0 || cfg.MaxConcurrentFetches < 0 || cfg.RefreshBefore < 0 || cfg.NegativeTTL < 0 || cfg.Timeout < 0 {
		return nil, errors.New("certclient: MaxEntries, MaxNegativeEntries, MaxConcurrentFetches, RefreshBefore, NegativeTTL and Timeout must not be negative")
	}
	certs, err := newOtterStore[*entry](cmp.Or(cfg.MaxEntries, DefaultMaxEntries))
	if err != nil {
		return nil, fmt.Errorf("certclient: %w", err)
	}
	negatives, err := newOtterStore[*negative](cmp.Or(cfg.MaxNegativeEntries, DefaultMaxNegativeEntries))
	if err != nil {
		return nil, fmt.Errorf("certclient: %w", err)
	}
	return newClient(base, cfg, certs, negatives), nil
}

// newClient assembles a Client from validated parts; benchmarks use it to
// try other stores.
func newClient(base string, cfg Config, certs store[*entry], negatives store[*negative]) *Client {
	c := &Client{
		baseURL:       base,
		doer:          cfg.HTTPClient,
		refreshBefore: cfg.RefreshBefore,
		negativeTTL:   cmp.Or(cfg.NegativeTTL, DefaultNegativeTTL),
		timeout:       cmp.Or(cfg.Timeout, DefaultTimeout),
		slotWait:      fetchSlotWait,
		now:           cfg.Now,
		sign:          cfg.RequestSigner,
		hooks:         cfg.Hooks,
		slots:         make(chan struct{}, cmp.Or(cfg.MaxConcurrentFetches, DefaultMaxConcurrentFetches)),
		certs:         certs,
		negatives:     negatives,
	}
	if c.doer == nil {
		c.doer = &http.Client{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// GetCertificate returns the certificate for the handshake's server name. It
// has the signature of tls.Config.GetCertificate. A handshake without SNI
// fails with ErrInvalidName; wrap GetCertificate to serve a default
// certificate instead.
func (c *Client) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	ctx := hello.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return c.Get(ctx, hello.ServerName)
}

// Get returns the certificate for name, from the cache when it holds a
// certificate that has not expired. name is matched case-insensitively and
// may end in a dot. The error wraps ErrNotFound when the endpoint has no
// certificate for name, ErrInvalidName when name cannot be one, and ErrBusy
// when name is not cached and the backend requests allowed at once are all
// under way. ctx bounds how long the caller waits; a backend request already
// under way continues for other callers.
func (c *Client) Get(ctx context.Context, name string) (*tls.Certificate, error) {
	key, err := normalizeName(name)
	if err != nil {
		return nil, err
	}
	now := c.now()
	if e, ok := c.certs.Get(key); ok && now.Before(e.notAfter) {
		if !now.Before(e.refreshAt) && e.refreshing.CompareAndSwap(false, true) {
			c.startRefresh(key, e)
		}
		if c.hooks.OnHit != nil {
			c.hooks.OnHit(key)
		}
		if e.stale && c.hooks.OnStale != nil {
			c.hooks.OnStale(key)
		}
		return e.cert, nil
	}
	if n, ok := c.negatives.Get(key); ok && now.Before(n.until) {
		if c.hooks.OnNegativeHit != nil {
			c.hooks.OnNegativeHit(key)
		}
		return nil, fmt.Errorf("get certificate %q: %w", key, n.err)
	}
	if c.hooks.OnMiss != nil {
		c.hooks.OnMiss(key)
	}

	ch := c.group.DoChan(key, func() (any, error) {
		// A flight that finished just before this one started may have
		// filled the cache already.
		if cert, err, ok := c.cached(key); ok {
			return cert, err
		}
		if err := c.acquire(); err != nil {
			return nil, err
		}
		defer c.release()
		return c.fetchAndStore(key)
	})
	select {
	case r := <-ch:
		// A certificate comes with an error when a refresh failed but the
		// cached certificate is still valid: serve it.
		if cert, _ := r.Val.(*tls.Certificate); cert != nil {
			return cert, nil
		}
		return nil, fmt.Errorf("get certificate %q: %w", key, r.Err)
	case <-ctx.Done():
		return nil, fmt.Errorf("get certificate %q: %w", key, ctx.Err())
	}
}

// cached returns the current answer for name if the cache has a usable one.
func (c *Client) cached(name string) (*tls.Certificate, error, bool) {
	now := c.now()
	if e, ok := c.certs.Get(name); ok && now.Before(e.notAfter) {
		return e.cert, nil, true
	}
	if n, ok := c.negatives.Get(name); ok && now.Before(n.until) {
		return nil, n.err, true
	}
	return nil, nil, false
}

// acquire takes a backend request slot, waiting at most c.slotWait.
func (c *Client) acquire() error {
	select {
	case c.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(c.slotWait)
	defer t.Stop()
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-t.C:
		return ErrBusy
	}
}

func (c *Client) release() { <-c.slots }

// startRefresh revalidates e, cached for name, in the background if a
// backend request slot is free. When none is, the refresh is left to a
// later handshake: a cached certificate is still being served, so nothing
// waits for it.
func (c *Client) startRefresh(name string, e *entry) {
	select {
	case c.slots <- struct{}{}:
	default:
		e.refreshing.Store(false)
		return
	}
	go func() {
		defer c.release()
		_, err, _ := c.group.Do(name, func() (any, error) { return c.fetchAndStore(name) })
		e.refreshing.Store(false)
		if c.hooks.OnRefresh != nil {
			c.hooks.OnRefresh(name, err)
		}
	}()
}

// fetchAndStore asks the endpoint about name, updates the cache and returns
// what a handshake for name should get now: a certificate, an error, or a
// still-valid cached certificate together with the error that prevented its
// refresh. It runs inside a singleflight call shared by several handshakes,
// so it uses its own context rather than any one caller's; the caller holds
// a backend request slot.
func (c *Client) fetchAndStore(name string) (*tls.Certificate, error) {
	old, _ := c.certs.Get(name)
	var etag string
	if old != nil {
		etag = old.etag
	}

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	start := time.Now()
	res, err := c.fetch(ctx, name, etag)
	if c.hooks.OnFetch != nil {
		c.hooks.OnFetch(name, time.Since(start), err)
	}
	now := c.now()
	if err == nil && res.cert != nil {
		err = checkCertificate(res.cert.Leaf, name, now)
	}
	if err != nil && c.hooks.OnError != nil {
		c.hooks.OnError(name, err)
	}

	oldValid := old != nil && now.Before(old.notAfter)
	switch {
	case err != nil:
		if oldValid {
			// Keep serving what we have; try again later.
			c.certs.Set(name, &entry{cert: old.cert, notAfter: old.notAfter, etag: old.etag, refreshAt: now.Add(retryAfterFailure), stale: true})
			return old.cert, err
		}
		c.negatives.Set(name, &negative{err: err, until: now.Add(errorTTL)})
		return nil, err
	case res.notFound:
		ttl := c.negativeTTL
		if res.hasMaxAge {
			ttl = res.maxAge
		}
		c.certs.Delete(name)
		c.negatives.Set(name, &negative{err: ErrNotFound, until: now.Add(ttl)})
		return nil, ErrNotFound
	case res.notModified:
		if !oldValid {
			err := fmt.Errorf("endpoint answered 304 Not Modified but no unexpired certificate for %q is cached", name)
			c.negatives.Set(name, &negative{err: err, until: now.Add(errorTTL)})
			return nil, err
		}
		c.certs.Set(name, &entry{cert: old.cert, notAfter: old.notAfter, etag: cmp.Or(res.etag, old.etag), refreshAt: c.refreshTime(old.cert.Leaf, now, res)})
		return old.cert, nil
	default:
		c.negatives.Delete(name)
		c.certs.Set(name, &entry{cert: res.cert, notAfter: res.cert.Leaf.NotAfter, etag: res.etag, refreshAt: c.refreshTime(res.cert.Leaf, now, res)})
		return res.cert, nil
	}
}

// checkCertificate refuses certificates that cannot serve name now.
func checkCertificate(leaf *x509.Certificate, name string, now time.Time) error {
	if !now.Before(leaf.NotAfter) {
		return fmt.Errorf("endpoint returned a certificate for %q that expired at %s", name, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if err := leaf.VerifyHostname(name); err != nil {
		return fmt.Errorf("endpoint returned a certificate that does not cover %q: %w", name, err)
	}
	return nil
}

// refreshTime is when a certificate fetched at now should be revalidated:
// when the response's max-age runs out or when the certificate enters its
// renewal window, whichever is first, but not sooner than minRevalidate.
func (c *Client) refreshTime(leaf *x509.Certificate, now time.Time, res response) time.Time {
	maxAge := DefaultMaxAge
	if res.hasMaxAge {
		maxAge = res.maxAge
	}
	next := now.Add(max(maxAge, minRevalidate))
	before := c.refreshBefore
	if before == 0 {
		before = leaf.NotAfter.Sub(leaf.NotBefore) / 3
	}
	// Inside the renewal window already (the endpoint has not got a newer
	// certificate yet): keep asking at the max-age pace.
	if renew := leaf.NotAfter.Add(-before); renew.After(now) && renew.Before(next) {
		next = renew
	}
	return next
}

// Len returns about how many certificates are cached. Negative answers are
// held apart and not counted.
func (c *Client) Len() int { return c.certs.Len() }

// normalizeName lower-cases name and removes one trailing dot, and rejects
// names that cannot be a certificate name without asking the endpoint. It
// does not allocate for names that are already lower case.
func normalizeName(name string) (string, error) {
	n := strings.TrimSuffix(name, ".")
	if n == "" || len(n) > 253 {
		return "", fmt.Errorf("get certificate %q: %w", truncate(name), ErrInvalidName)
	}
	prev := byte('.')
	for i := 0; i < len(n); i++ {
		ch := n[i]
		ok := 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '.' && prev != '.'
		if !ok {
			return "", fmt.Errorf("get certificate %q: %w", truncate(name), ErrInvalidName)
		}
		prev = ch
	}
	return strings.ToLower(n), nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}
