package certclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certflow/certflow/certclient/certclienttest"
)

// recorder counts hook calls and reports finished refreshes.
type recorder struct {
	hits, misses, negHits, errs, stale, fetches atomic.Int64
	refreshed                                   chan error
}

func newRecorder() *recorder { return &recorder{refreshed: make(chan error, 100)} }

func (r *recorder) hooks() Hooks {
	return Hooks{
		OnHit:         func(string) { r.hits.Add(1) },
		OnMiss:        func(string) { r.misses.Add(1) },
		OnNegativeHit: func(string) { r.negHits.Add(1) },
		OnRefresh:     func(_ string, err error) { r.refreshed <- err },
		OnError:       func(string, error) { r.errs.Add(1) },
		OnStale:       func(string) { r.stale.Add(1) },
		OnFetch:       func(string, time.Duration, error) { r.fetches.Add(1) },
	}
}

func (r *recorder) waitRefresh(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.refreshed:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("no background refresh finished within 5s")
		return nil
	}
}

type fixture struct {
	ca    *certclienttest.CA
	be    *certclienttest.Delivery
	clock *clock
	rec   *recorder
	c     *Client
}

func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	ca := certclienttest.NewCA(t)
	be, srv := certclienttest.NewDelivery(t, ca)
	f := &fixture{ca: ca, be: be, clock: newClock(), rec: newRecorder()}
	cfg := Config{BaseURL: srv.URL + "/", AllowInsecureHTTP: true, HTTPClient: srv.Client(), Now: f.clock.Now, Hooks: f.rec.hooks()}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	return f
}

// add issues a 90-day certificate for name starting now on the fake clock.
func (f *fixture) add(t *testing.T, name string, serial int64) []byte {
	der := f.ca.Issue(t, name, serial, f.clock.Now().Add(-time.Minute), f.clock.Now().Add(90*24*time.Hour))
	f.be.Set(name, der)
	return der
}

func get(t *testing.T, c *Client, name string) (*tls.Certificate, error) {
	t.Helper()
	return c.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
}

func mustGet(t *testing.T, c *Client, name string) *tls.Certificate {
	t.Helper()
	cert, err := get(t, c, name)
	if err != nil {
		t.Fatalf("GetCertificate(%q) error = %v", name, err)
	}
	return cert
}

func TestHitAndMiss(t *testing.T) {
	f := newFixture(t, nil)
	f.add(t, "www.example.com", 10)

	first := mustGet(t, f.c, "www.example.com")
	if first.Leaf == nil || first.Leaf.DNSNames[0] != "www.example.com" {
		t.Fatalf("GetCertificate(%q) Leaf = %v, want a parsed leaf for the name", "www.example.com", first.Leaf)
	}
	if len(first.Certificate) != 2 {
		t.Errorf("GetCertificate(%q) has %d chain certificates, want 2", "www.example.com", len(first.Certificate))
	}
	for _, name := range []string{"www.example.com", "WWW.Example.COM", "www.example.com."} {
		if got := mustGet(t, f.c, name); got != first {
			t.Errorf("GetCertificate(%q) = %p, want the cached %p", name, got, first)
		}
	}
	if n := f.be.Requests("www.example.com"); n != 1 {
		t.Errorf("backend requests = %d, want 1", n)
	}
	if h, m := f.rec.hits.Load(), f.rec.misses.Load(); h != 3 || m != 1 {
		t.Errorf("hits, misses = %d, %d, want 3, 1", h, m)
	}
}

func TestInvalidNamesNeverReachBackend(t *testing.T) {
	f := newFixture(t, nil)
	for _, name := range []string{"", ".", "a..b", "a b.example", "../../etc/passwd", "a/b.example", "%2e.example", "x\x00.example", string(make([]byte, 300))} {
		_, err := get(t, f.c, name)
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("GetCertificate(%q) error = %v, want ErrInvalidName", name, err)
		}
	}
	if got := f.be.RequestCounts(); len(got) != 0 {
		t.Errorf("backend requests = %v, want none", got)
	}
}

func TestCacheBounded(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxEntries = 8 })
	for i := range 40 {
		name := fmt.Sprintf("n%02d.example.com", i)
		f.add(t, name, int64(i+1))
		mustGet(t, f.c, name)
	}
	checkBounded(t, "Len() after 40 names (MaxEntries 8)", f.c.Len, 8)
}

