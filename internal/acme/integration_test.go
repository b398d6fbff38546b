package acme_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/go-acme/lego/v4/challenge"
	legolog "github.com/go-acme/lego/v4/log"
	"github.com/miekg/dns"

	"github.com/certflow/certflow/internal/account"
	"github.com/certflow/certflow/internal/acme"
	"github.com/certflow/certflow/internal/dns01"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/validation"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/caproxy"
	"github.com/certflow/certflow/offline/offlinetest"
)

// The package's integration tests share one offline stack: Pebble and
// challtestsrv for the CA, DynamoDB Local and moto (KMS) for the account
// store, and an in-memory HTTP-01 responder where Pebble validates.
var (
	stack    *offline.Stack
	accounts *account.Store
	http01   = newMemHTTP01()
	setupErr error
)

func TestMain(m *testing.M) {
	// lego logs every step through the standard logger; keep test output
	// readable. (lego's logger is a package variable.)
	legolog.Logger = stdlog.New(io.Discard, "", 0)
	if os.Getenv("CERTFLOW_LEGO_LOG") == "1" {
		legolog.Logger = stdlog.New(os.Stderr, "lego ", stdlog.Lmicroseconds)
	}
	os.Exit(offlinetest.Main(m, offline.Options{Pebble: true, DynamoDB: true, Moto: true}, func(s *offline.Stack) {
		stack = s
		sealer := envelope.New(kms.NewFromConfig(s.AWS), s.KMSKeyID)
		accounts = account.New(dynamodb.NewFromConfig(s.AWS), s.Tables.Certificates, sealer, nil)
		// Every DNS lookup lego makes goes to challtestsrv on loopback.
		dns01.UseResolvers([]string{s.DNSAddr})
		setupErr = http01.serve(s.HTTP01Addr)
	}))
}

// requireStack skips t without the offline tools.
func requireStack(t *testing.T) {
	t.Helper()
	offlinetest.Require(t)
	if setupErr != nil {
		t.Fatalf("set up: %v", setupErr)
	}
}

// slowDelay is how long names starting with "slow." wait for their
// HTTP-01 answer: Pebble's validation stays pending meanwhile.
const slowDelay = 7 * time.Second

// memHTTP01 is an HTTP-01 provider that keeps key authorizations in memory
// and serves them where Pebble validates.
type memHTTP01 struct {
	mu        sync.Mutex
	tokens    map[string]string
	presented atomic.Int64
}

var _ challenge.Provider = (*memHTTP01)(nil)

func newMemHTTP01() *memHTTP01 { return &memHTTP01{tokens: map[string]string{}} }

func (p *memHTTP01) Present(_, token, keyAuth string) error {
	p.presented.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokens[token] = keyAuth
	return nil
}

func (p *memHTTP01) CleanUp(_, token, _ string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.tokens, token)
	return nil
}

func (p *memHTTP01) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/")
	p.mu.Lock()
	keyAuth, found := p.tokens[token]
	p.mu.Unlock()
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	if strings.HasPrefix(r.Host, "slow.") {
		time.Sleep(slowDelay)
	}
	_, _ = w.Write([]byte(keyAuth))
}

// serve answers HTTP-01 validations on addr until the process ends.
func (p *memHTTP01) serve(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() { _ = (&http.Server{Handler: p, ReadHeaderTimeout: 5 * time.Second}).Serve(ln) }()
	return nil
}

// config is the configuration of a client of the CA at dirURL.
func config(t *testing.T, dirURL string) acme.Config {
	t.Helper()
	dnsProvider, err := dns01.NewProvider(dns01.KindChallTestSrv, dns01.Config{ChallTestSrvURL: stack.ChallSrvURL})
	if err != nil {
		t.Fatal(err)
	}
	return acme.Config{
		DirectoryURL: dirURL,
		Email:        "ops@customer.example",
		CARoots:      stack.PebbleTLSCAFile,
		HTTP01:       http01,
		DNS01:        dnsProvider,
		DNSResolvers: []string{stack.DNSAddr},
	}
}

// newClient builds a client as a cold start does.
func newClient(t *testing.T, cfg acme.Config) *acme.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := acme.New(ctx, cfg, accounts)
	if err != nil {
		t.Fatalf("acme.New(%s): %v", cfg.DirectoryURL, err)
	}
	return c
}

