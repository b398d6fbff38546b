// Package caproxy is a development tool: an HTTPS reverse proxy in front of
// Pebble that counts what the CA really sees (the orders placed, the
// requests of each ACME operation and the CA's answers) and injects faults
// (rate limits, server errors, bad nonces, cut connections, lost answers,
// Retry-After headers, freezes and outages). The offline scale and chaos
// runs and the tests put it between certflow and Pebble.
//
// Nothing is rewritten. Pebble builds every URL it hands out (directory,
// Location and Link headers, the URLs in orders, authorizations and
// accounts) from the Host header of the request, and accepts a JWS only when
// its "url" is https://Host plus the request URI (Pebble v2.10.0,
// wfe.relativeEndpoint and wfe.verifyJWS). The proxy forwards the Host
// header unchanged, so Pebble names the proxy in its URLs and checks the
// URLs clients signed against the proxy's address. Pebble stores the URLs of
// authorizations and challenges when it creates an order, so an order
// placed through the proxy is followed through it to the end.
//
// The proxy listens on 127.0.0.1 only and speaks HTTP/1.1 only: cutting a
// connection needs http.Hijacker, which HTTP/2 does not offer.
package caproxy

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Size limits of what the proxy buffers: ACME requests are small JWSs,
// answers at most a certificate chain.
const (
	maxRequestBody  = 1 << 20
	maxResponseBody = 8 << 20
)

// defaultTimeout bounds a forwarded request when Options.Timeout is zero.
const defaultTimeout = time.Minute

// ErrClosed is returned by Up after Close.
var ErrClosed = errors.New("caproxy: proxy closed")

// Options configures a Proxy.
type Options struct {
	// Upstream is Pebble's directory URL (offline.Stack.PebbleDirectoryURL).
	Upstream string
	// UpstreamCAFile is the CA of Pebble's HTTPS listener, pebble.minica.pem
	// (offline.Stack.PebbleTLSCAFile).
	UpstreamCAFile string
	// CertFile and KeyFile are the proxy's certificate and key. Empty means
	// the certificate Pebble itself serves: localhost/cert.pem and
	// localhost/key.pem beside UpstreamCAFile, valid for 127.0.0.1, so
	// clients that trust pebble.minica.pem trust the proxy.
	CertFile, KeyFile string
	// Port is the port to listen on at 127.0.0.1; zero picks a free one.
	Port int
	// Timeout bounds each forwarded request; zero means one minute.
	Timeout time.Duration
}

// Proxy is a running proxy. Its methods are safe for concurrent use.
type Proxy struct {
	addr      string  // 127.0.0.1:PORT, the same after Down and Up
	upstream  url.URL // Pebble's origin: scheme and host
	dirPath   string  // path of the directory
	tlsConfig *tls.Config
	transport *http.Transport
	timeout   time.Duration
	now       func() time.Time

	rec    recorder
	faults faultState
	freeze freezer
	// pebbleMu works around a deadlock of Pebble's (pebbleOrder).
	pebbleMu sync.RWMutex

	mu     sync.Mutex
	srv    *http.Server // nil while down
	closed chan struct{}
}