func TestConcurrentMissesShareOneRequest(t *testing.T) {
	f := newFixture(t, nil)
	f.add(t, "busy.example.com", 1)
	gate := make(chan struct{})
	f.be.Configure(func(b *certclienttest.Delivery) { b.Gate = gate })

	const n = 100
	certs := make([]*tls.Certificate, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { certs[i], errs[i] = get(t, f.c, "busy.example.com") })
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.rec.misses.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()

	for i := range n {
		if errs[i] != nil || certs[i] != certs[0] {
			t.Fatalf("handshake %d got %p, %v, want the shared certificate %p", i, certs[i], errs[i], certs[0])
		}
	}
	if got := f.be.Requests("busy.example.com"); got != 1 {
		t.Errorf("backend requests = %d, want 1", got)
	}
}

func TestOutageKeepsServingValidCertificate(t *testing.T) {
	f := newFixture(t, nil)
	f.add(t, "www.example.com", 1)
	cert := mustGet(t, f.c, "www.example.com")

	f.be.Configure(func(b *certclienttest.Delivery) { b.Status = http.StatusServiceUnavailable })
	f.clock.Advance(10 * time.Minute) // past max-age=300

	if got := mustGet(t, f.c, "www.example.com"); got != cert {
		t.Fatalf("GetCertificate during outage = %p, want cached %p", got, cert)
	}
	if err := f.rec.waitRefresh(t); err == nil {
		t.Fatal("background refresh during outage reported no error")
	}
	if got := mustGet(t, f.c, "www.example.com"); got != cert {
		t.Fatalf("GetCertificate after failed refresh = %p, want cached %p", got, cert)
	}
	if got := f.rec.stale.Load(); got != 1 {
		t.Errorf("OnStale calls = %d, want 1 (the handshake after the failed refresh)", got)
	}
	if got := f.be.Requests("www.example.com"); got != 2 {
		t.Errorf("backend requests = %d, want 2 (no retry before %s)", got, retryAfterFailure)
	}

	f.clock.Advance(retryAfterFailure)
	mustGet(t, f.c, "www.example.com")
	f.rec.waitRefresh(t)
	if got := f.be.Requests("www.example.com"); got != 3 {
		t.Errorf("backend requests = %d, want 3 after %s", got, retryAfterFailure)
	}
	if got := f.rec.errs.Load(); got != 2 {
		t.Errorf("OnError calls = %d, want 2", got)
	}
	if got := f.rec.fetches.Load(); got != 3 {
		t.Errorf("OnFetch calls = %d, want 3", got)
	}
}

func TestUnreachableBackendKeepsServing(t *testing.T) {
	ca := certclienttest.NewCA(t)
	be, srv := certclienttest.NewDelivery(t, ca)
	clk := newClock()
	rec := newRecorder()
	c, err := New(Config{BaseURL: srv.URL, AllowInsecureHTTP: true, HTTPClient: srv.Client(), Now: clk.Now, Hooks: rec.hooks()})
	if err != nil {
		t.Fatal(err)
	}
	be.Set("www.example.com", ca.Issue(t, "www.example.com", 1, clk.Now().Add(-time.Hour), clk.Now().Add(24*time.Hour)))
	cert := mustGet(t, c, "www.example.com")
	srv.Close() // connection refused from now on
	clk.Advance(time.Hour)
	if got := mustGet(t, c, "www.example.com"); got != cert {
		t.Fatalf("GetCertificate with backend gone = %p, want cached %p", got, cert)
	}
	if err := rec.waitRefresh(t); err == nil {
		t.Error("refresh with backend gone reported no error")
	}
}

func TestExpiredCertificateNotServed(t *testing.T) {
	f := newFixture(t, nil)
	now := f.clock.Now()
	f.be.Set("short.example.com", f.ca.Issue(t, "short.example.com", 1, now.Add(-time.Hour), now.Add(time.Hour)))
	mustGet(t, f.c, "short.example.com")

	f.be.Configure(func(b *certclienttest.Delivery) { b.Status = http.StatusBadGateway })
	f.clock.Advance(time.Hour + time.Second)
	if cert, err := get(t, f.c, "short.example.com"); err == nil {
		t.Fatalf("GetCertificate after NotAfter = %v, want an error", cert.Leaf.NotAfter)
	}

	// The backend itself serving an expired certificate is refused too.
	f.be.Configure(func(b *certclienttest.Delivery) { b.Status = 0 })
	f.clock.Advance(errorTTL)
	if _, err := get(t, f.c, "short.example.com"); err == nil {
		t.Fatal("GetCertificate accepted an expired certificate from the backend")
	}
}

