package delivery_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/delivery"
	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/principal"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/offlinetest"
)

// testTenant holds the domains the test requests; edgeRole is the
// fixtures' proxy, allowed to fetch keys.
const (
	testTenant = "arn:aws:iam::123456789012:role/platform-control"
	edgeRole   = principal.ARN("arn:aws:iam::123456789012:role/certflow-edge")
)

// EnvMeasure enables the latency measurement of TestDeliveryLatency.
const EnvMeasure = "CERTFLOW_MEASURE"

// offlineDelivery is a delivery handler over the real certstore.Store on
// DynamoDB Local and the real envelope.Sealer on moto's KMS.
type offlineDelivery struct {
	stack  *offline.Stack
	store  *certstore.Store
	sealer *envelope.Sealer
	h      *delivery.Handler
	newH   func() *delivery.Handler // a handler with fresh SDK clients
}

func startOffline(t *testing.T) *offlineDelivery {
	t.Helper()
	env := offlinetest.Start(t, offline.Options{DynamoDB: true, Moto: true})
	stack, table, cfg := env, env.Tables.Certificates, env.AWS
	o := &offlineDelivery{stack: stack}
	o.store = certstore.New(dynamodb.NewFromConfig(cfg), table)
	o.sealer = envelope.New(kms.NewFromConfig(cfg), stack.KMSKeyID)
	o.newH = func() *delivery.Handler {
		h, err := delivery.New(delivery.Config{
			Finder:  certstore.New(dynamodb.NewFromConfig(cfg.Copy()), table),
			Opener:  envelope.New(kms.NewFromConfig(cfg.Copy()), stack.KMSKeyID),
			Allowed: principal.List{edgeRole},
			Names:   domain.Policy{AllowTestingTLDs: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	var err error
	o.h, err = delivery.New(delivery.Config{Finder: o.store, Opener: o.sealer, Allowed: principal.List{edgeRole}, Names: domain.Policy{AllowTestingTLDs: true}})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// issue stores an active certificate for name through the store's own
// request and save path, with its key sealed in KMS.
func (o *offlineDelivery) issue(ctx context.Context, t testing.TB, name string, sans []string, notBefore, notAfter time.Time) (keyPEM string, serial string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sn, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: name}, DNSNames: append([]string{name}, sans...),
		NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	sealed, err := o.sealer.Seal(ctx, []byte(keyPEM), envelope.CertificateKeyContext(name))
	if err != nil {
		t.Fatal(err)
	}
	requested, _, err := o.store.Request(ctx, certstore.RequestInput{Tenant: testTenant, Domain: name, SANs: sans, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	serial = fmt.Sprintf("%x", sn)
	err = o.store.SaveIssued(ctx, certstore.Issued{
		Domain: name, Execution: requested.Execution, SANs: append([]string{name}, sans...), CertPEM: certPEM,
		Key: certstore.SealedKey{Wrapped: sealed.Wrapped, Ciphertext: sealed.Ciphertext}, KeyType: "ec256",
		NotBefore: notBefore, NotAfter: notAfter, Serial: serial, Issuer: "CN=" + name,
		RenewAt: notBefore.Add(notAfter.Sub(notBefore) * 2 / 3),
	})
	if err != nil {
		t.Fatal(err)
	}
	return keyPEM, serial
}

func sniRequest(t testing.TB, name string) events.APIGatewayV2HTTPRequest {
	req := loadEvent(t, "delivery-get.json")
	req.PathParameters = map[string]string{"name": name}
	req.RawPath = "/sni/" + name
	return req
}

func TestDeliveryOffline(t *testing.T) {
	o := startOffline(t)
	ctx := context.Background()
	now := time.Now().UTC()
	keyPEM, serial := o.issue(ctx, t, "shop.customer.example", []string{"www.shop.customer.example"}, now.Add(-time.Hour), now.Add(90*24*time.Hour))
	wildKey, _ := o.issue(ctx, t, "*.wild.customer.example", nil, now.Add(-time.Hour), now.Add(90*24*time.Hour))
	o.issue(ctx, t, "expired.customer.example", nil, now.Add(-48*time.Hour), now.Add(-time.Hour))
	if _, _, err := o.store.Request(ctx, certstore.RequestInput{Tenant: testTenant, Domain: "pending.customer.example", Now: now}); err != nil {
		t.Fatal(err)
	}
	o.issue(ctx, t, "retired.customer.example", nil, now.Add(-time.Hour), now.Add(90*24*time.Hour))
	if _, err := o.store.Retire(ctx, testTenant, "retired.customer.example"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		status  int
		wantKey string
	}{
		{"shop.customer.example", http.StatusOK, keyPEM},
		{"www.shop.customer.example", http.StatusOK, keyPEM}, // alias
		{"WWW.Shop.Customer.Example.", http.StatusOK, keyPEM},
		{"eu.wild.customer.example", http.StatusOK, wildKey}, // wildcard
		{"a.eu.wild.customer.example", http.StatusNotFound, ""},
		{"expired.customer.example", http.StatusNotFound, ""},
		{"pending.customer.example", http.StatusNotFound, ""},
		{"retired.customer.example", http.StatusNotFound, ""},
		{"unknown.customer.example", http.StatusNotFound, ""},
	} {
		resp, _ := o.h.Handle(ctx, sniRequest(t, tc.name))
		if resp.StatusCode != tc.status {
			t.Errorf("GET /sni/%s = %d (%s), want %d", tc.name, resp.StatusCode, resp.Body, tc.status)
			continue
		}
		if tc.status != http.StatusOK {
			continue
		}
		var doc struct{ PrivateKey, Serial string }
		if err := json.Unmarshal([]byte(resp.Body), &doc); err != nil || doc.PrivateKey != tc.wantKey {
			t.Errorf("GET /sni/%s: the key does not round-trip through KMS (%v)", tc.name, err)
		}
	}

	req := sniRequest(t, "shop.customer.example")
	req.Headers["if-none-match"] = `"` + serial + `.json"`
	if resp, _ := o.h.Handle(ctx, req); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match = %d, want 304", resp.StatusCode)
	}
}

// TestDeliveryLatency measures the handler against DynamoDB Local and moto's
// KMS when CERTFLOW_MEASURE=1: the very first request of a handler with new
// SDK clients, the first request for each name ("cold") and repeated
// requests ("warm"), with and without If-None-Match.
func TestDeliveryLatency(t *testing.T) {
	if os.Getenv(EnvMeasure) != "1" {
		t.Skipf("set %s=1 to measure", EnvMeasure)
	}
	o := startOffline(t)
	ctx := context.Background()
	now := time.Now().UTC()
	const names = 200
	serials := make([]string, names)
	for i := range names {
		_, serials[i] = o.issue(ctx, t, fmt.Sprintf("site%03d.customer.example", i), nil, now.Add(-time.Hour), now.Add(90*24*time.Hour))
	}
	o.issue(ctx, t, "*.wild.customer.example", nil, now.Add(-time.Hour), now.Add(90*24*time.Hour))

	measure := func(h *delivery.Handler, req events.APIGatewayV2HTTPRequest, want int) time.Duration {
		start := time.Now()
		resp, _ := h.Handle(ctx, req)
		d := time.Since(start)
		if resp.StatusCode != want {
			t.Fatalf("GET %s = %d, want %d", req.RawPath, resp.StatusCode, want)
		}
		return d
	}

	fresh := o.newH()
	first := measure(fresh, sniRequest(t, "site000.customer.example"), http.StatusOK)
	t.Logf("first request of a new handler (TCP connects, SDK set-up): %v", first.Round(time.Microsecond))

	h := o.newH()
	measure(h, sniRequest(t, "wild-warmup.wild.customer.example"), http.StatusOK) // connections up
	var cold, warm, wild, notModified []time.Duration
	for i := range names {
		cold = append(cold, measure(h, sniRequest(t, fmt.Sprintf("site%03d.customer.example", i)), http.StatusOK))
	}
	for round := range 5 {
		for i := range names {
			warm = append(warm, measure(h, sniRequest(t, fmt.Sprintf("site%03d.customer.example", i)), http.StatusOK))
			req := sniRequest(t, fmt.Sprintf("site%03d.customer.example", i))
			req.Headers["if-none-match"] = `"` + serials[i] + `.json"`
			notModified = append(notModified, measure(h, req, http.StatusNotModified))
			if i%4 == 0 {
				wild = append(wild, measure(h, sniRequest(t, fmt.Sprintf("r%d-%d.wild.customer.example", round, i)), http.StatusOK))
			}
		}
	}
	report(t, "cold (first request per name)", cold)
	report(t, "warm (repeat, 200 with KMS decrypt)", warm)
	report(t, "warm wildcard fallback", wild)
	report(t, "warm 304 (no decrypt)", notModified)
}

func report(t *testing.T, what string, ds []time.Duration) {
	t.Helper()
	slices.Sort(ds)
	p := func(q float64) time.Duration {
		return ds[min(len(ds)-1, int(q*float64(len(ds))))].Round(time.Microsecond)
	}
	t.Logf("%-40s n=%4d p50=%-10v p99=%-10v max=%v", what, len(ds), p(0.50), p(0.99), ds[len(ds)-1].Round(time.Microsecond))
}