// startProxy puts a caproxy between the test's clients and Pebble.
func startProxy(t *testing.T) *caproxy.Proxy {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := caproxy.Start(ctx, caproxy.Options{Upstream: stack.PebbleDirectoryURL, UpstreamCAFile: stack.PebbleTLSCAFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// issue takes an order through every step with one client.
func issue(t *testing.T, ctx context.Context, c *acme.Client, names []string, m acme.Method) (acme.Order, *acme.Certificate) {
	t.Helper()
	o, err := c.Place(ctx, names, "", "")
	if err != nil {
		t.Fatalf("Place(%v): %v", names, err)
	}
	return o, complete(t, ctx, c, o, m)
}

// complete authorizes, finalizes and fetches o, and checks the
// certificate against its key.
func complete(t *testing.T, ctx context.Context, c *acme.Client, o acme.Order, m acme.Method) *acme.Certificate {
	t.Helper()
	if err := c.Authorize(ctx, o, m); err != nil {
		t.Fatalf("Authorize(%v, %s): %v", o.Names, m, err)
	}
	keyPEM, csr, err := c.NewKeyAndCSR(o.Names)
	if err != nil {
		t.Fatal(err)
	}
	defer clear(keyPEM)
	st, err := c.Finalize(ctx, o, csr)
	if err != nil || st.Status != acme.StatusValid || st.Certificate == "" {
		t.Fatalf("Finalize(%v) = %+v, %v; want valid with a certificate URL", o.Names, st, err)
	}
	cert, err := c.Fetch(ctx, o)
	if err != nil {
		t.Fatalf("Fetch(%v): %v", o.Names, err)
	}
	if _, err := tls.X509KeyPair(cert.CertPEM, keyPEM); err != nil {
		t.Errorf("key of %v does not match its certificate: %v", o.Names, err)
	}
	return cert
}

// verify checks cert's chain against Pebble's root for each name.
func verify(t *testing.T, s *offline.Stack, cert *acme.Certificate, names []string) {
	t.Helper()
	roots, err := s.PebbleRoots()
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	rest := cert.CertPEM
	for n := 0; ; n++ {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			if n < 2 {
				t.Fatalf("chain has %d certificates, want leaf and intermediate", n)
			}
			break
		}
		if n > 0 {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			inter.AddCert(c)
		}
	}
	for _, name := range names {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter}); err != nil {
			t.Errorf("chain does not verify for %q against Pebble's root: %v", name, err)
		}
	}
	if cert.Serial != acme.SerialHex(cert.Leaf) || cert.ARICertID == "" || cert.Issuer == "" || !cert.NotAfter.After(cert.NotBefore) {
		t.Errorf("certificate = serial %s, ARI %q, issuer %q, %s to %s", cert.Serial, cert.ARICertID, cert.Issuer, cert.NotBefore, cert.NotAfter)
	}
}

func failureOf(err error) (failure.Failure, string) {
	if f, ok := failure.Find(err); ok {
		return f, failure.TypeName(f)
	}
	return nil, ""
}

func TestIssue(t *testing.T) {
	requireStack(t)
	ctx := testContext(t)
	c := newClient(t, config(t, stack.PebbleDirectoryURL))
	names := []string{"www.e2e.acme.example", "E2E.acme.example"}
	o, err := c.Place(ctx, names, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"e2e.acme.example", "www.e2e.acme.example"}; !slices.Equal(o.Names, want) || o.URL == "" || o.Account != c.AccountURI() || o.Profile == "" {
		t.Errorf("Place() = %+v, want names %v, a URL, account %s and Pebble's profile", o, want, c.AccountURI())
	}
	st, err := c.State(ctx, o)
	if err != nil || st.Status != acme.StatusPending || len(st.Authorizations) != 2 || st.Finalize == "" || !st.Expires.After(time.Now()) {
		t.Errorf("State() = %+v, %v; want pending with 2 authorizations", st, err)
	}
	before := http01.presented.Load()
	cert := complete(t, ctx, c, o, acme.MethodHTTP01)
	verify(t, stack, cert, o.Names)
	if n := http01.presented.Load() - before; n != 2 {
		t.Errorf("%d HTTP-01 tokens presented, want one per name (2)", n)
	}
	// Every step again is harmless: nothing is left to do.
	if err := c.Authorize(ctx, o, acme.MethodHTTP01); err != nil {
		t.Errorf("Authorize(valid order) = %v", err)
	}
	if st, err := c.Finalize(ctx, o, nil); err != nil || st.Status != acme.StatusValid {
		t.Errorf("Finalize(valid order) = %+v, %v", st, err)
	}
	if c.DirectoryURL() != stack.PebbleDirectoryURL || !slices.Equal(c.CAAIdentities(), []string{"pebble.letsencrypt.org"}) {
		t.Errorf("DirectoryURL() = %s, CAAIdentities() = %v", c.DirectoryURL(), c.CAAIdentities())
	}
	// The account key is not the certificate key, and revocation signs
	// with the account.
	if err := c.Revoke(ctx, cert.CertPEM, 4); err != nil {
		t.Errorf("Revoke: %v", err)
	}
	if err := c.Revoke(ctx, cert.CertPEM, 4); err == nil {
		t.Error("revoking a revoked certificate succeeded")
	}
}