func TestCertificateForOtherNameRefused(t *testing.T) {
	f := newFixture(t, nil)
	f.be.Set("www.example.com", f.ca.Issue(t, "other.example.com", 1, f.clock.Now().Add(-time.Hour), f.clock.Now().Add(time.Hour)))
	if _, err := get(t, f.c, "www.example.com"); err == nil {
		t.Fatal("GetCertificate accepted a certificate that does not cover the name")
	}
}

func TestNegativeCache(t *testing.T) {
	t.Run("max-age from the 404", func(t *testing.T) {
		f := newFixture(t, nil)
		f.be.Configure(func(b *certclienttest.Delivery) { b.NotFoundAge = 30 })
		for range 5 {
			if _, err := get(t, f.c, "junk.example.com"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("GetCertificate(%q) error = %v, want ErrNotFound", "junk.example.com", err)
			}
		}
		if got := f.be.Requests("junk.example.com"); got != 1 {
			t.Errorf("backend requests = %d, want 1", got)
		}
		if got := f.rec.negHits.Load(); got != 4 {
			t.Errorf("negative hits = %d, want 4", got)
		}
		f.clock.Advance(31 * time.Second)
		get(t, f.c, "junk.example.com")
		if got := f.be.Requests("junk.example.com"); got != 2 {
			t.Errorf("backend requests after max-age = %d, want 2", got)
		}
	})
	t.Run("NegativeTTL without max-age", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.NegativeTTL = 10 * time.Second })
		get(t, f.c, "junk.example.com")
		f.clock.Advance(9 * time.Second)
		get(t, f.c, "junk.example.com")
		if got := f.be.Requests("junk.example.com"); got != 1 {
			t.Errorf("backend requests within NegativeTTL = %d, want 1", got)
		}
		f.clock.Advance(time.Second)
		get(t, f.c, "junk.example.com")
		if got := f.be.Requests("junk.example.com"); got != 2 {
			t.Errorf("backend requests after NegativeTTL = %d, want 2", got)
		}
	})
	t.Run("404 on refresh stops serving", func(t *testing.T) {
		f := newFixture(t, nil)
		f.add(t, "gone.example.com", 1)
		mustGet(t, f.c, "gone.example.com")
		f.be.Set("gone.example.com", nil)
		f.clock.Advance(10 * time.Minute)
		mustGet(t, f.c, "gone.example.com") // served while revalidating
		f.rec.waitRefresh(t)
		if _, err := get(t, f.c, "gone.example.com"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetCertificate after 404 error = %v, want ErrNotFound", err)
		}
	})
}

func TestNotModified(t *testing.T) {
	f := newFixture(t, nil)
	f.add(t, "www.example.com", 0xabc)
	cert := mustGet(t, f.c, "www.example.com")
	f.clock.Advance(301 * time.Second)
	mustGet(t, f.c, "www.example.com")
	if err := f.rec.waitRefresh(t); err != nil {
		t.Fatalf("refresh error = %v", err)
	}
	inm, nm := f.be.Revalidations()
	if inm != `"abc"` || nm != 1 {
		t.Errorf("If-None-Match = %q, 304s = %d, want %q, 1", inm, nm, `"abc"`)
	}
	if got := mustGet(t, f.c, "www.example.com"); got != cert {
		t.Errorf("GetCertificate after 304 = %p, want the same %p", got, cert)
	}
	// The 304 renewed freshness: no request until max-age passes again.
	f.clock.Advance(299 * time.Second)
	mustGet(t, f.c, "www.example.com")
	if got := f.be.Requests("www.example.com"); got != 2 {
		t.Errorf("backend requests = %d, want 2", got)
	}
}

