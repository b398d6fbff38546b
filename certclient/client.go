// Package certclient is a caching client for certflow's certificate delivery
// endpoint, for edge proxies that pick a certificate per TLS handshake:
//
//	c, err := certclient.New(certclient.Config{BaseURL: "https://delivery.example.net"})
//	...
//	srv := &http.Server{TLSConfig: &tls.Config{GetCertificate: c.GetCertificate}}
//
// The client asks GET {BaseURL}/sni/{name} once per name and then answers
// handshakes from a bounded in-memory LRU cache. Concurrent handshakes for a
// name that is not cached share one backend request. A cached certificate is
// revalidated in the background (with If-None-Match) when the response's
// Cache-Control max-age has passed or when the certificate nears its expiry,
// and the cached certificate keeps being served meanwhile. When the endpoint
// is unreachable or failing, a cached certificate keeps being served until
// its NotAfter, never after. Names the endpoint does not know (404) are
// cached as misses, so junk SNI values do not reach the backend on every
// handshake.
//
// Returned certificates are shared between handshakes and must not be
// modified.
package certclient

import (
	"cmp"
	"container/list"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults used when the corresponding Config field is zero.
const (
	DefaultMaxEntries  = 10000
	DefaultNegativeTTL = 60 * time.Second
	DefaultTimeout     = 5 * time.Second
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
)

var (
	// ErrNotFound means the delivery endpoint has no certificate for the name.
	ErrNotFound = errors.New("no certificate for this name")
	// ErrInvalidName means the server name cannot be a certificate name
	// (empty, too long, or containing characters other than letters,
	// digits, hyphens and dots); the endpoint is not asked.
	ErrInvalidName = errors.New("invalid server name")
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
	// OnMiss is called when a name has to be fetched before the handshake
	// can continue.
	OnMiss func(name string)
	// OnNegativeHit is called when a handshake is refused from the cache
	// because the name was recently not found or failed.
	OnNegativeHit func(name string)
	// OnRefresh is called when a background refresh ends; err is nil when
	// the cached entry was confirmed or replaced.
	OnRefresh func(name string, err error)
	// OnError is called for every failed backend request. err never
	// contains key material.
	OnError func(name string, err error)
}

// Config configures a Client. The zero value of every field except BaseURL
// means the documented default.
type Config struct {
	// BaseURL is the delivery endpoint without the /sni/ path, for example
	// "https://abc.execute-api.eu-west-1.amazonaws.com". Required.
	BaseURL string
	// HTTPClient sends the requests. Default: an *http.Client using
	// http.DefaultTransport.
	HTTPClient Doer
	// MaxEntries bounds the number of cached names, found or not.
	// Default DefaultMaxEntries.
	MaxEntries int
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
	maxEntries    int
	refreshBefore time.Duration
	negativeTTL   time.Duration
	timeout       time.Duration
	now           func() time.Time
	sign          func(*http.Request) error
	hooks         Hooks

	group singleflight.Group

	mu    sync.Mutex
	lru   *list.List // of *entry; front is most recently used
	items map[string]*list.Element
}

// entry is one cached name: a certificate (cert != nil) or a negative
// answer (err != nil). Fields are guarded by Client.mu; cert is immutable.
type entry struct {
	name string

	cert       *tls.Certificate
	notAfter   time.Time // cert.Leaf.NotAfter, kept here to spare a pointer chase per handshake
	etag       string
	refreshAt  time.Time // start a background refresh at or after this
	refreshing bool

	err   error
	until time.Time // the negative answer stands until this
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	base := strings.TrimRight(cfg.BaseURL, "/")
	if !strings.HasPrefix(base, "https://") && !strings.HasPrefix(base, "http://") {
		return nil, fmt.Errorf("certclient: BaseURL %q must be an http:// or https:// URL", cfg.BaseURL)
	}
	if cfg.MaxEntries < 0 || cfg.RefreshBefore < 0 || cfg.NegativeTTL < 0 || cfg.Timeout < 0 {
		return nil, errors.New("certclient: MaxEntries, RefreshBefore, NegativeTTL and Timeout must not be negative")
	}
	c := &Client{
		baseURL:       base,
		doer:          cfg.HTTPClient,
		maxEntries:    cmp.Or(cfg.MaxEntries, DefaultMaxEntries),
		refreshBefore: cfg.RefreshBefore,
		negativeTTL:   cmp.Or(cfg.NegativeTTL, DefaultNegativeTTL),
		timeout:       cmp.Or(cfg.Timeout, DefaultTimeout),
		now:           cfg.Now,
		sign:          cfg.RequestSigner,
		hooks:         cfg.Hooks,
		lru:           list.New(),
		items:         make(map[string]*list.Element),
	}
	if c.doer == nil {
		c.doer = &http.Client{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
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
// certificate for name and ErrInvalidName when name cannot be one. ctx
// bounds how long the caller waits; a backend request already under way
// continues for other callers.
func (c *Client) Get(ctx context.Context, name string) (*tls.Certificate, error) {
	key, err := normalizeName(name)
	if err != nil {
		return nil, err
	}
	now := c.now()
	c.mu.Lock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*entry)
		switch {
		case e.cert != nil && now.Before(e.notAfter):
			c.lru.MoveToFront(el)
			cert := e.cert
			refresh := !e.refreshing && !now.Before(e.refreshAt)
			if refresh {
				e.refreshing = true
			}
			c.mu.Unlock()
			if refresh {
				go c.refresh(key)
			}
			if c.hooks.OnHit != nil {
				c.hooks.OnHit(key)
			}
			return cert, nil
		case e.err != nil && now.Before(e.until):
			c.lru.MoveToFront(el)
			err := e.err
			c.mu.Unlock()
			if c.hooks.OnNegativeHit != nil {
				c.hooks.OnNegativeHit(key)
			}
			return nil, fmt.Errorf("get certificate %q: %w", key, err)
		}
	}
	c.mu.Unlock()
	if c.hooks.OnMiss != nil {
		c.hooks.OnMiss(key)
	}

	ch := c.group.DoChan(key, func() (any, error) {
		// A flight that finished just before this one started may have
		// filled the cache already.
		if cert, err, ok := c.cached(key); ok {
			return cert, err
		}
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
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[name]
	if !ok {
		return nil, nil, false
	}
	e := el.Value.(*entry)
	switch {
	case e.cert != nil && now.Before(e.notAfter):
		return e.cert, nil, true
	case e.err != nil && now.Before(e.until):
		return nil, e.err, true
	}
	return nil, nil, false
}

// refresh revalidates a cached certificate in the background.
func (c *Client) refresh(name string) {
	_, err, _ := c.group.Do(name, func() (any, error) { return c.fetchAndStore(name) })
	c.mu.Lock()
	if el, ok := c.items[name]; ok {
		el.Value.(*entry).refreshing = false
	}
	c.mu.Unlock()
	if c.hooks.OnRefresh != nil {
		c.hooks.OnRefresh(name, err)
	}
}

// fetchAndStore asks the endpoint about name, updates the cache and returns
// what a handshake for name should get now: a certificate, an error, or a
// still-valid cached certificate together with the error that prevented its
// refresh. It runs inside a singleflight
// call shared by several handshakes, so it uses its own context rather than
// any one caller's.
func (c *Client) fetchAndStore(name string) (*tls.Certificate, error) {
	c.mu.Lock()
	var etag string
	if el, ok := c.items[name]; ok {
		etag = el.Value.(*entry).etag
	}
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	res, err := c.fetch(ctx, name, etag)
	now := c.now()
	if err == nil && res.cert != nil {
		err = checkCertificate(res.cert.Leaf, name, now)
	}
	if err != nil && c.hooks.OnError != nil {
		c.hooks.OnError(name, err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	var old *entry
	if el, ok := c.items[name]; ok {
		old = el.Value.(*entry)
	}
	oldValid := old != nil && old.cert != nil && now.Before(old.notAfter)

	switch {
	case err != nil:
		if oldValid {
			// Keep serving what we have; try again later.
			old.refreshAt = now.Add(retryAfterFailure)
			return old.cert, err
		}
		c.put(&entry{name: name, err: err, until: now.Add(errorTTL)})
		return nil, err
	case res.notFound:
		ttl := c.negativeTTL
		if res.hasMaxAge {
			ttl = res.maxAge
		}
		c.put(&entry{name: name, err: ErrNotFound, until: now.Add(ttl)})
		return nil, ErrNotFound
	case res.notModified:
		if !oldValid {
			err := fmt.Errorf("endpoint answered 304 Not Modified but no unexpired certificate for %q is cached", name)
			c.put(&entry{name: name, err: err, until: now.Add(errorTTL)})
			return nil, err
		}
		old.refreshAt = c.refreshTime(old.cert.Leaf, now, res)
		if res.etag != "" {
			old.etag = res.etag
		}
		return old.cert, nil
	default:
		c.put(&entry{name: name, cert: res.cert, notAfter: res.cert.Leaf.NotAfter, etag: res.etag, refreshAt: c.refreshTime(res.cert.Leaf, now, res)})
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

// put inserts or replaces e and evicts the least recently used entries
// beyond maxEntries. c.mu must be held.
func (c *Client) put(e *entry) {
	if el, ok := c.items[e.name]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.items[e.name] = c.lru.PushFront(e)
	for c.lru.Len() > c.maxEntries {
		back := c.lru.Back()
		c.lru.Remove(back)
		delete(c.items, back.Value.(*entry).name)
	}
}

// Len returns the number of cached names, found or not.
func (c *Client) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

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
