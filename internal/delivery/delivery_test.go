package delivery_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/delivery"
	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/principal"

	"github.com/certflow/certflow/internal/fixtures"
)

var now = time.Date(2026, 11, 21, 16, 5, 12, 0, time.UTC)

const serial = "03a1f5c2e4b6d8f0a2c4e6f8b0d2f4a6c8e0" // as in delivery-get-not-modified.json

// edge is the role the fixtures' proxy runs as, the one principal allowed
// to fetch keys.
const edge = principal.ARN("arn:aws:iam::123456789012:role/certflow-edge")

const chainPEM = "-----BEGIN CERTIFICATE-----\nMIIBleaf\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nMIIBintermediate\n-----END CERTIFICATE-----\n"

// fakeFinder resolves names like certstore.Store.GetForDelivery: the exact
// name, then the wildcard one label up.
type fakeFinder struct {
	certs map[string]*certstore.Certificate
	err   error
	calls int
}

func (f *fakeFinder) GetForDelivery(_ context.Context, name string) (*certstore.Certificate, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	for _, n := range []string{name, certstore.WildcardParent(name)} {
		if c, ok := f.certs[n]; ok && n != "" {
			cp := *c
			return &cp, nil
		}
	}
	return nil, fmt.Errorf("get certificate for %q: %w", name, certstore.ErrNotFound)
}

// fakeOpener hands out copies of key and remembers them, so a test can
// check they were wiped.
type fakeOpener struct {
	key []byte
	err error

	mu      sync.Mutex
	calls   int
	encCtx  map[string]string
	handed  [][]byte
	noTrack bool
}

func (o *fakeOpener) Open(_ context.Context, sealed envelope.Sealed, encCtx map[string]string) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	o.encCtx = maps.Clone(encCtx)
	if o.err != nil {
		return nil, o.err
	}
	if string(sealed.Wrapped) != "wrapped" || string(sealed.Ciphertext) != "ciphertext" {
		return nil, envelope.ErrOpen
	}
	k := bytes.Clone(o.key)
	if !o.noTrack {
		o.handed = append(o.handed, k)
	}
	return k, nil
}

func newKeyPEM(t testing.TB) (pemBytes, der []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err = x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), der
}

func activeCert(name string, sans ...string) *certstore.Certificate {
	return &certstore.Certificate{
		Domain: name, SANs: sans, Status: certstore.StatusActive,
		CertPEM:   chainPEM,
		Key:       certstore.SealedKey{Wrapped: []byte("wrapped"), Ciphertext: []byte("ciphertext")},
		NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(89 * 24 * time.Hour),
		Serial: serial,
	}
}

type env struct {
	finder *fakeFinder
	opener *fakeOpener
	logs   *bytes.Buffer
	h      *delivery.Handler
	keyPEM []byte
}

func newEnv(t testing.TB, certs ...*certstore.Certificate) *env {
	t.Helper()
	keyPEM, _ := newKeyPEM(t)
	e := &env{
		finder: &fakeFinder{certs: map[string]*certstore.Certificate{}},
		opener: &fakeOpener{key: keyPEM},
		logs:   &bytes.Buffer{},
		keyPEM: keyPEM,
	}
	for _, c := range certs {
		e.finder.certs[c.Domain] = c
	}
	h, err := delivery.New(delivery.Config{Finder: e.finder, Opener: e.opener, Allowed: principal.List{edge}, Now: func() time.Time { return now }, Names: domain.Policy{AllowTestingTLDs: true}})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	return e
}

