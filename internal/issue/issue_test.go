package issue

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certflow/certflow/internal/acme"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/logging"

	"github.com/certflow/certflow/internal/fixtures"
)

type fakeObtainer struct {
	got  []acme.Request
	cert *acme.Certificate
	err  error
}

func (f *fakeObtainer) Obtain(_ context.Context, req acme.Request) (*acme.Certificate, error) {
	f.got = append(f.got, req)
	if f.err != nil {
		return nil, f.err
	}
	return f.cert, nil
}

type fakeSealer struct {
	plaintext []byte
	encCtx    map[string]string
	err       error
}

func (f *fakeSealer) Seal(_ context.Context, plaintext []byte, encCtx map[string]string) (envelope.Sealed, error) {
	f.plaintext = slices.Clone(plaintext)
	f.encCtx = encCtx
	if f.err != nil {
		return envelope.Sealed{}, f.err
	}
	return envelope.Sealed{Wrapped: []byte("wrapped"), Ciphertext: []byte("ciphertext")}, nil
}

// twoThirds renews at two thirds of the lifetime, the policy without ARI.
type twoThirds struct{}

func (twoThirds) RenewAt(_ context.Context, leaf *x509.Certificate, _ string) time.Time {
	return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
}

type fakeSaver struct {
	saved []certstore.Issued
	err   error
}

func (f *fakeSaver) SaveIssued(_ context.Context, in certstore.Issued) error {
	f.saved = append(f.saved, in)
	return f.err
}

var notBefore = time.Date(2026, 11, 21, 16, 0, 0, 0, time.UTC)

func testCertificate(t *testing.T) *acme.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x0a1b2c),
		Subject:      pkix.Name{CommonName: "blog.customer.example"},
		Issuer:       pkix.Name{CommonName: "Pebble Intermediate CA"},
		DNSNames:     []string{"blog.customer.example", "www.blog.customer.example"},
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(90 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return &acme.Certificate{
		CertPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:    pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		NotBefore: leaf.NotBefore,
		NotAfter:  leaf.NotAfter,
		Serial:    acme.SerialHex(leaf),
		Issuer:    "Pebble Intermediate CA",
		ARICertID: "aki.CgsM",
		Leaf:      leaf,
	}
}

func readFixture(t *testing.T) flow.Input {
	t.Helper()
	return fixtures.Event[flow.Input](t, "issue.json")
}

func TestHandleFixture(t *testing.T) {
	cert := testCertificate(t)
	keyPEM := cert.KeyPEM
	wantKey := slices.Clone(keyPEM)
	o := &fakeObtainer{cert: cert}
	s := &fakeSealer{}
	sv := &fakeSaver{}
	var logs bytes.Buffer
	h := New(o, s, twoThirds{}, sv, "ec256", domain.Policy{AllowTestingTLDs: true})

	ctx := logging.Into(context.Background(), slog.New(slog.NewJSONHandler(&logs, nil)))
	out, err := h.Handle(ctx, readFixture(t))
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	wantReq := acme.Request{Domain: "blog.customer.example", SANs: []string{"www.blog.customer.example"}}
	if len(o.got) != 1 || o.got[0].Domain != wantReq.Domain || !slices.Equal(o.got[0].SANs, wantReq.SANs) || o.got[0].ReplacesCertID != "" {
		t.Errorf("Obtain requests = %+v, want [%+v]", o.got, wantReq)
	}
	if !bytes.Equal(s.plaintext, wantKey) {
		t.Error("Seal did not get the certificate key")
	}
	if want := map[string]string{"purpose": "certificate-key", "domain": "blog.customer.example"}; !mapsEqual(s.encCtx, want) {
		t.Errorf("encryption context = %v, want %v", s.encCtx, want)
	}
	if !bytes.Equal(keyPEM, make([]byte, len(keyPEM))) {
		t.Error("the plaintext key was not zeroed")
	}
	wantRenew := notBefore.Add(60 * 24 * time.Hour)
	if len(sv.saved) != 1 {
		t.Fatalf("SaveIssued calls = %d, want 1", len(sv.saved))
	}
	got := sv.saved[0]
	if got.Domain != "blog.customer.example" || !slices.Equal(got.SANs, []string{"blog.customer.example", "www.blog.customer.example"}) ||
		got.Serial != "0a1b2c" || got.Issuer != "Pebble Intermediate CA" || got.ARICertID != "aki.CgsM" || got.KeyType != "ec256" ||
		!got.RenewAt.Equal(wantRenew) || string(got.Key.Wrapped) != "wrapped" || strings.Contains(got.CertPEM, "PRIVATE KEY") {
		t.Errorf("SaveIssued(%+v) does not hold the issued certificate", got)
	}
	want := flow.Issued{Domain: "blog.customer.example", Serial: "0a1b2c", NotBefore: notBefore, NotAfter: notBefore.Add(90 * 24 * time.Hour), RenewAt: wantRenew}
	if out != want {
		t.Errorf("Handle = %+v, want %+v", out, want)
	}
	b, _ := json.Marshal(out)
	if wantJSON := `{"domain":"blog.customer.example","serial":"0a1b2c","notBefore":"2026-11-21T16:00:00Z","notAfter":"2027-02-19T16:00:00Z","renewAt":"2027-01-20T16:00:00Z","renewed":false}`; string(b) != wantJSON {
		t.Errorf("flow.Issued JSON = %s, want %s", b, wantJSON)
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") || !strings.Contains(logs.String(), `"serial":"0a1b2c"`) {
		t.Errorf("log = %s, want the serial and no key", logs.String())
	}
}