// Start checks that Pebble answers at opts.Upstream, then listens.
func Start(ctx context.Context, opts Options) (*Proxy, error) {
	up, err := url.Parse(opts.Upstream)
	if err != nil || up.Scheme != "https" || up.Host == "" {
		return nil, fmt.Errorf("caproxy upstream %q: want Pebble's https directory URL", opts.Upstream)
	}
	caPEM, err := os.ReadFile(opts.UpstreamCAFile)
	if err != nil {
		return nil, fmt.Errorf("caproxy upstream CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("caproxy upstream CA %s: no PEM certificate", opts.UpstreamCAFile)
	}
	certFile, keyFile := opts.CertFile, opts.KeyFile
	if certFile == "" && keyFile == "" {
		dir := filepath.Join(filepath.Dir(opts.UpstreamCAFile), "localhost")
		certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("caproxy certificate: %w", err)
	}
	p := &Proxy{
		upstream:  url.URL{Scheme: up.Scheme, Host: up.Host},
		dirPath:   up.Path,
		tlsConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     30 * time.Second,
		},
		timeout: cmp.Or(opts.Timeout, defaultTimeout),
		now:     time.Now,
		closed:  make(chan struct{}),
	}
	if err := p.checkUpstream(ctx); err != nil {
		p.transport.CloseIdleConnections()
		return nil, err
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", opts.Port))
	if err != nil {
		p.transport.CloseIdleConnections()
		return nil, fmt.Errorf("caproxy listen: %w", err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	return p, nil
}

// checkUpstream fetches Pebble's directory once.
func (p *Proxy) checkUpstream(ctx context.Context) error {
	u := p.upstream
	u.Path = p.dirPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: p.transport, Timeout: p.timeout}).Do(req)
	if err != nil {
		return fmt.Errorf("caproxy upstream: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("caproxy upstream %s: %s", u.String(), resp.Status)
	}
	return nil
}

// serve serves HTTPS on ln; p.mu is held or p not yet shared.
func (p *Proxy) serve(ln net.Listener) {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	srv := &http.Server{
		Handler:           p,
		TLSConfig:         p.tlsConfig.Clone(),
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
	}
	p.srv = srv
	go func() { _ = srv.ServeTLS(ln, "", "") }()
}

// DirectoryURL returns the ACME directory URL of the proxy.
func (p *Proxy) DirectoryURL() string {
	return (&url.URL{Scheme: "https", Host: p.addr, Path: p.dirPath}).String()
}

// Addr returns the proxy's 127.0.0.1:PORT.
func (p *Proxy) Addr() string { return p.addr }

// SetFaults replaces the faults in force, starting every rule's count
// afresh. An invalid rule is reported and changes nothing.
func (p *Proxy) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	p.faults.set(f)
	return nil
}

// Freeze holds every request that arrives, or waits, until Thaw or until
// limit has passed (zero means one minute). Freezing again while frozen
// restarts the limit.
func (p *Proxy) Freeze(limit time.Duration) { p.freeze.freeze(limit) }

// Thaw releases the requests held by Freeze.
func (p *Proxy) Thaw() { p.freeze.thaw() }

// Down closes the listener and every open connection: clients are refused
// until Up. Down while down does nothing.
func (p *Proxy) Down() error {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	if srv == nil {
		return nil
	}
	p.rec.injected(Injection{At: p.now(), Kind: Down})
	return srv.Close()
}

// Up listens again on the same address after Down. Up while up does
// nothing.
func (p *Proxy) Up() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.closed:
		return ErrClosed
	default:
	}
	if p.srv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("caproxy up on %s: %w", p.addr, err)
	}
	p.serve(ln)
	return nil
}

// Close stops the proxy and releases held requests. What it recorded
// stays readable.
func (p *Proxy) Close() error {
	p.mu.Lock()
	select {
	case <-p.closed:
		p.mu.Unlock()
		return nil
	default:
	}
	close(p.closed)
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	p.freeze.thaw()
	var err error
	if srv != nil {
		err = srv.Close()
	}
	p.transport.CloseIdleConnections()
	return err
}

// Orders returns the orders really placed: the newOrder requests the CA
// answered 201 Created, in the order of their answers.
func (p *Proxy) Orders() []Order { return p.rec.placed() }

// NewOrders returns every newOrder request, including those a fault
// answered and those the CA refused.
func (p *Proxy) NewOrders() []Order { return p.rec.newOrders() }

// Stats returns the counts of each operation seen.
func (p *Proxy) Stats() map[Op]Stat { return p.rec.snapshot() }