// TestForbidden: only the principals the deployment lists get keys; anyone
// else is refused before anything is looked up or decrypted.
func TestForbidden(t *testing.T) {
	signedBy := func(userARN string) events.APIGatewayV2HTTPRequest {
		req := loadEvent(t, "delivery-get.json")
		req.RequestContext.Authorizer = nil
		if userARN != "" {
			req.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{UserARN: userARN},
			}
		}
		return req
	}
	for _, tc := range []struct {
		name   string
		req    events.APIGatewayV2HTTPRequest
		status int
	}{
		{"fixture: a tenant's control plane", loadEvent(t, "delivery-get-forbidden.json"), http.StatusForbidden},
		{"no IAM identity", signedBy(""), http.StatusForbidden},
		{"malformed identity", signedBy("certflow-edge"), http.StatusForbidden},
		{"the edge role of another account", signedBy("arn:aws:sts::210987654321:assumed-role/certflow-edge/i-0abc"), http.StatusForbidden},
		{"an IAM user named like the edge role", signedBy("arn:aws:iam::123456789012:user/certflow-edge"), http.StatusForbidden},
		{"the edge role, another session", signedBy("arn:aws:sts::123456789012:assumed-role/certflow-edge/i-0fff"), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, activeCert("shop.customer.example", "www.shop.customer.example"))
			resp := e.do(t, tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d (%s), want %d", resp.StatusCode, resp.Body, tc.status)
			}
			if tc.status != http.StatusForbidden {
				return
			}
			if e.finder.calls != 0 || e.opener.calls != 0 {
				t.Errorf("a refused request looked up %d and decrypted %d times, want none", e.finder.calls, e.opener.calls)
			}
			if resp.Headers["cache-control"] != "no-store" || strings.Contains(resp.Body, "BEGIN") {
				t.Errorf("403 answer = %v %q, want no-store and no material", resp.Headers, resp.Body)
			}
			if !strings.Contains(e.logs.String(), "not allowed to fetch keys") {
				t.Errorf("logs = %q, want the refusal logged", e.logs.String())
			}
		})
	}
}

func (e *env) do(t testing.TB, req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	t.Helper()
	ctx := logging.Into(context.Background(), slog.New(slog.NewJSONHandler(e.logs, nil)))
	resp, err := e.h.Handle(ctx, req)
	if err != nil {
		t.Fatalf("Handle error %v, want answers only", err)
	}
	if strings.Contains(e.logs.String(), "PRIVATE KEY") || (len(e.keyPEM) > 0 && strings.Contains(e.logs.String(), string(e.keyPEM[30:60]))) {
		t.Errorf("logs hold key material: %s", e.logs.String())
	}
	return resp
}

// wiped reports whether every key copy handed out was zeroed.
func (e *env) wiped() bool {
	for _, k := range e.opener.handed {
		for _, b := range k {
			if b != 0 {
				return false
			}
		}
	}
	return true
}

func loadEvent(t testing.TB, name string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	req := fixtures.Event[events.APIGatewayV2HTTPRequest](t, name)
	if req.Version != "2.0" || req.RequestContext.HTTP.Method != http.MethodGet || req.RequestContext.Stage != "$default" {
		t.Fatalf("fixture %s is not an HTTP API payload 2.0 GET", name)
	}
	return req
}

func TestGetJSON(t *testing.T) {
	e := newEnv(t, activeCert("shop.customer.example", "www.shop.customer.example"))
	resp := e.do(t, loadEvent(t, "delivery-get.json"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", resp.StatusCode, resp.Body)
	}
	var doc struct {
		Certificate, PrivateKey, NotAfter, Serial string
	}
	dec := json.NewDecoder(strings.NewReader(resp.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("body %q: %v", resp.Body, err)
	}
	if doc.Certificate != chainPEM || doc.PrivateKey != string(e.keyPEM) || doc.NotAfter != "2027-02-18T16:05:12Z" || doc.Serial != serial {
		t.Errorf("body = %s, want the chain, the key, notAfter and serial", resp.Body)
	}
	want := map[string]string{
		"content-type":           "application/json",
		"etag":                   `"` + serial + `.json"`,
		"cache-control":          "private, max-age=86400",
		"vary":                   "Accept",
		"x-content-type-options": "nosniff",
	}
	for k, v := range want {
		if resp.Headers[k] != v {
			t.Errorf("header %s = %q, want %q", k, resp.Headers[k], v)
		}
	}
	if got := e.opener.encCtx; got["purpose"] != "certificate-key" || got["domain"] != "shop.customer.example" || len(got) != 2 {
		t.Errorf("encryption context = %v, want certificate-key for shop.customer.example", got)
	}
	if !e.wiped() {
		t.Error("the decrypted key was not wiped after the answer")
	}
}

func TestGetPEM(t *testing.T) {
	e := newEnv(t, activeCert("shop.customer.example"))
	resp := e.do(t, loadEvent(t, "delivery-get-pem.json"))
	if resp.StatusCode != http.StatusOK || resp.Headers["content-type"] != delivery.MediaTypePEM {
		t.Fatalf("status %d content-type %q, want 200 %s", resp.StatusCode, resp.Headers["content-type"], delivery.MediaTypePEM)
	}
	if want := string(e.keyPEM) + chainPEM; resp.Body != want {
		t.Errorf("body = %q, want key then chain", resp.Body)
	}
	if got, want := resp.Headers["etag"], `"`+serial+`.pem"`; got != want {
		t.Errorf("etag = %s, want %s", got, want)
	}
	if !e.wiped() {
		t.Error("the decrypted key was not wiped after the answer")
	}
}

func TestGetDERKey(t *testing.T) {
	e := newEnv(t, activeCert("shop.customer.example"))
	keyPEM, der := newKeyPEM(t)
	e.opener.key, e.keyPEM = der, keyPEM
	resp := e.do(t, loadEvent(t, "delivery-get-pem.json"))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Body, string(keyPEM)) {
		t.Errorf("DER key: %d %q, want the PKCS #8 PEM first", resp.StatusCode, resp.Body)
	}
}

func TestGetWildcard(t *testing.T) {
	e := newEnv(t, activeCert("*.shop.customer.example"))
	resp := e.do(t, loadEvent(t, "delivery-get-wildcard.json")) // eu.shop.customer.example
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200 from the wildcard", resp.StatusCode)
	}
	if got := e.opener.encCtx["domain"]; got != "*.shop.customer.example" {
		t.Errorf("encryption context domain = %q, want the certificate item's *.shop.customer.example", got)
	}

	// Two labels down is not covered.
	req := loadEvent(t, "delivery-get-wildcard.json")
	req.PathParameters["name"] = "a.eu.shop.customer.example"
	if resp := e.do(t, req); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a.eu.shop.customer.example = %d, want 404", resp.StatusCode)
	}
}

