package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCA signs leaf certificates for the tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "certflow-gateway test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns the delivery endpoint's JSON answer for a new leaf for name.
func (ca *testCA) issue(t testing.TB, name string, serial int64) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]string{
		"certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) +
			string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})),
		"privateKey": string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})),
		"notAfter":   tmpl.NotAfter.UTC().Format(time.RFC3339),
		"serial":     fmt.Sprintf("%x", serial),
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// delivery is a fake delivery endpoint: GET /sni/{name}.
type delivery struct {
	mu       sync.Mutex
	bodies   map[string][]byte
	requests map[string]int
	down     bool
	delay    time.Duration // added to every answer, like the delivery Lambda's latency
	auth     []string      // Authorization headers seen
}

func newDelivery(t *testing.T) (*delivery, *httptest.Server) {
	d := &delivery{bodies: map[string][]byte{}, requests: map[string]int{}}
	srv := httptest.NewServer(d) // 127.0.0.1
	t.Cleanup(srv.Close)
	return d, srv
}

func (d *delivery) set(name string, body []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.bodies[name] = body
}

func (d *delivery) setDown(down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = down
}

func (d *delivery) count(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests[name]
}

func (d *delivery) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, _ := strings.CutPrefix(r.URL.Path, "/sni/")
	d.mu.Lock()
	d.requests[name]++
	d.auth = append(d.auth, r.Header.Get("Authorization"))
	body, down, delay := d.bodies[name], d.down, d.delay
	d.mu.Unlock()
	time.Sleep(delay)
	switch {
	case down:
		http.Error(w, `{"error":{"code":"internal","message":"down"}}`, http.StatusInternalServerError)
	case body == nil:
		w.Header().Set("Cache-Control", "max-age=60")
		http.Error(w, "no certificate", http.StatusNotFound)
	default:
		w.Header().Set("Cache-Control", "private, max-age=300")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
