package certclienttest

import (
	"crypto/x509"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Delivery is a fake delivery endpoint: GET /sni/{name} answers 200 with
// the certificate set for name (ETag the serial, 304 to a matching
// If-None-Match), and 404 with the endpoint's JSON error otherwise.
type Delivery struct {
	ca *CA

	mu          sync.Mutex
	certs       map[string][]byte // name -> leaf DER
	requests    map[string]int
	notModified int
	lastINM     string

	// Settings, changed through Configure while the endpoint serves.
	// MaxAge is the Cache-Control max-age of 200 and 304 answers, none
	// when negative (default 300).
	MaxAge int
	// NotFoundAge is the max-age of 404 answers, none when negative
	// (default -1).
	NotFoundAge int
	// Status, when non-zero, answers every request with it and a JSON
	// error.
	Status int
	// Delay holds every answer, like the delivery Lambda's latency.
	Delay time.Duration
	// Gate, when set, holds every request until it is closed.
	Gate chan struct{}
	// Check, when set, sees every request; an error answers 403.
	Check func(*http.Request) error
}

// NewDelivery returns a Delivery answering for ca's certificates and the
// server it listens on, on 127.0.0.1 until the test ends.
func NewDelivery(tb testing.TB, ca *CA) (*Delivery, *httptest.Server) {
	d := &Delivery{ca: ca, certs: map[string][]byte{}, requests: map[string]int{}, MaxAge: 300, NotFoundAge: -1}
	srv := httptest.NewServer(d)
	tb.Cleanup(srv.Close)
	return d, srv
}

// Set makes der, a leaf of the CA, the certificate for name.
func (d *Delivery) Set(name string, der []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.certs[name] = der
}

// Configure changes the settings with f.
func (d *Delivery) Configure(f func(*Delivery)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

// Requests returns how many requests for name arrived.
func (d *Delivery) Requests(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests[name]
}

// RequestCounts returns how many requests arrived for each name.
func (d *Delivery) RequestCounts() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.requests)
}

// Revalidations returns the If-None-Match of the last request and how many
// requests were answered 304 Not Modified.
func (d *Delivery) Revalidations() (lastIfNoneMatch string, notModified int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastINM, d.notModified
}

// ServeHTTP implements http.Handler.
func (d *Delivery) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/sni/")
	d.mu.Lock()
	d.requests[name]++
	d.lastINM = r.Header.Get("If-None-Match")
	gate, status, maxAge, notFoundAge, delay, check := d.Gate, d.Status, d.MaxAge, d.NotFoundAge, d.Delay, d.Check
	der := d.certs[name]
	d.mu.Unlock()
	if gate != nil {
		<-gate
	}
	time.Sleep(delay)
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
		d.mu.Lock()
		d.notModified++
		d.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(d.ca.Body(der))
}