func TestNotModified(t *testing.T) {
	for _, tc := range []struct {
		ifNoneMatch string
		accept      string
		want        int
	}{
		{`"` + serial + `.json"`, "", http.StatusNotModified},
		{`W/"` + serial + `.json"`, "", http.StatusNotModified},
		{`"other", "` + serial + `.json"`, "", http.StatusNotModified},
		{`*`, "", http.StatusNotModified},
		{`"` + serial + `.pem"`, delivery.MediaTypePEM, http.StatusNotModified},
		{`"` + serial + `.pem"`, "", http.StatusOK}, // JSON wanted, PEM held
		{`"00ff.json"`, "", http.StatusOK},          // an older certificate
		{`"` + serial + `.json"`, delivery.MediaTypePEM, http.StatusOK},
	} {
		t.Run(tc.ifNoneMatch+" "+tc.accept, func(t *testing.T) {
			e := newEnv(t, activeCert("shop.customer.example"))
			req := loadEvent(t, "delivery-get-not-modified.json")
			req.Headers["if-none-match"] = tc.ifNoneMatch
			if tc.accept != "" {
				req.Headers["accept"] = tc.accept
			}
			resp := e.do(t, req)
			if resp.StatusCode != tc.want {
				t.Fatalf("If-None-Match %s = %d, want %d", tc.ifNoneMatch, resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusNotModified {
				if e.opener.calls != 0 {
					t.Errorf("304 decrypted the key %d times, want 0", e.opener.calls)
				}
				if resp.Body != "" || resp.Headers["etag"] == "" || resp.Headers["cache-control"] == "" {
					t.Errorf("304 = %q %v, want no body with etag and cache-control", resp.Body, resp.Headers)
				}
			}
		})
	}
	// The fixture as it is.
	e := newEnv(t, activeCert("shop.customer.example"))
	if resp := e.do(t, loadEvent(t, "delivery-get-not-modified.json")); resp.StatusCode != http.StatusNotModified || e.opener.calls != 0 {
		t.Errorf("fixture: %d with %d decryptions, want 304 and none", resp.StatusCode, e.opener.calls)
	}
}

func TestServedUntilExpiryUnlessRetired(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*certstore.Certificate)
		want   int
	}{
		{"active", func(*certstore.Certificate) {}, http.StatusOK},
		{"requested again", func(c *certstore.Certificate) { c.Status = certstore.StatusPending }, http.StatusOK},
		{"failing", func(c *certstore.Certificate) { c.Status = certstore.StatusFailed }, http.StatusOK},
		{"quarantined", func(c *certstore.Certificate) { c.Status = certstore.StatusQuarantined }, http.StatusOK},
		{"quarantined and expired", func(c *certstore.Certificate) {
			c.Status, c.NotAfter = certstore.StatusQuarantined, now.Add(-time.Second)
		}, http.StatusNotFound},
		{"retired", func(c *certstore.Certificate) { c.Status = certstore.StatusRetired }, http.StatusNotFound},
		{"expired", func(c *certstore.Certificate) { c.NotAfter = now.Add(-time.Second) }, http.StatusNotFound},
		{"expires now", func(c *certstore.Certificate) { c.NotAfter = now }, http.StatusNotFound},
		{"one second left", func(c *certstore.Certificate) { c.NotAfter = now.Add(time.Second) }, http.StatusOK},
		{"no certificate", func(c *certstore.Certificate) { c.CertPEM = "" }, http.StatusNotFound},
		{"item for another name", func(c *certstore.Certificate) { c.Domain = "other.customer.example" }, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := activeCert("shop.customer.example")
			tc.mutate(c)
			e := newEnv(t)
			e.finder.certs["shop.customer.example"] = c
			resp := e.do(t, loadEvent(t, "delivery-get.json"))
			if resp.StatusCode != tc.want {
				t.Fatalf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusNotFound {
				if cc := resp.Headers["cache-control"]; cc != "max-age=60" {
					t.Errorf("404 cache-control = %q, want max-age=60", cc)
				}
				if e.opener.calls != 0 {
					t.Errorf("404 decrypted the key")
				}
			}
		})
	}
}