func TestHandleRenewalAndIDN(t *testing.T) {
	o := &fakeObtainer{cert: testCertificate(t)}
	h := New(o, &fakeSealer{}, twoThirds{}, &fakeSaver{}, "ec256", domain.Policy{AllowTestingTLDs: true})
	out, err := h.Handle(context.Background(), flow.Input{Domain: "Bücher.Customer.Example.", SANs: []string{"www.bücher.customer.example", "bücher.customer.example"}, Replaces: "aki.serial", ReplacesSerial: "01"})
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if r := o.got[0]; r.Domain != "xn--bcher-kva.customer.example" || !slices.Equal(r.SANs, []string{"www.xn--bcher-kva.customer.example"}) || r.ReplacesCertID != "aki.serial" {
		t.Errorf("Obtain request = %+v, want punycode names and replaces", r)
	}
	if !out.Renewed || out.Domain != "xn--bcher-kva.customer.example" {
		t.Errorf("Handle = %+v, want renewed xn--bcher-kva.customer.example", out)
	}
}

func TestHandleErrors(t *testing.T) {
	rateLimited := &failure.RateLimitedError{Message: "slow down", RetryAfter: time.Hour}
	storeErr := errors.New("throttled")
	tests := []struct {
		name     string
		in       flow.Input
		obtain   error
		seal     error
		save     error
		wantType string // failure type name; "" = unclassified
		wantIs   error
	}{
		{name: "invalid primary", in: flow.Input{Domain: "bad_name.example"}, wantType: "InvalidInputError"},
		{name: "invalid SAN", in: flow.Input{Domain: "ok.customer.example", SANs: []string{"*.*.customer.example"}}, wantType: "InvalidInputError"},
		{name: "empty", in: flow.Input{}, wantType: "InvalidInputError"},
		{name: "CA failure passes through", in: flow.Input{Domain: "ok.customer.example"}, obtain: rateLimited, wantType: "RateLimitedError", wantIs: rateLimited},
		{name: "seal failure", in: flow.Input{Domain: "ok.customer.example"}, seal: storeErr, wantIs: storeErr},
		{name: "retired while issuing", in: flow.Input{Domain: "ok.customer.example"}, save: certstore.ErrRetired, wantType: "DomainRetiredError", wantIs: certstore.ErrRetired},
		{name: "save failure", in: flow.Input{Domain: "ok.customer.example"}, save: certstore.ErrStale, wantIs: certstore.ErrStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := testCertificate(t)
			keyPEM := cert.KeyPEM
			o := &fakeObtainer{cert: cert, err: tt.obtain}
			sv := &fakeSaver{err: tt.save}
			h := New(o, &fakeSealer{err: tt.seal}, twoThirds{}, sv, "ec256", domain.Policy{AllowTestingTLDs: true})
			_, err := h.Handle(context.Background(), tt.in)
			if err == nil {
				t.Fatalf("Handle(%+v) succeeded, want an error", tt.in)
			}
			gotType := ""
			if f, ok := failure.Find(err); ok {
				gotType = failure.TypeName(f)
			}
			if gotType != tt.wantType {
				t.Errorf("Handle(%+v) = %v (type %q), want type %q", tt.in, err, gotType, tt.wantType)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Handle(%+v) = %v, want it to wrap %v", tt.in, err, tt.wantIs)
			}
			if tt.obtain == nil && len(o.got) > 0 && !bytes.Equal(keyPEM, make([]byte, len(keyPEM))) {
				t.Error("the plaintext key was not zeroed after a failure")
			}
			if strings.HasPrefix(tt.name, "invalid") && len(o.got) > 0 {
				t.Error("an invalid name reached the CA")
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