func TestRefreshBeforeExpiry(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name          string
		refreshBefore time.Duration
		quiet, due    time.Duration // clock offsets: no refresh yet, refresh due
	}{
		{"default one third of lifetime", 0, 59 * day, 61 * day},
		{"explicit 7 days", 7 * day, 82 * day, 84 * day},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.RefreshBefore = tt.refreshBefore })
			f.be.Configure(func(b *certclienttest.Delivery) { b.MaxAge = 365 * 24 * 3600 }) // isolate the expiry-driven refresh
			f.add(t, "www.example.com", 1)
			start := f.clock.Now()
			old := mustGet(t, f.c, "www.example.com")

			f.clock.Advance(tt.quiet)
			mustGet(t, f.c, "www.example.com")
			if got := f.be.Requests("www.example.com"); got != 1 {
				t.Fatalf("backend requests at +%s = %d, want 1", tt.quiet, got)
			}

			// The platform renewed the certificate meanwhile.
			f.be.Set("www.example.com", f.ca.Issue(t, "www.example.com", 2, start.Add(tt.quiet), start.Add(tt.quiet+90*day)))
			f.clock.Advance(tt.due - tt.quiet)
			if got := mustGet(t, f.c, "www.example.com"); got != old {
				t.Fatalf("GetCertificate while refreshing = serial %v, want the cached one", got.Leaf.SerialNumber)
			}
			if err := f.rec.waitRefresh(t); err != nil {
				t.Fatalf("refresh error = %v", err)
			}
			if got := mustGet(t, f.c, "www.example.com"); got.Leaf.SerialNumber.Int64() != 2 {
				t.Errorf("GetCertificate after refresh = serial %v, want 2", got.Leaf.SerialNumber)
			}
		})
	}
}

func TestRequestSigner(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.RequestSigner = func(r *http.Request) error {
			if r.URL.Path == "/sni/deny.example.com" {
				return errors.New("no credentials")
			}
			r.Header.Set("Authorization", "test-signature")
			return nil
		}
	})
	f.be.Configure(func(b *certclienttest.Delivery) {
		b.Check = func(r *http.Request) error {
			if r.Header.Get("Authorization") != "test-signature" {
				return errors.New("unsigned")
			}
			return nil
		}
	})
	f.add(t, "www.example.com", 1)
	mustGet(t, f.c, "www.example.com")
	if _, err := get(t, f.c, "deny.example.com"); err == nil {
		t.Error("GetCertificate succeeded although the signer failed")
	}
	if got := f.be.Requests("deny.example.com"); got != 0 {
		t.Errorf("backend requests for unsigned request = %d, want 0", got)
	}
}

func TestCallerContext(t *testing.T) {
	f := newFixture(t, nil)
	f.add(t, "slow.example.com", 1)
	gate := make(chan struct{})
	f.be.Configure(func(b *certclienttest.Delivery) { b.Gate = gate })
	defer close(gate)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := f.c.Get(ctx, "slow.example.com"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get with expiring context error = %v, want context.DeadlineExceeded", err)
	}
}

func TestTLSHandshake(t *testing.T) {
	f := newFixture(t, nil)
	f.add(t, "www.example.com", 1)

	serverConn, clientConn := net.Pipe()
	srvErr := make(chan error, 1)
	go func() {
		// No tickets: nobody reads them from the synchronous pipe.
		s := tls.Server(serverConn, &tls.Config{GetCertificate: f.c.GetCertificate, SessionTicketsDisabled: true})
		srvErr <- s.Handshake()
		serverConn.Close()
	}()
	cl := tls.Client(clientConn, &tls.Config{ServerName: "www.example.com", RootCAs: f.ca.Pool})
	if err := cl.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if got := cl.ConnectionState().PeerCertificates[0].DNSNames[0]; got != "www.example.com" {
		t.Errorf("handshake served a certificate for %q, want %q", got, "www.example.com")
	}
	clientConn.Close()
	if err := <-srvErr; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"no BaseURL", Config{}, false},
		{"no scheme", Config{BaseURL: "delivery.example"}, false},
		{"negative MaxEntries", Config{BaseURL: "https://x", MaxEntries: -1}, false},
		{"negative MaxConcurrentFetches", Config{BaseURL: "https://x", MaxConcurrentFetches: -1}, false},
		{"http refused", Config{BaseURL: "http://127.0.0.1:8080"}, false},
		{"http allowed", Config{BaseURL: "http://127.0.0.1:8080", AllowInsecureHTTP: true}, true},
		{"https", Config{BaseURL: "https://delivery.example"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Errorf("New(%+v) error = %v, want ok = %v", tt.cfg, err, tt.ok)
			}
		})
	}
}