func TestNotFoundAndInvalidNames(t *testing.T) {
	e := newEnv(t, activeCert("shop.customer.example"))
	for _, fixture := range []string{"delivery-get-not-found.json", "delivery-get-invalid-name.json"} {
		resp := e.do(t, loadEvent(t, fixture))
		if resp.StatusCode != http.StatusNotFound || resp.Headers["cache-control"] != "max-age=60" {
			t.Errorf("%s = %d %q, want 404 max-age=60", fixture, resp.StatusCode, resp.Headers["cache-control"])
		}
	}
	calls := e.finder.calls
	for _, name := range []string{"%00junk..", "127.0.0.1", "localhost", "a..b.example", "%zz", "-x.example", "x.local", strings.Repeat("a", 300)} {
		req := loadEvent(t, "delivery-get.json")
		req.PathParameters["name"] = name
		if resp := e.do(t, req); resp.StatusCode != http.StatusNotFound || resp.Headers["cache-control"] != "max-age=60" {
			t.Errorf("GET /sni/%s = %d, want 404 max-age=60", name, resp.StatusCode)
		}
	}
	if e.finder.calls != calls {
		t.Errorf("invalid names were looked up %d times, want 0", e.finder.calls-calls)
	}

	// Names are normalised before the lookup.
	req := loadEvent(t, "delivery-get.json")
	req.PathParameters["name"] = "SHOP.Customer.Example."
	if resp := e.do(t, req); resp.StatusCode != http.StatusOK {
		t.Errorf("SHOP.Customer.Example. = %d, want 200", resp.StatusCode)
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t, activeCert("shop.customer.example"))
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/sni/shop.customer.example", http.StatusOK},
		{http.MethodPost, "/sni/shop.customer.example", http.StatusMethodNotAllowed},
		{http.MethodGet, "/sni/", http.StatusNotFound},
		{http.MethodGet, "/sni/a/b", http.StatusNotFound},
		{http.MethodGet, "/other", http.StatusNotFound},
	} {
		req := events.APIGatewayV2HTTPRequest{RouteKey: "$default", RawPath: tc.path}
		req.RequestContext.HTTP.Method = tc.method
		req.RequestContext.Authorizer = loadEvent(t, "delivery-get.json").RequestContext.Authorizer
		if resp := e.do(t, req); resp.StatusCode != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
}

