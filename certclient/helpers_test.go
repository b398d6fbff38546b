package certclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testCA signs leaf certificates for tests and benchmarks.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	pool    *x509.CertPool
	leafKey *ecdsa.PrivateKey // shared by all leaves: generating keys is the slow part
	keyPEM  []byte
}

func newTestCA(tb testing.TB) *testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "certclient test CA"},
		NotBefore:             time.Now().Add(-24 * time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{
		cert: cert, key: key, pool: pool, leafKey: leafKey,
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
}

// issue returns the DER of a leaf for name valid from notBefore to notAfter.
func (ca *testCA) issue(tb testing.TB, name string, serial int64, notBefore, notAfter time.Time) []byte {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &ca.leafKey.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// body is the delivery endpoint's 200 response for a leaf DER.
func (ca *testCA) body(der []byte) []byte {
	leaf, _ := x509.ParseCertificate(der)
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	b, _ := json.Marshal(deliveryBody{
		Certificate: string(chain),
		PrivateKey:  string(ca.keyPEM),
		NotAfter:    leaf.NotAfter.UTC().Format(time.RFC3339),
		Serial:      leaf.SerialNumber.Text(16),
	})
	return b
}

// backend is a fake delivery endpoint.
type backend struct {
	t  *testing.T
	ca *testCA

	mu          sync.Mutex
	certs       map[string][]byte // name -> leaf DER
	maxAge      int               // Cache-Control max-age for 200 and 304; <0: none
	notFoundAge int               // max-age for 404; <0: none
	status      int               // when non-zero, answer every request with it
	requests    map[string]int
	notModified int
	lastINM     string
	gate        chan struct{} // when set, requests wait for it to close
	check       func(*http.Request) error
}

func newBackend(t *testing.T, ca *testCA) (*backend, *httptest.Server) {
	b := &backend{t: t, ca: ca, certs: map[string][]byte{}, requests: map[string]int{}, maxAge: 300, notFoundAge: -1}
	srv := httptest.NewServer(b) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return b, srv
}

func (b *backend) set(name string, der []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.certs[name] = der
}

func (b *backend) configure(f func(*backend)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(b)
}

func (b *backend) count(name string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests[name]
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/sni/")
	b.mu.Lock()
	gate := b.gate
	b.requests[name]++
	b.lastINM = r.Header.Get("If-None-Match")
	status, maxAge, notFoundAge, check := b.status, b.maxAge, b.notFoundAge, b.check
	der := b.certs[name]
	b.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if check != nil {
		if err := check(r); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
	}
	if status != 0 {
		w.WriteHeader(status)
		fmt.Fprint(w, `{"error":{"code":"internal","message":"down"}}`)
		return
	}
	if !ok || der == nil {
		if notFoundAge >= 0 {
			w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", notFoundAge))
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"code":"not_found","message":"no certificate"}}`)
		return
	}
	leaf, _ := x509.ParseCertificate(der)
	etag := fmt.Sprintf(`"%x"`, leaf.SerialNumber)
	w.Header().Set("ETag", etag)
	if maxAge >= 0 {
		w.Header().Set("Cache-Control", fmt.Sprintf("private, max-age=%d", maxAge))
	}
	if r.Header.Get("If-None-Match") == etag {
		b.mu.Lock()
		b.notModified++
		b.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b.ca.body(der))
}

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingDoer counts backend requests and the most that were under way at
// once, holding each for delay.
type countingDoer struct {
	next     Doer
	delay    time.Duration
	requests atomic.Int64
	inflight atomic.Int64
	peak     atomic.Int64
}

func (d *countingDoer) Do(r *http.Request) (*http.Response, error) {
	d.requests.Add(1)
	n := d.inflight.Add(1)
	defer d.inflight.Add(-1)
	for p := d.peak.Load(); n > p && !d.peak.CompareAndSwap(p, n); p = d.peak.Load() {
	}
	if d.delay > 0 {
		time.Sleep(d.delay)
	}
	return d.next.Do(r)
}

// handlerDoer serves requests with a handler in process.
type handlerDoer struct{ h http.Handler }

func (d handlerDoer) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	d.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// junkResult is what a storm of junk SNI names did to a client.
type junkResult struct {
	hitBefore, hitAfter float64 // share of the real names answered without a backend request
	junkRequests        int64   // backend requests during the storm
	busy                int64   // storm handshakes refused with ErrBusy
	peak                int64   // most backend requests under way at once
}

// junkStorm asks c for every real name, then for junk distinct junk names
// from workers goroutines, then for every real name again. d must be c's
// Doer.
func junkStorm(c *Client, d *countingDoer, real []string, junk, workers int) junkResult {
	probe := func() float64 {
		hits := 0
		for _, name := range real {
			before := d.requests.Load()
			if _, err := c.Get(context.Background(), name); err == nil && d.requests.Load() == before {
				hits++
			}
		}
		return float64(hits) / float64(len(real))
	}
	var r junkResult
	r.hitBefore = probe()
	start := d.requests.Load()
	d.peak.Store(0)
	var busy atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < junk; i += workers {
				if _, err := c.Get(context.Background(), fmt.Sprintf("junk-%07d.example.net", i)); errors.Is(err, ErrBusy) {
					busy.Add(1)
				}
			}
		})
	}
	wg.Wait()
	r.junkRequests = d.requests.Load() - start
	r.busy = busy.Load()
	r.peak = d.peak.Load()
	r.hitAfter = probe()
	return r
}