// MaxOrdersInWindow returns the largest number of orders placed in any
// half-open window of length w that a CA's new-order limit over w counts:
// all but ARI renewals (orders with "replaces"), which Let's Encrypt
// exempts.
func (p *Proxy) MaxOrdersInWindow(w time.Duration) int {
	var times []time.Time
	for _, o := range p.rec.placed() {
		if o.Replaces == "" {
			times = append(times, o.At)
		}
	}
	return maxInWindow(times, w)
}

// OrdersPerIdentifierSet counts the orders placed for each set of
// identifiers, keyed by the sorted values joined with ",".
func (p *Proxy) OrdersPerIdentifierSet() map[string]int {
	out := map[string]int{}
	for _, o := range p.rec.placed() {
		out[o.IdentifierSet()]++
	}
	return out
}

// Injected counts the faults injected, by kind.
func (p *Proxy) Injected() map[string]int {
	out := map[string]int{}
	for _, in := range p.rec.allInjections() {
		out[string(in.Kind)]++
	}
	return out
}

// Injections returns every fault injected, in order.
func (p *Proxy) Injections() []Injection { return p.rec.allInjections() }

// ServeHTTP classifies a request, applies the faults in force and forwards
// it to Pebble.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		writeProblem(w, http.StatusRequestEntityTooLarge, "urn:ietf:params:acme:error:malformed", "caproxy: request body too large or unreadable")
		return
	}
	c := classify(r.Method, r.URL.Path, body)
	p.rec.received(c.op)
	if !p.hold(r.Context(), c.op) {
		return
	}
	rule, fault := p.faults.pick(c.op)
	if fault && rule.Kind != DropResponse {
		p.rec.injected(Injection{At: p.now(), Op: c.op, Kind: rule.Kind})
		p.recordOrder(c, false, 0, "")
		p.inject(w, r, rule)
		return
	}

	unlock := p.pebbleOrder(c.op)
	resp, respBody, err := p.forward(r, body)
	unlock()
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	p.rec.answered(c.op, status)
	location := ""
	if resp != nil {
		location = resp.Header.Get("Location")
	}
	p.recordOrder(c, true, status, location)
	if err != nil {
		writeProblem(w, http.StatusBadGateway, problemServerInternal, "caproxy: no answer from the CA")
		return
	}
	if fault { // DropResponse
		p.rec.injected(Injection{At: p.now(), Op: c.op, Kind: rule.Kind})
		reset(w)
		return
	}

	p.recordState(c.op, r.URL.Path, location, status, respBody)
	h := w.Header()
	for k, v := range resp.Header {
		if !hopByHop(k) {
			h[k] = v
		}
	}
	if ra, ok := pollRetryAfter(c.op, status, respBody, p.faults.pollRetryAfter()); ok {
		h.Set("Retry-After", ra)
		p.rec.injected(Injection{At: p.now(), Op: c.op, Kind: RetryAfter})
	}
	w.WriteHeader(status)
	_, _ = w.Write(respBody)
}

// pebbleOrder keeps newOrder requests and requests on an authorization
// from reaching Pebble at the same time, and returns the function that
// lets the next ones through. Pebble v2.10.0 deadlocks on them: its
// authorization handler holds the authorization's lock while it waits
// for the store's read lock (behind a newOrder waiting to write), while
// a newOrder holds the store's read lock and waits for that
// authorization's lock (FindValidAuthorization). The proxy then hangs
// every request for good; a scale run of 2,000 domains met it. newOrders
// still run side by side, authorization requests one at a time.
func (p *Proxy) pebbleOrder(op Op) (unlock func()) {
	switch op {
	case OpNewOrder:
		p.pebbleMu.RLock()
		return p.pebbleMu.RUnlock
	case OpAuthz, OpAuthzUpdate:
		p.pebbleMu.Lock()
		return p.pebbleMu.Unlock
	}
	return func() {}
}

