package issue_test

import (
	"context"
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
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/go-acme/lego/v4/challenge"
	legolog "github.com/go-acme/lego/v4/log"

	"github.com/certflow/certflow/internal/account"
	"github.com/certflow/certflow/internal/acme"
	"github.com/certflow/certflow/internal/ari"
	"github.com/certflow/certflow/internal/budget"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/dns01"
	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/http01"
	"github.com/certflow/certflow/internal/issue"
	"github.com/certflow/certflow/internal/reconcile"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/apigw"
	"github.com/certflow/certflow/offline/caproxy"
	"github.com/certflow/certflow/offline/offlinetest"
)

// world is the offline stack with everything the issue function talks to:
// DynamoDB Local (the table), moto (KMS), Pebble and challtestsrv, and the
// challenge function's Responder serving HTTP-01 on Pebble's validation
// port.
type world struct {
	stack    *offline.Stack
	dynamo   *dynamodb.Client
	table    string
	sealer   *envelope.Sealer
	accounts *account.Store
	store    *certstore.Store
	roots    *x509.CertPool
	served   atomic.Int64 // HTTP-01 requests answered 200 by the Responder
	closers  []func()
}

var (
	worldOnce sync.Once
	theWorld  *world
	worldErr  error
)

func TestMain(m *testing.M) {
	// lego logs every step through the standard logger; keep test output
	// readable. (lego's logger is a package variable.)
	legolog.Logger = stdlog.New(io.Discard, "", 0)
	if os.Getenv("CERTFLOW_LEGO_LOG") == "1" {
		legolog.Logger = stdlog.New(os.Stderr, "lego ", stdlog.Lmicroseconds)
	}
	code := m.Run()
	if theWorld != nil {
		theWorld.close()
	}
	os.Exit(code)
}

// getWorld starts the shared stack on first use.
func getWorld(t *testing.T) *world {
	t.Helper()
	offlinetest.Require(t)
	worldOnce.Do(func() { theWorld, worldErr = startWorld() })
	if worldErr != nil {
		t.Fatalf("offline stack: %v", worldErr)
	}
	return theWorld
}