func TestRejections(t *testing.T) {
	requireStack(t)
	ctx := testContext(t)
	c := newClient(t, config(t, stack.PebbleDirectoryURL))

	_, err := c.Place(ctx, []string{"fine.acme.example", offline.BlockedDomain}, "", "")
	if _, typ := failureOf(err); typ != "DomainRejectedError" {
		t.Errorf("Place(blocked) = %v (%s), want DomainRejectedError", err, typ)
	}

	o, err := c.Place(ctx, []string{"unserved.acme.example"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(t, stack.PebbleDirectoryURL)
	cfg.HTTP01 = silentProvider{}
	silent := newClient(t, cfg)
	err = silent.Authorize(ctx, o, acme.MethodHTTP01)
	if f, typ := failureOf(err); typ != "ChallengeFailedError" || f.Detail().Reason != "" {
		t.Errorf("Authorize(token not served) = %v (%s), want ChallengeFailedError without reason", err, typ)
	}
	st, err := c.State(ctx, o)
	if _, typ := failureOf(st.Problem); err != nil || st.Status != acme.StatusInvalid || typ != "ChallengeFailedError" {
		t.Errorf("State(failed order) = %+v, %v; want invalid with a ChallengeFailedError problem", st, err)
	}

	// A wildcard cannot be proved over HTTP: without a DNS-01 provider,
	// MethodHTTP01 cannot take it.
	cfg.HTTP01, cfg.DNS01 = http01, nil
	noDNS := newClient(t, cfg)
	w, err := noDNS.Place(ctx, []string{"*.nodns.acme.example"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := noDNS.Authorize(ctx, w, acme.MethodHTTP01); !isType(err, "InvalidInputError") {
		t.Errorf("Authorize(wildcard) without DNS-01 = %v, want InvalidInputError", err)
	}
	if err := noDNS.Authorize(ctx, w, "tls-alpn-01"); !isType(err, "InvalidInputError") {
		t.Errorf("Authorize(unknown method) = %v, want InvalidInputError", err)
	}
}

func isType(err error, want string) bool {
	_, typ := failureOf(err)
	return typ == want
}

// silentProvider accepts challenges and publishes nothing.
type silentProvider struct{}

func (silentProvider) Present(string, string, string) error { return nil }
func (silentProvider) CleanUp(string, string, string) error { return nil }

// TestResume places an order with one client and completes it with
// another, as a later invocation after a cold start does: the CA sees one
// order.
func TestResume(t *testing.T) {
	requireStack(t)
	ctx := testContext(t)
	p := startProxy(t)
	cfg := config(t, p.DirectoryURL())
	first := newClient(t, cfg)
	names := []string{"resume.acme.example", "www.resume.acme.example"}
	o, err := first.Place(ctx, names, "", "")
	if err != nil {
		t.Fatal(err)
	}
	// What the caller persists between steps survives JSON.
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var resumed acme.Order
	if err := json.Unmarshal(b, &resumed); err != nil {
		t.Fatal(err)
	}

	second := newClient(t, cfg)
	if second.AccountURI() != first.AccountURI() {
		t.Fatalf("second client's account %s, want the stored %s", second.AccountURI(), first.AccountURI())
	}
	st, err := second.State(ctx, resumed)
	if err != nil || st.Status != acme.StatusPending {
		t.Fatalf("State(resumed) = %+v, %v; want pending", st, err)
	}
	cert := complete(t, ctx, second, resumed, acme.MethodHTTP01)
	verify(t, stack, cert, names)

	if n := len(p.NewOrders()); n != 1 {
		t.Errorf("%d newOrder requests, want exactly 1", n)
	}
	if got := p.OrdersPerIdentifierSet(); got["resume.acme.example,www.resume.acme.example"] != 1 {
		t.Errorf("orders per identifier set = %v, want one", got)
	}
	if s := p.Stats()[caproxy.OpFinalize]; s.Requests != 1 {
		t.Errorf("%d finalize requests, want 1", s.Requests)
	}
}

// TestFinalizeAnswerLost: the CA finalizes but the answer never arrives;
// the order is picked up where it is, without a second order or a second
// finalization.
func TestFinalizeAnswerLost(t *testing.T) {
	requireStack(t)
	ctx := testContext(t)
	p := startProxy(t)
	c := newClient(t, config(t, p.DirectoryURL()))
	names := []string{"lost.acme.example"}
	o, err := c.Place(ctx, names, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Authorize(ctx, o, acme.MethodHTTP01); err != nil {
		t.Fatal(err)
	}
	keyPEM, csr, err := c.NewKeyAndCSR(names)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetFaults(caproxy.Faults{Rules: []caproxy.Rule{{Kind: caproxy.DropResponse, Ops: []caproxy.Op{caproxy.OpFinalize}, Count: 1}}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Finalize(ctx, o, csr)
	if f, _ := failureOf(err); f == nil || f.Detail().Code != failure.CodeCAUnreachable {
		t.Fatalf("Finalize with the answer lost = %v, want %s", err, failure.CodeCAUnreachable)
	}
	st, err := c.State(ctx, o)
	if err != nil || (st.Status != acme.StatusProcessing && st.Status != acme.StatusValid) {
		t.Fatalf("State() after the lost answer = %+v, %v; want processing or valid", st, err)
	}
	cert, err := c.Fetch(ctx, o)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if _, err := tls.X509KeyPair(cert.CertPEM, keyPEM); err != nil {
		t.Errorf("the certificate is not for the key of the lost finalization: %v", err)
	}
	if st, err := c.Finalize(ctx, o, csr); err != nil || st.Status != acme.StatusValid {
		t.Errorf("Finalize again = %+v, %v; want valid", st, err)
	}
	if n, f := len(p.NewOrders()), p.Stats()[caproxy.OpFinalize].Requests; n != 1 || f != 1 {
		t.Errorf("%d newOrder and %d finalize requests, want 1 and 1", n, f)
	}
}

func TestWildcardDNS01(t *testing.T) {
	requireStack(t)
	ctx := testContext(t)
	c := newClient(t, config(t, stack.PebbleDirectoryURL))
	for _, tt := range []struct {
		names []string
		m     acme.Method
		http  int64 // HTTP-01 tokens presented
	}{
		{[]string{"*.wild.acme.example", "wild.acme.example"}, acme.MethodHTTP01, 1},
		{[]string{"*.wild2.acme.example", "wild2.acme.example"}, acme.MethodDNS01, 0},
	} {
		t.Run(string(tt.m), func(t *testing.T) {
			before := http01.presented.Load()
			_, cert := issue(t, ctx, c, tt.names, tt.m)
			verify(t, stack, cert, tt.names)
			if n := http01.presented.Load() - before; n != tt.http {
				t.Errorf("%d HTTP-01 tokens presented, want %d", n, tt.http)
			}
		})
	}
}

// publishPersist publishes the dns-persist-01 record of domain in
// challtestsrv.
func publishPersist(t *testing.T, domain, issuer, accountURI string) {
	t.Helper()
	r := validation.Persist(domain, issuer, accountURI, true)
	if err := stack.ChallSrv(context.Background(), "/set-txt", map[string]string{"host": dns.Fqdn(r.Name), "value": r.Value}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stack.ChallSrv(context.Background(), "/clear-txt", map[string]string{"host": dns.Fqdn(r.Name)})
	})
}

func TestDNSPersist01(t *testing.T) {
	requireStack(t)
	ctx := testContext(t)
	c := newClient(t, config(t, stack.PebbleDirectoryURL))
	issuer := c.CAAIdentities()[0]

	t.Run("standing record", func(t *testing.T) {
		names := []string{"*.persist.acme.example", "persist.acme.example"}
		publishPersist(t, "persist.acme.example", issuer, c.AccountURI())
		before := http01.presented.Load()
		_, cert := issue(t, ctx, c, names, acme.MethodDNSPersist01)
		verify(t, stack, cert, names)
		if n := http01.presented.Load() - before; n != 0 {
			t.Errorf("%d HTTP-01 tokens presented, want none", n)
		}
	})

	tests := []struct {
		name       string
		domain     string
		accountURI string // "" publishes nothing
		wantReason string
	}{
		{"record of another account", "other.persist.acme.example", "https://127.0.0.1:1/my-account/deadbeef", failure.ReasonPersistRecordWrongAccount},
		{"no record", "missing.persist.acme.example", "", failure.ReasonPersistRecordMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.accountURI != "" {
				publishPersist(t, tt.domain, issuer, tt.accountURI)
			}
			o, err := c.Place(ctx, []string{tt.domain}, "", "")
			if err != nil {
				t.Fatal(err)
			}
			err = c.Authorize(ctx, o, acme.MethodDNSPersist01)
			f, typ := failureOf(err)
			if typ != "ChallengeFailedError" || f.Detail().Reason != tt.wantReason || failure.CountsAgainstDomain(f.Detail().Code) != true {
				t.Fatalf("Authorize() = %v (%s), want ChallengeFailedError with reason %s", err, typ, tt.wantReason)
			}
			t.Logf("%s: %v", tt.name, err)
			st, err := c.State(ctx, o)
			if f, _ := failureOf(st.Problem); err != nil || st.Status != acme.StatusInvalid || f == nil || f.Detail().Reason != tt.wantReason {
				t.Errorf("State() = %+v, %v; want invalid with reason %s", st, err, tt.wantReason)
			}
		})
	}
}

// TestReplaces renews with the ARI certificate ID of the certificate it
// replaces: accepted once; refused, and never placed again without it,
// when already replaced or unknown.
func TestReplaces(t *testing.T) {
	requireStack(t)
	ctx := testContext(t)
	p := startProxy(t)
	c := newClient(t, config(t, p.DirectoryURL()))
	names := []string{"renew.acme.example"}
	var first *acme.Certificate
	for range 5 {
		_, first = issue(t, ctx, c, names, acme.MethodHTTP01)
		// Pebble cannot find the order of a serial whose first byte has
		// its top bit set (notes/pebble.md, ARI pitfall): issue again.
		if first.Leaf.SerialNumber.Bytes()[0] < 0x80 {
			break
		}
	}

	renewal, err := c.Place(ctx, names, first.ARICertID, "")
	if err != nil || renewal.Replaces != first.ARICertID {
		t.Fatalf("Place(replaces %s) = %+v, %v; want the order with replaces", first.ARICertID, renewal, err)
	}
	complete(t, ctx, c, renewal, acme.MethodHTTP01)

	aki, _, _ := strings.Cut(first.ARICertID, ".")
	refusalsFrom := len(p.NewOrders())
	for _, tt := range []struct{ name, replaces string }{
		{"already replaced", first.ARICertID},
		{"unknown certificate", aki + ".AQIDBAUGBwgJCgsMDQ4PEA"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, placed := len(p.NewOrders()), len(p.Orders())
			_, err := c.Place(ctx, names, tt.replaces, "")
			var rr *failure.ReplacesRefusedError
			if !errors.As(err, &rr) {
				t.Fatalf("Place(replaces %s) = %v, want ReplacesRefusedError", tt.replaces, err)
			}
			t.Logf("refusal: %v", err)
			if n := len(p.NewOrders()) - before; n != 1 {
				t.Errorf("%d newOrder requests, want 1: no retry without replaces", n)
			}
			if n := len(p.Orders()) - placed; n != 0 {
				t.Errorf("%d orders placed, want none", n)
			}
		})
	}
	for _, o := range p.NewOrders()[refusalsFrom:] {
		if o.Replaces == "" || o.Status == http.StatusCreated {
			t.Errorf("after the renewal, newOrder %+v: want only refused orders with replaces", o)
		}
	}
}

// requestLog records when the client sent each request.
type requestLog struct {
	mu   sync.Mutex
	reqs []loggedRequest
}

type loggedRequest struct {
	at     time.Time
	method string
	url    string
}

func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		l.mu.Lock()
		l.reqs = append(l.reqs, loggedRequest{time.Now(), r.Method, r.URL.String()})
		l.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

// gaps returns the times between consecutive POSTs to URLs holding one of
// parts, from the first POST to a URL holding from on.
func (l *requestLog) gaps(from string, parts ...string) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var last time.Time
	var out []time.Duration
	for _, r := range l.reqs {
		if r.method != http.MethodPost || !slices.ContainsFunc(parts, func(p string) bool { return strings.Contains(r.url, p) }) {
			continue
		}
		if last.IsZero() && !strings.Contains(r.url, from) {
			continue
		}
		if !last.IsZero() {
			out = append(out, r.at.Sub(last))
		}
		last = r.at
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestRetryAfter: with the CA asking for 3 seconds between polls, the
// client never polls sooner.
func TestRetryAfter(t *testing.T) {
	requireStack(t)
	ctx := testContext(t)
	p := startProxy(t)
	const ra = 3 * time.Second
	if err := p.SetFaults(caproxy.Faults{PollRetryAfter: ra}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, config(t, p.DirectoryURL()))
	var log requestLog
	acme.WrapTransport(c, log.wrap)
	names := []string{"slow.retry.acme.example"}
	o, err := c.Place(ctx, names, "", "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Authorize(ctx, o, acme.MethodHTTP01); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)

	// The challenge POST and the authorization polls after it: the
	// validation takes slowDelay, so several polls are answered pending.
	polls := log.gaps("/chalZ/", "/chalZ/", "/authZ/")
	t.Logf("Authorize took %s; client gaps between challenge POST and authorization polls: %v", took.Round(time.Millisecond), round(polls))
	if len(polls) < 2 {
		t.Fatalf("%d polls, want several while the validation is pending", len(polls))
	}
	for i, g := range polls {
		if g < ra {
			t.Errorf("poll %d came %s after the previous request, sooner than the CA's %s", i+1, g, ra)
		}
	}
	// The proxy's view: it set Retry-After on every pending answer from
	// the challenge's on, and those answers are at least that far apart.
	var at []time.Time
	for _, in := range p.Injections() {
		if in.Kind == caproxy.RetryAfter && (in.Op == caproxy.OpChallenge || len(at) > 0 && in.Op == caproxy.OpAuthz) {
			at = append(at, in.At)
		}
	}
	var proxyGaps []time.Duration
	for i := 1; i < len(at); i++ {
		proxyGaps = append(proxyGaps, at[i].Sub(at[i-1]))
		if at[i].Sub(at[i-1]) < ra {
			t.Errorf("proxy: answers %d and %d with Retry-After were %s apart, want at least %s", i, i+1, at[i].Sub(at[i-1]), ra)
		}
	}
	stats := p.Stats()
	t.Logf("proxy: %d Retry-After answers %v apart; authz requests %d, challenge requests %d", len(at), round(proxyGaps), stats[caproxy.OpAuthz].Requests, stats[caproxy.OpChallenge].Requests)
	if len(at) < 2 {
		t.Errorf("proxy set Retry-After on %d answers, want at least 2", len(at))
	}

	keyPEM, csr, err := c.NewKeyAndCSR(names)
	if err != nil {
		t.Fatal(err)
	}
	clear(keyPEM)
	if _, err := c.Finalize(ctx, o, csr); err != nil {
		t.Fatal(err)
	}
	orderGaps := log.gaps("/finalize-order/", "/finalize-order/", "/my-order/")
	t.Logf("client gaps between finalize and order polls: %v", round(orderGaps))
	for i, g := range orderGaps {
		if g < time.Second {
			t.Errorf("order poll %d came %s after the previous request, sooner than Pebble's 1s", i+1, g)
		}
	}
}

func round(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// TestFaults classifies what the proxy breaks: whose fault it is.
func TestFaults(t *testing.T) {
	requireStack(t)
	ctx := testContext(t)
	p := startProxy(t)
	c := newClient(t, config(t, p.DirectoryURL()))
	newOrder := []caproxy.Op{caproxy.OpNewOrder}
	var placed, injected int
	tests := []struct {
		name     string
		rule     caproxy.Rule
		wantType string
		wantCode string
		check    func(t *testing.T, f failure.Failure)
	}{
		{"connection reset", caproxy.Rule{Kind: caproxy.Reset, Ops: newOrder}, "TransientError", failure.CodeCAUnreachable, nil},
		{"503", caproxy.Rule{Kind: caproxy.ServerError, Status: http.StatusServiceUnavailable, Ops: newOrder}, "TransientError", failure.CodeCAError, nil},
		{"500", caproxy.Rule{Kind: caproxy.ServerError, Ops: newOrder}, "TransientError", failure.CodeCAError, nil},
		{"bad nonce every time", caproxy.Rule{Kind: caproxy.BadNonce, Ops: newOrder}, "TransientError", failure.CodeCAError,
			func(t *testing.T, _ failure.Failure) {
				if n := p.Stats()[caproxy.OpNewOrder].Injected - injected; n != 8 {
					t.Errorf("%d newOrder requests refused for their nonce, want 8 (the bound)", n)
				}
			}},
		{"429", caproxy.Rule{Kind: caproxy.RateLimited, Ops: newOrder, RetryAfter: 30 * time.Second}, "RateLimitedError", failure.CodeRateLimited,
			func(t *testing.T, f failure.Failure) {
				if got := f.Detail().RetryAfterSeconds; got != 30 {
					t.Errorf("RetryAfterSeconds = %d, want 30", got)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := p.SetFaults(caproxy.Faults{Rules: []caproxy.Rule{tt.rule}}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.SetFaults(caproxy.Faults{}) })
			placed, injected = len(p.Orders()), p.Stats()[caproxy.OpNewOrder].Injected
			_, err := c.Place(ctx, []string{"faults.acme.example"}, "", "")
			f, typ := failureOf(err)
			if typ != tt.wantType || f.Detail().Code != tt.wantCode {
				t.Fatalf("Place() = %v (%s), want %s %s", err, typ, tt.wantType, tt.wantCode)
			}
			if n := len(p.Orders()) - placed; n != 0 {
				t.Errorf("%d orders placed, want none", n)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
	t.Run("bad nonce retried a bounded number of times", func(t *testing.T) {
		if err := p.SetFaults(caproxy.Faults{Rules: []caproxy.Rule{{Kind: caproxy.BadNonce, Ops: newOrder, Count: 3}}}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = p.SetFaults(caproxy.Faults{}) }()
		if _, err := c.Place(ctx, []string{"nonce.acme.example"}, "", ""); err != nil {
			t.Errorf("Place() with 3 bad nonces: %v", err)
		}
	})
	t.Run("CA down", func(t *testing.T) {
		if err := p.Down(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = p.Up() }()
		_, err := c.Place(ctx, []string{"down.acme.example"}, "", "")
		if f, typ := failureOf(err); typ != "TransientError" || f.Detail().Code != failure.CodeCAUnreachable {
			t.Errorf("Place() with the CA down = %v, want %s", err, failure.CodeCAUnreachable)
		}
	})
}

// TestDeadlineMargin: a phase that would run into the deadline is not
// started; the order is resumed later.
func TestDeadlineMargin(t *testing.T) {
	requireStack(t)
	p := startProxy(t)
	c := newClient(t, config(t, p.DirectoryURL()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Place(ctx, []string{"late.acme.example"}, "", "")
	if f, typ := failureOf(err); typ != "TransientError" || f.Detail().Code != failure.CodeStepTimeout {
		t.Errorf("Place() with 10s left = %v, want %s", err, failure.CodeStepTimeout)
	}
	if n := len(p.NewOrders()); n != 0 {
		t.Errorf("%d newOrder requests, want none", n)
	}
}

// TestAccountHealing restarts Pebble, which forgets every account, and
// deactivates an account: the client registers again, stores the new
// account, and goes on; orders of the old account are gone.
func TestAccountHealing(t *testing.T) {
	requireStack(t)
	ca := offlinetest.Start(t, offline.Options{Pebble: true})
	if err := http01.serve(ca.HTTP01Addr); err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	cfg := config(t, ca.PebbleDirectoryURL)
	cfg.DNS01, cfg.DNSResolvers = nil, nil
	c := newClient(t, cfg)
	_, cert := issue(t, ctx, c, []string{"before.heal.acme.example"}, acme.MethodHTTP01)
	verify(t, ca, cert, []string{"before.heal.acme.example"})
	pending, err := c.Place(ctx, []string{"pending.heal.acme.example"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	stored := func() *account.Account {
		t.Helper()
		a, err := accounts.Load(ctx, cfg.DirectoryURL)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	t.Run("restart", func(t *testing.T) {
		old := c.AccountURI()
		if err := ca.RestartPebble(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := c.State(ctx, pending)
		if !errors.Is(err, acme.ErrOrderGone) {
			t.Fatalf("State(order of the forgotten account) = %v, want ErrOrderGone", err)
		}
		if c.AccountURI() == old {
			t.Errorf("account still %s after the CA forgot it", old)
		}
		if got := stored().Registration.URI; got != c.AccountURI() {
			t.Errorf("stored account %s, want the new %s", got, c.AccountURI())
		}
		if err := c.Authorize(ctx, pending, acme.MethodHTTP01); !errors.Is(err, acme.ErrOrderGone) {
			t.Errorf("Authorize(order of the old account) = %v, want ErrOrderGone", err)
		}
		names := []string{"after.heal.acme.example"}
		_, cert := issue(t, ctx, c, names, acme.MethodHTTP01)
		verify(t, ca, cert, names)
		if cold := newClient(t, cfg); cold.AccountURI() != c.AccountURI() {
			t.Errorf("a cold start uses %s, want the healed %s", cold.AccountURI(), c.AccountURI())
		}
	})

	t.Run("restart, then clients heal at once", func(t *testing.T) {
		clients := []*acme.Client{c, newClient(t, cfg), newClient(t, cfg)}
		old := c.AccountURI()
		if err := ca.RestartPebble(ctx); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i, cl := range clients {
			wg.Go(func() {
				// Place heals the account and places the order with the
				// new one.
				o, err := cl.Place(ctx, []string{fmt.Sprintf("c%d.heal.acme.example", i)}, "", "")
				if err != nil {
					t.Errorf("client %d: Place after the restart: %v", i, err)
					return
				}
				if o.Account != cl.AccountURI() {
					t.Errorf("client %d: order of %s, client on %s", i, o.Account, cl.AccountURI())
				}
			})
		}
		wg.Wait()
		want := stored().Registration.URI
		for i, cl := range clients {
			if cl.AccountURI() != want || want == old {
				t.Errorf("client %d on %s, want all on the stored new account %s (old %s)", i, cl.AccountURI(), want, old)
			}
		}
	})

	t.Run("deactivated", func(t *testing.T) {
		before := stored()
		if err := acme.DeactivateAccount(ctx, c); err != nil {
			t.Fatal(err)
		}
		o, err := c.Place(ctx, []string{"deactivated.heal.acme.example"}, "", "")
		if err != nil {
			t.Fatalf("Place with a deactivated account: %v", err)
		}
		after := stored()
		if o.Account == before.Registration.URI || after.Registration.URI != o.Account {
			t.Errorf("order of %s, stored %s; want both on a new account, not %s", o.Account, after.Registration.URI, before.Registration.URI)
		}
		if after.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(before.Key.Public()) {
			t.Error("the deactivated account's key was kept; the CA refuses it")
		}
		complete(t, ctx, c, o, acme.MethodHTTP01)
	})
}

// TestMeasureIssuance times issuances against Pebble, one after the
// other. Run with CERTFLOW_MEASURE=1.
func TestMeasureIssuance(t *testing.T) {
	if os.Getenv("CERTFLOW_MEASURE") != "1" {
		t.Skip("set CERTFLOW_MEASURE=1")
	}
	requireStack(t)
	ctx := testContext(t)
	c := newClient(t, config(t, stack.PebbleDirectoryURL))
	const n = 10
	took := make([]time.Duration, n)
	for i := range n {
		start := time.Now()
		issue(t, ctx, c, []string{fmt.Sprintf("m%d.measure.acme.example", i)}, acme.MethodHTTP01)
		took[i] = time.Since(start)
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	t.Logf("issuance (Place, Authorize HTTP-01, NewKeyAndCSR, Finalize, Fetch) against Pebble: median %s, min %s, max %s; all %v",
		((sorted[n/2-1] + sorted[n/2]) / 2).Round(time.Millisecond), sorted[0].Round(time.Millisecond), sorted[n-1].Round(time.Millisecond), round(took))
}