// hold waits while the proxy is frozen. It reports false when the request
// should not go on: the client left or the proxy closed.
func (p *Proxy) hold(ctx context.Context, op Op) bool {
	thawed := p.freeze.frozen()
	if thawed == nil {
		return true
	}
	p.rec.injected(Injection{At: p.now(), Op: op, Kind: Freeze})
	select {
	case <-thawed:
		return true
	case <-ctx.Done():
		return false
	case <-p.closed:
		return false
	}
}

// inject answers in the CA's place, or cuts the connection.
func (p *Proxy) inject(w http.ResponseWriter, r *http.Request, rule Rule) {
	if rule.Kind == Reset {
		reset(w)
		return
	}
	status, typ, retryAfter := rule.problem()
	// RFC 8555 section 6.5: answers to POSTs carry a nonce, and a client
	// retries badNonce with the one it got.
	if r.Method == http.MethodPost {
		if nonce := p.freshNonce(r.Context()); nonce != "" {
			w.Header().Set("Replay-Nonce", nonce)
		}
	}
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	writeProblem(w, status, typ, fmt.Sprintf("caproxy injected %s", rule.Kind))
}

// freshNonce asks Pebble for a nonce; empty when it does not answer.
func (p *Proxy) freshNonce(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	u := p.upstream
	u.Path = pathNonce
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u.String(), nil)
	if err != nil {
		return ""
	}
	resp, err := p.transport.RoundTrip(req)
	if err != nil {
		return ""
	}
	resp.Body.Close()
	return resp.Header.Get("Replay-Nonce")
}

// forward sends the request to Pebble with the client's Host header and
// reads the whole answer. resp is nil when Pebble did not answer.
func (p *Proxy) forward(r *http.Request, body []byte) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
	defer cancel()
	u := p.upstream
	u.Path, u.RawPath, u.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	out.Header = r.Header.Clone()
	for k := range out.Header {
		if hopByHop(k) {
			out.Header.Del(k)
		}
	}
	// Plain bodies: the transport asks for gzip itself and unpacks it.
	out.Header.Del("Accept-Encoding")
	out.Host = r.Host
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return resp, nil, err
	}
	return resp, b, nil
}

// recordState records the status of the order object in the CA's answer
// to newOrder, an order's POST-as-GET or finalize.
func (p *Proxy) recordState(op Op, path, location string, status int, body []byte) {
	if status/100 != 2 {
		return
	}
	var id string
	switch op {
	case OpNewOrder:
		id = OrderID(location)
	case OpOrder, OpFinalize:
		id = OrderID(path)
	default:
		return
	}
	var o struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(body, &o) == nil {
		p.rec.orderState(id, o.Status)
	}
}

// OrderID is the identity of an order in its URL or its finalize URL: the
// last path segment, which Pebble shares between the two.
func OrderID(url string) string {
	if i := strings.LastIndex(url, "/"); i >= 0 {
		return url[i+1:]
	}
	return url
}

// OrderStates returns the last status the CA reported for each order, by
// OrderID: "valid" and "invalid" are final, anything else means the order
// was left unfinished (or is still being worked on).
func (p *Proxy) OrderStates() map[string]string {
	p.rec.mu.Lock()
	defer p.rec.mu.Unlock()
	return maps.Clone(p.rec.states)
}

// recordOrder records c when it is a newOrder request.
func (p *Proxy) recordOrder(c call, forwarded bool, status int, location string) {
	if c.order == nil {
		return
	}
	p.rec.order(Order{
		At:          p.now(),
		Account:     c.account,
		Identifiers: c.order.values(),
		Replaces:    c.order.Replaces,
		Profile:     c.order.Profile,
		Forwarded:   forwarded,
		Status:      status,
		URL:         location,
	})
}

// hopByHop reports whether a header belongs to one connection only (RFC
// 9110 section 7.6.1) and is not passed on.
func hopByHop(name string) bool {
	switch strings.ToLower(name) {
	case "connection", "proxy-connection", "keep-alive", "proxy-authenticate",
		"proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade":
		return true
	}
	return false
}