func startWorld() (*world, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var logs io.Writer
	if os.Getenv("CERTFLOW_OFFLINE_LOGS") == "1" {
		logs = os.Stderr
	}
	stack, err := offline.Start(ctx, offline.Options{DynamoDB: true, Moto: true, Pebble: true, Logs: logs})
	if err != nil {
		return nil, err
	}
	w := &world{stack: stack}
	w.closers = append(w.closers, stack.Close)
	// Every DNS lookup lego makes goes to challtestsrv on loopback.
	dns01.UseResolvers([]string{stack.DNSAddr})
	awsCfg := stack.AWS
	w.dynamo = dynamodb.NewFromConfig(awsCfg)
	w.table = stack.Tables.Certificates
	w.sealer = envelope.New(kms.NewFromConfig(awsCfg), stack.KMSKeyID)
	w.accounts = account.New(w.dynamo, w.table, w.sealer, nil)
	w.store = certstore.New(w.dynamo, w.table)
	if w.roots, err = stack.PebbleRoots(); err != nil {
		w.close()
		return nil, err
	}
	if err := w.serveHTTP01(stack.HTTP01Addr); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// serveHTTP01 serves the challenge function's Responder on addr the way API
// Gateway invokes it.
func (w *world) serveHTTP01(addr string) error {
	responder := http01.NewResponder(w.dynamo, w.table)
	handler := apigw.New(nil, apigw.Route{
		Key: "GET /.well-known/acme-challenge/{token}",
		Handler: func(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
			resp, err := responder.Handle(ctx, req)
			if err == nil && resp.StatusCode == http.StatusOK {
				w.served.Add(1)
			}
			return resp, err
		},
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	w.closers = append(w.closers, func() { _ = srv.Close() })
	return nil
}

func (w *world) close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
}

// issuerConfig is the issue function's configuration against stack.
func (w *world) issuerConfig(t *testing.T, stack *offline.Stack) acme.Config {
	t.Helper()
	dnsProvider, err := dns01.NewProvider(dns01.KindChallTestSrv, dns01.Config{ChallTestSrvURL: stack.ChallSrvURL})
	if err != nil {
		t.Fatal(err)
	}
	return acme.Config{
		DirectoryURL: stack.PebbleDirectoryURL,
		Email:        "ops@customer.example",
		CARoots:      stack.PebbleTLSCAFile,
		HTTP01:       http01.NewProvider(w.dynamo, w.table),
		DNS01:        dnsProvider,
		DNSResolvers: []string{stack.DNSAddr},
	}
}

func (w *world) newIssuer(t *testing.T, cfg acme.Config) *acme.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	iss, err := acme.New(ctx, cfg, w.accounts)
	if err != nil {
		t.Fatalf("acme.New: %v", err)
	}
	return iss
}

// slots is the new-order budget of the tests: generous, since the budget's
// own tests prove its bound.
func (w *world) slots(t *testing.T) *budget.Schedule {
	t.Helper()
	s, err := budget.New(w.dynamo, budget.Config{Table: w.table, Name: "issue-tests", Limit: 1000, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// handler is the Issue step over ca and the offline stack.
func (w *world) handler(t *testing.T, ca issue.CA) *issue.Handler {
	t.Helper()
	cfg := w.issuerConfig(t, w.stack)
	client, err := acme.NewHTTPClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return issue.New(issue.Config{
		CAs: map[string]issue.CAConfig{flow.CAPrimary: {
			CA: ca, Slots: w.slots(t), Renewal: &ari.Scheduler{Info: ari.New(client, cfg.DirectoryURL)},
		}},
		Sealer: w.sealer,
		Store:  w.store,
		Names:  domain.Policy{AllowTestingTLDs: true},
	})
}

// request records the platform's request, as the API function does before
// the state machine runs, and returns the Issue step's input for the
// execution the request names, with a slot of the budget as
// ReserveOrderSlot gives it.
func (w *world) request(t *testing.T, primary string, sans []string) flow.Input {
	t.Helper()
	ctx := context.Background()
	c, _, err := w.store.Request(ctx, primary, sans, time.Now())
	if err != nil {
		t.Fatalf("Request(%q): %v", primary, err)
	}
	in := reconcile.Input(c, "")
	in.OrderSlot = w.slot(t)
	return in
}

// slot reserves a slot of the budget.
func (w *world) slot(t *testing.T) *flow.OrderSlot {
	t.Helper()
	r, err := w.slots(t).Reserve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &r
}

// checkStored reads the certificate of primary back and checks it the way a
// TLS client and the delivery function would.
func (w *world) checkStored(t *testing.T, primary string, names []string, out flow.Issued) {
	t.Helper()
	ctx := context.Background()
	c, err := w.store.GetConsistent(ctx, primary)
	if err != nil {
		t.Fatalf("GetConsistent(%q): %v", primary, err)
	}
	if c.Status != certstore.StatusActive || c.Serial != out.Serial || !c.NotAfter.Equal(out.NotAfter) || c.KeyType != "ec256" {
		t.Errorf("stored %q = status %s serial %s notAfter %s keyType %s, want active %s %s ec256",
			primary, c.Status, c.Serial, c.NotAfter, c.KeyType, out.Serial, out.NotAfter)
	}
	var chain []*x509.Certificate
	rest := []byte(c.CertPEM)
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("stored chain of %q: %v", primary, err)
		}
		chain = append(chain, cert)
	}
	if len(chain) < 2 {
		t.Fatalf("stored chain of %q has %d certificates, want leaf and intermediate", primary, len(chain))
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	for _, name := range names {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: w.roots, Intermediates: inter}); err != nil {
			t.Errorf("chain of %q does not verify for %q against Pebble's root: %v", primary, name, err)
		}
	}
	gotNames := slices.Clone(leaf.DNSNames)
	sort.Strings(gotNames)
	wantNames := slices.Clone(names)
	sort.Strings(wantNames)
	if !slices.Equal(gotNames, wantNames) {
		t.Errorf("SANs of %q = %v, want %v", primary, gotNames, wantNames)
	}
	if acme.SerialHex(leaf) != out.Serial {
		t.Errorf("leaf serial = %s, want %s", acme.SerialHex(leaf), out.Serial)
	}
	keyPEM, err := w.sealer.Open(ctx, envelope.Sealed(c.Key), envelope.CertificateKeyContext(primary))
	if err != nil {
		t.Fatalf("open key of %q: %v", primary, err)
	}
	defer clear(keyPEM)
	if _, err := tls.X509KeyPair([]byte(c.CertPEM), keyPEM); err != nil {
		t.Errorf("key of %q does not match its certificate: %v", primary, err)
	}
	if _, err := w.sealer.Open(ctx, envelope.Sealed(c.Key), envelope.CertificateKeyContext("other.customer.example")); err == nil {
		t.Errorf("key of %q opened under another domain's encryption context", primary)
	}
	timer, err := w.store.GetTimer(ctx, primary)
	if err != nil || timer.Serial != out.Serial || !timer.RenewAt.Equal(out.RenewAt) {
		t.Errorf("timer of %q = %+v, %v; want serial %s renewAt %s", primary, timer, err, out.Serial, out.RenewAt)
	}
	if !out.RenewAt.After(out.NotBefore) || !out.RenewAt.Before(out.NotAfter) {
		t.Errorf("renewAt %s outside [%s, %s]", out.RenewAt, out.NotBefore, out.NotAfter)
	}
}

// challengeItems counts the HTTP-01 challenge items left in the table.
func (w *world) challengeItems(t *testing.T) int {
	t.Helper()
	out, err := w.dynamo.Scan(context.Background(), &dynamodb.ScanInput{
		TableName:                 aws.String(w.table),
		FilterExpression:          aws.String("begins_with(pk, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: "CHALLENGE#"}},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return int(out.Count)
}

func failureType(err error) string {
	if f, ok := failure.Find(err); ok {
		return failure.TypeName(f)
	}
	return ""
}

// TestIssueCustomDomains runs the issue step end to end for several custom
// domains, one of them internationalised, as the state machine gives them
// (names as the platform wrote them).
func TestIssueCustomDomains(t *testing.T) {
	w := getWorld(t)
	h := w.handler(t, w.newIssuer(t, w.issuerConfig(t, w.stack)))
	before := w.served.Load()
	tests := []struct {
		domain  string
		sans    []string
		primary string
		names   []string
	}{
		{"blog.customer.example", []string{"www.blog.customer.example"}, "blog.customer.example", []string{"blog.customer.example", "www.blog.customer.example"}},
		{"Shop.Customer.Example.", nil, "shop.customer.example", []string{"shop.customer.example"}},
		{"bücher.customer.example", []string{"www.bücher.customer.example"}, "xn--bcher-kva.customer.example", []string{"xn--bcher-kva.customer.example", "www.xn--bcher-kva.customer.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.primary, func(t *testing.T) {
			in := w.request(t, tt.primary, tt.names[1:])
			in.Domain, in.SANs = tt.domain, tt.sans
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := h.Handle(ctx, in)
			if err != nil {
				t.Fatalf("Handle(%+v): %v", in, err)
			}
			if out.Domain != tt.primary || out.Renewed {
				t.Errorf("Handle(%+v) = %+v, want domain %s, not renewed", in, out, tt.primary)
			}
			w.checkStored(t, tt.primary, tt.names, out)
			if _, err := w.store.GetOrder(ctx, tt.primary); !errors.Is(err, certstore.ErrNotFound) {
				t.Errorf("GetOrder after issuance = %v, want the order deleted with the certificate stored", err)
			}
		})
	}
	if served := w.served.Load() - before; served < 5 {
		t.Errorf("the Responder answered %d HTTP-01 validations, want one per name (5)", served)
	}
	if n := w.challengeItems(t); n != 0 {
		t.Errorf("%d challenge items left in the table, want 0 after CleanUp", n)
	}
}

// silentProvider accepts challenges and publishes nothing.
type silentProvider struct{}

func (silentProvider) Present(string, string, string) error { return nil }
func (silentProvider) CleanUp(string, string, string) error { return nil }

var _ challenge.Provider = silentProvider{}

// TestChallengeNotServed: the CA finds nothing at the challenge URL; the
// invalid order is dropped and the slot stays spent (the CA counted the
// order).
func TestChallengeNotServed(t *testing.T) {
	w := getWorld(t)
	cfg := w.issuerConfig(t, w.stack)
	cfg.HTTP01 = silentProvider{}
	h := w.handler(t, w.newIssuer(t, cfg))
	in := w.request(t, "unserved.customer.example", nil)
	ctx := context.Background()
	_, err := h.Handle(ctx, in)
	if got := failureType(err); got != "ChallengeFailedError" {
		t.Fatalf("Handle(unserved) = %v (type %q), want ChallengeFailedError", err, got)
	}
	t.Logf("challenge failure: %v", err)
	var invoke messages.InvokeResponse_Error
	if !errors.As(failure.ForLambda(err), &invoke) || invoke.Type != "ChallengeFailedError" || !strings.Contains(invoke.Message, `"code":"challenge_failed"`) {
		t.Errorf("ForLambda = %+v, want ChallengeFailedError with the challenge_failed detail", invoke)
	}
	if _, err := w.store.GetOrder(ctx, "unserved.customer.example"); !errors.Is(err, certstore.ErrNotFound) {
		t.Errorf("GetOrder = %v, want the invalid order dropped", err)
	}
	// The retry after the backoff holds the same, spent slot: it needs a
	// new one.
	_, err = h.Handle(ctx, in)
	if got := failureType(err); got != "NeedsOrderSlotError" {
		t.Errorf("retry with the spent slot = %v (type %q), want NeedsOrderSlotError", err, got)
	}
}

// TestBlockedDomain: Pebble's blocklist rejects the name; no order was
// created, so the slot is given back.
func TestBlockedDomain(t *testing.T) {
	w := getWorld(t)
	h := w.handler(t, w.newIssuer(t, w.issuerConfig(t, w.stack)))
	for _, tt := range []struct{ primary, san string }{{offline.BlockedDomain, ""}, {"fine.customer.example", offline.BlockedDomain}} {
		var sans []string
		if tt.san != "" {
			sans = []string{tt.san}
		}
		in := w.request(t, tt.primary, sans)
		_, err := h.Handle(context.Background(), in)
		if got := failureType(err); got != "DomainRejectedError" {
			t.Errorf("Handle(%+v) = %v (type %q), want DomainRejectedError", in, err, got)
			continue
		}
		t.Logf("rejection: %v", err)
		if c, err := w.store.GetConsistent(context.Background(), tt.primary); err != nil || c.SpentSlot != 0 {
			t.Errorf("%s: spent slot %d (%v), want the slot given back", tt.primary, c.SpentSlot, err)
		}
		if _, err := w.store.Retire(context.Background(), tt.primary); err != nil { // frees its names
			t.Fatal(err)
		}
	}
}

// TestWildcardDNS01 issues a wildcard certificate through DNS-01 records
// published in challtestsrv.
func TestWildcardDNS01(t *testing.T) {
	w := getWorld(t)
	h := w.handler(t, w.newIssuer(t, w.issuerConfig(t, w.stack)))
	names := []string{"*.wild.customer.example", "wild.customer.example"}
	out, err := h.Handle(context.Background(), w.request(t, names[0], names[1:]))
	if err != nil {
		t.Fatalf("Handle(wildcard): %v", err)
	}
	w.checkStored(t, names[0], names, out)

	cfg := w.issuerConfig(t, w.stack)
	cfg.DNS01 = nil
	_, err = w.handler(t, w.newIssuer(t, cfg)).Handle(context.Background(), w.request(t, "*.nodns.customer.example", nil))
	if got := failureType(err); got != "InvalidInputError" {
		t.Errorf("Handle(wildcard) without DNS-01 = %v (type %q), want InvalidInputError", err, got)
	}
}

// TestRenewalReplaces renews with the ARI certificate ID of the previous
// certificate and no slot, as the renewal trigger does; a replaces the CA
// refuses is ReplacesRefusedError, and nothing is spent; then revokes.
func TestRenewalReplaces(t *testing.T) {
	w := getWorld(t)
	iss := w.newIssuer(t, w.issuerConfig(t, w.stack))
	h := w.handler(t, iss)
	ctx := context.Background()
	const name = "renew.customer.example"
	first, err := h.Handle(ctx, w.request(t, name, nil))
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	c, err := w.store.GetConsistent(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := w.issuerConfig(t, w.stack)
	httpClient, err := acme.NewHTTPClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	window, _, err := ari.New(httpClient, cfg.DirectoryURL).Get(ctx, c.ARICertID)
	if err != nil || !window.Start.After(first.NotBefore) || !window.End.Before(first.NotAfter) {
		t.Errorf("renewal info of %s = %+v, %v; want a window within the lifetime", c.ARICertID, window, err)
	}

	claim := func() flow.Input {
		t.Helper()
		cur, err := w.store.GetConsistent(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		next, err := w.store.Claim(ctx, cur, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return reconcile.Input(next, flow.StartedByTimer)
	}
	renewal := claim()
	if renewal.Replaces != c.ARICertID || renewal.OrderSlot != nil {
		t.Fatalf("renewal input = %+v, want replaces %s and no slot", renewal, c.ARICertID)
	}
	out, err := h.Handle(ctx, renewal)
	if err != nil {
		t.Fatalf("Handle(renewal): %v", err)
	}
	if !out.Renewed || out.Serial == first.Serial {
		t.Errorf("Handle(renewal) = %+v, want renewed with a new serial", out)
	}
	w.checkStored(t, name, []string{name}, out)

	// Replacing a certificate the CA does not know: refused, no order, the
	// exempt marker given back.
	unknown := claim()
	aki, _, _ := strings.Cut(unknown.Replaces, ".")
	unknown.Replaces = aki + ".AQIDBAUGBwgJCgsMDQ4PEA"
	if _, err := h.Handle(ctx, unknown); failureType(err) != "ReplacesRefusedError" {
		t.Fatalf("Handle(replaces an unknown certificate) = %v, want ReplacesRefusedError", err)
	}
	// The state machine then drops replaces and reserves a slot.
	unknown.ReplacesRefused, unknown.OrderSlot = true, w.slot(t)
	again, err := h.Handle(ctx, unknown)
	if err != nil {
		t.Fatalf("Handle(replaces refused, with a slot): %v", err)
	}

	stored, err := w.store.GetConsistent(ctx, name)
	if err != nil || stored.Serial != again.Serial {
		t.Fatalf("stored %+v, %v; want serial %s", stored, err, again.Serial)
	}
	if err := iss.Revoke(ctx, []byte(stored.CertPEM), 4); err != nil { // superseded
		t.Errorf("Revoke: %v", err)
	}
	err = iss.Revoke(ctx, []byte(stored.CertPEM), 4)
	t.Logf("revoking twice: %v", err)
	if err == nil {
		t.Error("revoking a revoked certificate succeeded")
	}
}

// TestNonceRejection: with Pebble rejecting 30% of nonces, the client's
// retries carry issuance through.
func TestNonceRejection(t *testing.T) {
	w := getWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stack, err := offline.Start(ctx, offline.Options{Pebble: true, PebbleEnv: map[string]string{"PEBBLE_WFE_NONCEREJECT": "30"}})
	if err != nil {
		t.Fatalf("second Pebble: %v", err)
	}
	defer stack.Close()
	if err := w.serveHTTP01(stack.HTTP01Addr); err != nil {
		t.Fatal(err)
	}
	h := w.handler(t, w.newIssuer(t, w.issuerConfig(t, stack)))
	for _, name := range []string{"nonce1.customer.example", "nonce2.customer.example", "nonce3.customer.example"} {
		if _, err := h.Handle(ctx, w.request(t, name, []string{"www." + name})); err != nil {
			t.Errorf("Handle(%s) with 30%% bad nonces: %v", name, err)
		}
	}
}

// interrupting makes one call of the CA fail as if the invocation had
// died there (after the call, when after is set: the CA did it), and
// passes every other call through.
type interrupting struct {
	issue.CA
	mu    sync.Mutex
	phase string // "authorize", "finalize" or "fetch"
	after bool
	done  bool
}

var errInterrupted = &failure.TransientError{Code: failure.CodeStepTimeout, Message: "the invocation ended here"}

func (c *interrupting) cut(phase string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done || c.phase != phase {
		return false
	}
	c.done = true
	return true
}

func (c *interrupting) Authorize(ctx context.Context, o acme.Order, m acme.Method) error {
	if c.cut("authorize") {
		if c.after {
			_ = c.CA.Authorize(ctx, o, m)
		}
		return errInterrupted
	}
	return c.CA.Authorize(ctx, o, m)
}

func (c *interrupting) Finalize(ctx context.Context, o acme.Order, csr []byte) (acme.OrderState, error) {
	if c.cut("finalize") {
		if c.after {
			_, _ = c.CA.Finalize(ctx, o, csr)
		}
		return acme.OrderState{}, errInterrupted
	}
	return c.CA.Finalize(ctx, o, csr)
}

func (c *interrupting) Fetch(ctx context.Context, o acme.Order) (*acme.Certificate, error) {
	if c.cut("fetch") {
		return nil, errInterrupted
	}
	return c.CA.Fetch(ctx, o)
}

// TestResumeOrder: an Issue step interrupted anywhere between placing the
// order and fetching the certificate is resumed by the next attempt, which
// completes the same order: one newOrder and at most one finalize reach
// the CA (counted by caproxy), and the stored key is the certificate's.
// The next attempt may also be a new run of the domain (a restart by the
// reconciler), which has no slot of its own.
func TestResumeOrder(t *testing.T) {
	w := getWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	proxy, err := caproxy.Start(ctx, caproxy.Options{Upstream: w.stack.PebbleDirectoryURL, UpstreamCAFile: w.stack.PebbleTLSCAFile})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	cfg := w.issuerConfig(t, w.stack)
	cfg.DirectoryURL, cfg.CARoots = proxy.DirectoryURL(), w.stack.PebbleTLSCAFile
	for i, tt := range []struct {
		phase    string
		after    bool
		newRun   bool
		finalize int
	}{
		{"authorize", false, false, 1},
		{"authorize", true, true, 1},
		{"finalize", false, false, 1},
		{"finalize", true, true, 1},
		{"fetch", false, true, 1},
	} {
		name := fmt.Sprintf("resume%d.customer.example", i)
		t.Run(tt.phase, func(t *testing.T) {
			ca := &interrupting{CA: w.newIssuer(t, cfg), phase: tt.phase, after: tt.after}
			h := w.handler(t, ca)
			h2 := w.handler(t, w.newIssuer(t, cfg)) // a cold start
			ordersBefore, finalizeBefore := len(proxy.NewOrders()), proxy.Stats()[caproxy.OpFinalize].Requests
			in := w.request(t, name, []string{"www." + name})
			if _, err := h.Handle(ctx, in); !errors.Is(err, errInterrupted) {
				t.Fatalf("first attempt = %v, want the interruption", err)
			}
			o, err := w.store.GetOrder(ctx, name)
			if err != nil {
				t.Fatalf("GetOrder after the interruption: %v", err)
			}
			if tt.newRun {
				cur, err := w.store.GetConsistent(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				next, err := w.store.Claim(ctx, cur, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				in = reconcile.Input(next, flow.StartedBySweeper)
			}
			out, err := h2.Handle(ctx, in)
			if err != nil {
				t.Fatalf("resumed attempt: %v", err)
			}
			w.checkStored(t, name, []string{name, "www." + name}, out)
			orders := len(proxy.NewOrders()) - ordersBefore
			finalizes := proxy.Stats()[caproxy.OpFinalize].Requests - finalizeBefore
			if orders != 1 || finalizes != tt.finalize {
				t.Errorf("newOrders %d, finalizes %d; want 1 and %d (order %s resumed)", orders, finalizes, tt.finalize, o.URL)
			}
		})
	}
}

// TestMeasureIssuance measures the issue step (order, HTTP-01 through
// DynamoDB, KMS seal, DynamoDB transaction) against the offline stack.
// Run with CERTFLOW_MEASURE=1.
func TestMeasureIssuance(t *testing.T) {
	if os.Getenv("CERTFLOW_MEASURE") != "1" {
		t.Skip("set CERTFLOW_MEASURE=1")
	}
	w := getWorld(t)
	h := w.handler(t, w.newIssuer(t, w.issuerConfig(t, w.stack)))
	const n = 20
	run := func(prefix string, i int) time.Duration {
		name := prefix + string(rune('a'+i)) + ".measure.customer.example"
		in := w.request(t, name, nil)
		start := time.Now()
		if _, err := h.Handle(context.Background(), in); err != nil {
			t.Errorf("Handle(%s): %v", name, err)
		}
		return time.Since(start)
	}
	seq := make([]time.Duration, n)
	start := time.Now()
	for i := range n {
		seq[i] = run("s", i)
	}
	seqWall := time.Since(start)
	par := make([]time.Duration, n)
	var wg sync.WaitGroup
	start = time.Now()
	for i := range n {
		wg.Go(func() { par[i] = run("p", i) })
	}
	wg.Wait()
	parWall := time.Since(start)
	t.Logf("sequential: median %s, p90 %s, max %s, wall %s for %d", median(seq), pct(seq, 90), pct(seq, 100), seqWall.Round(time.Millisecond), n)
	t.Logf("parallel:   median %s, p90 %s, max %s, wall %s for %d", median(par), pct(par, 90), pct(par, 100), parWall.Round(time.Millisecond), n)
	b, _ := json.Marshal(map[string]any{"sequentialMedianMs": median(seq).Milliseconds(), "parallelMedianMs": median(par).Milliseconds()})
	t.Logf("%s", b)
}

func median(d []time.Duration) time.Duration { return pct(d, 50) }

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p+99)/100 - 1
	i = max(0, min(i, len(s)-1))
	return s[i].Round(time.Millisecond)
}