func TestParseMaxAge(t *testing.T) {
	tests := []struct {
		in   []string
		want time.Duration
		ok   bool
	}{
		{[]string{"max-age=60"}, time.Minute, true},
		{[]string{"private, Max-Age=30, must-revalidate"}, 30 * time.Second, true},
		{[]string{"no-store"}, 0, false},
		{[]string{"max-age=-1"}, 0, false},
		{[]string{"max-age=abc", "max-age=5"}, 5 * time.Second, true},
		{nil, 0, false},
	}
	for _, tt := range tests {
		got, ok := parseMaxAge(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseMaxAge(%q) = %v, %v, want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestJunkSNIStorm(t *testing.T) {
	const (
		realNames  = 50
		junkNames  = 100_000
		maxFetches = 8
	)
	ca := certclienttest.NewCA(t)
	be, _ := certclienttest.NewDelivery(t, ca) // served in process, through handlerDoer
	be.Configure(func(b *certclienttest.Delivery) { b.NotFoundAge = 60 })
	clk := newClock()
	var real []string
	for i := range realNames {
		name := fmt.Sprintf("real-%02d.example.com", i)
		real = append(real, name)
		be.Set(name, ca.Issue(t, name, int64(i+1), clk.Now().Add(-time.Minute), clk.Now().Add(90*24*time.Hour)))
	}
	d := &countingDoer{next: handlerDoer{be}, delay: 20 * time.Microsecond}
	c, err := New(Config{
		BaseURL: "https://delivery.test", HTTPClient: d, Now: clk.Now,
		MaxEntries: 64, MaxNegativeEntries: 1000, MaxConcurrentFetches: maxFetches,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range real {
		mustGet(t, c, name)
	}

	r := junkStorm(c, d, real, junkNames, 32)
	t.Logf("real-name hit ratio %.3f before, %.3f after; %d backend requests for %d junk names (%d refused busy); at most %d at once",
		r.hitBefore, r.hitAfter, r.junkRequests, junkNames, r.busy, r.peak)
	if r.hitBefore != 1 || r.hitAfter != 1 {
		t.Errorf("real-name hit ratio = %.3f before, %.3f after the storm, want 1, 1", r.hitBefore, r.hitAfter)
	}
	if r.junkRequests > junkNames {
		t.Errorf("backend requests for %d junk names = %d, want at most one each", junkNames, r.junkRequests)
	}
	if r.peak > maxFetches {
		t.Errorf("backend requests under way at once = %d, want at most MaxConcurrentFetches %d", r.peak, maxFetches)
	}
	checkBounded(t, "negative entries (MaxNegativeEntries 1000)", c.negatives.Len, 1000)
}

func TestFetchesBounded(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxConcurrentFetches = 2 })
	for i, name := range []string{"a.example.com", "b.example.com", "c.example.com"} {
		f.add(t, name, int64(i+1))
	}
	f.c.slotWait = 10 * time.Millisecond
	gate := make(chan struct{})
	f.be.Configure(func(b *certclienttest.Delivery) { b.Gate = gate })

	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, name := range []string{"a.example.com", "b.example.com", "a.example.com"} {
		wg.Go(func() { _, errs[i] = get(t, f.c, name) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for (f.be.Requests("a.example.com") == 0 || f.be.Requests("b.example.com") == 0) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if _, err := get(t, f.c, "c.example.com"); !errors.Is(err, ErrBusy) {
		t.Errorf("GetCertificate(%q) with both fetch slots taken: error = %v, want ErrBusy", "c.example.com", err)
	}
	close(gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("handshake %d waiting on a running fetch: error = %v, want none", i, err)
		}
	}
	// ErrBusy is not cached.
	mustGet(t, f.c, "c.example.com")
}

func TestRefreshWaitsForFreeSlot(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxConcurrentFetches = 1 })
	f.add(t, "www.example.com", 1)
	f.add(t, "slow.example.com", 2)
	cert := mustGet(t, f.c, "www.example.com")

	gate := make(chan struct{})
	f.be.Configure(func(b *certclienttest.Delivery) { b.Gate = gate })
	done := make(chan error, 1)
	go func() { _, err := get(t, f.c, "slow.example.com"); done <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for f.be.Requests("slow.example.com") == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}

	f.clock.Advance(10 * time.Minute) // past max-age: a refresh is due
	if got := mustGet(t, f.c, "www.example.com"); got != cert {
		t.Fatalf("GetCertificate with the only fetch slot taken = %p, want cached %p", got, cert)
	}
	if got := f.be.Requests("www.example.com"); got != 1 {
		t.Errorf("backend requests for www.example.com with the only slot taken = %d, want 1 (refresh deferred)", got)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("GetCertificate(%q) error = %v", "slow.example.com", err)
	}
	mustGet(t, f.c, "www.example.com")
	if err := f.rec.waitRefresh(t); err != nil {
		t.Fatalf("refresh error = %v", err)
	}
	if got := f.be.Requests("www.example.com"); got != 2 {
		t.Errorf("backend requests for www.example.com once the slot is free = %d, want 2", got)
	}
}