func TestFailuresAreInternal(t *testing.T) {
	for _, tc := range []struct {
		name    string
		finder  error
		opener  error
		key     []byte
		wantLog string
	}{
		{name: "lookup", finder: errors.New("dynamodb: throttled"), wantLog: "throttled"},
		{name: "open", opener: fmt.Errorf("open: %w", envelope.ErrOpen), wantLog: "cannot open"},
		{name: "not a key", key: []byte("garbage"), wantLog: "neither PEM nor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, activeCert("shop.customer.example"))
			e.finder.err, e.opener.err = tc.finder, tc.opener
			if tc.key != nil {
				e.opener.key = tc.key
			}
			resp := e.do(t, loadEvent(t, "delivery-get.json"))
			if resp.StatusCode != http.StatusInternalServerError || resp.Headers["cache-control"] != "no-store" {
				t.Errorf("status %d cache-control %q, want 500 no-store", resp.StatusCode, resp.Headers["cache-control"])
			}
			if strings.Contains(resp.Body, tc.wantLog) {
				t.Errorf("body %q leaks the cause", resp.Body)
			}
			if n := strings.Count(e.logs.String(), "\n"); n != 1 || !strings.Contains(e.logs.String(), tc.wantLog) {
				t.Errorf("logs = %q, want the cause once", e.logs.String())
			}
		})
	}
}

func TestCacheLifetime(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		name                string
		notBefore, notAfter time.Time
		want                string
	}{
		{"fresh 90-day certificate: capped at a day", now, now.Add(90 * day), "86400"},
		{"90-day certificate at two thirds", now.Add(-60 * day), now.Add(30 * day), "0"},
		{"90-day certificate just before two thirds", now.Add(-60*day + time.Hour), now.Add(30*day + time.Hour), "3600"},
		{"past two thirds", now.Add(-80 * day), now.Add(10 * day), "0"},
		{"fresh 6-day certificate", now, now.Add(6 * day), "86400"},
		{"fresh 1-day certificate", now, now.Add(day), "57600"}, // 24h - 8h
		{"3-day certificate after a day and a half", now.Add(-36 * time.Hour), now.Add(36 * time.Hour), "43200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := activeCert("shop.customer.example")
			c.NotBefore, c.NotAfter = tc.notBefore, tc.notAfter
			e := newEnv(t, c)
			resp := e.do(t, loadEvent(t, "delivery-get.json"))
			if got, want := resp.Headers["cache-control"], "private, max-age="+tc.want; got != want {
				t.Errorf("cache-control = %q, want %q", got, want)
			}
		})
	}
}

func TestAcceptNegotiation(t *testing.T) {
	for _, tc := range []struct {
		accept string
		want   string
	}{
		{"", delivery.MediaTypeJSON},
		{"*/*", delivery.MediaTypeJSON},
		{"application/json", delivery.MediaTypeJSON},
		{"application/x-pem-file", delivery.MediaTypePEM},
		{"application/x-pem-file, */*;q=0.1", delivery.MediaTypePEM},
		{"application/x-pem-file, */*", delivery.MediaTypePEM},
		{"application/json, application/x-pem-file", delivery.MediaTypeJSON},
		{"application/json;q=0.5, application/x-pem-file", delivery.MediaTypePEM},
		{"application/x-pem-file;q=0", delivery.MediaTypeJSON},
		{"text/html", delivery.MediaTypeJSON},
		{"garbage;;;", delivery.MediaTypeJSON},
	} {
		e := newEnv(t, activeCert("shop.customer.example"))
		req := loadEvent(t, "delivery-get.json")
		req.Headers = map[string]string{"Accept": tc.accept}
		resp := e.do(t, req)
		if got := resp.Headers["content-type"]; got != tc.want {
			t.Errorf("Accept %q: content-type %q, want %q", tc.accept, got, tc.want)
		}
	}
}

// BenchmarkDeliveryHandler measures the handler with in-memory fakes: name
// normalisation, lookup, key handling and the JSON answer.
func BenchmarkDeliveryHandler(b *testing.B) {
	for _, bc := range []struct {
		name        string
		accept      string
		ifNoneMatch string
	}{
		{"json", "", ""},
		{"pem", delivery.MediaTypePEM, ""},
		{"not-modified", "", `"` + serial + `.json"`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, activeCert("shop.customer.example"))
			e.opener.noTrack = true
			e.h, _ = delivery.New(delivery.Config{Finder: e.finder, Opener: e.opener, Allowed: principal.List{edge}, Now: func() time.Time { return now }, Names: domain.Policy{AllowTestingTLDs: true}})
			req := loadEvent(b, "delivery-get.json")
			if bc.accept != "" {
				req.Headers["accept"] = bc.accept
			}
			if bc.ifNoneMatch != "" {
				req.Headers["if-none-match"] = bc.ifNoneMatch
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				resp, _ := e.h.Handle(ctx, req)
				if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotModified {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
