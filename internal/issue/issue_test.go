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
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certflow/certflow/internal/acme"
	"github.com/certflow/certflow/internal/budget"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/fixtures"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/logging"
)

const directory = "https://ca.example/dir"

var notBefore = time.Date(2026, 11, 21, 16, 0, 0, 0, time.UTC)

// fakeCA keeps orders like an ACME CA: placed pending, ready once
// authorized, valid once finalised, with a certificate for the CSR's key.
type fakeCA struct {
	mu        sync.Mutex
	orders    map[string]*fakeOrder
	placed    []acme.Order
	placeErr  error
	onPlace   func() // runs as the CA creates an order
	authErr   error  // a *failure.ChallengeFailedError makes the order invalid
	keys      [][]byte
	finalized int
	fetched   int
	caKey     *ecdsa.PrivateKey
}

type fakeOrder struct {
	acme.Order
	status  string
	csr     []byte
	problem error
	gone    bool
}

func newFakeCA(t *testing.T) *fakeCA {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeCA{orders: map[string]*fakeOrder{}, caKey: k}
}

func (f *fakeCA) DirectoryURL() string { return directory }

func (f *fakeCA) Place(_ context.Context, names []string, replaces, profile string) (acme.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.placeErr != nil {
		return acme.Order{}, f.placeErr
	}
	if f.onPlace != nil {
		f.onPlace()
	}
	ids := slices.Clone(names)
	slices.Sort(ids)
	o := acme.Order{URL: fmt.Sprintf("https://ca.example/order/%d", len(f.placed)+1), Names: ids, Replaces: replaces, Profile: profile, Account: "https://ca.example/acct/1"}
	f.placed = append(f.placed, o)
	f.orders[o.URL] = &fakeOrder{Order: o, status: acme.StatusPending}
	return o, nil
}

func (f *fakeCA) order(o acme.Order) (*fakeOrder, error) {
	fo, ok := f.orders[o.URL]
	if !ok || fo.gone {
		return nil, fmt.Errorf("order %s: %w", o.URL, acme.ErrOrderGone)
	}
	return fo, nil
}

func (f *fakeCA) State(_ context.Context, o acme.Order) (acme.OrderState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fo, err := f.order(o)
	if err != nil {
		return acme.OrderState{}, err
	}
	return acme.OrderState{Status: fo.status, Problem: fo.problem}, nil
}

func (f *fakeCA) Authorize(_ context.Context, o acme.Order, _ acme.Method) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fo, err := f.order(o)
	if err != nil {
		return err
	}
	if f.authErr != nil {
		var cf *failure.ChallengeFailedError
		if errors.As(f.authErr, &cf) {
			fo.status, fo.problem = acme.StatusInvalid, f.authErr
		}
		return f.authErr
	}
	if fo.status == acme.StatusPending {
		fo.status = acme.StatusReady
	}
	return nil
}

func (f *fakeCA) Finalize(_ context.Context, o acme.Order, csr []byte) (acme.OrderState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fo, err := f.order(o)
	if err != nil {
		return acme.OrderState{}, err
	}
	if fo.status != acme.StatusReady {
		return acme.OrderState{}, fmt.Errorf("finalize an order %s", fo.status)
	}
	f.finalized++
	fo.csr, fo.status = csr, acme.StatusValid
	return acme.OrderState{Status: fo.status}, nil
}

func (f *fakeCA) Fetch(_ context.Context, o acme.Order) (*acme.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fo, err := f.order(o)
	if err != nil {
		return nil, err
	}
	f.fetched++
	csr, err := x509.ParseCertificateRequest(fo.csr)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x0a1b2c), Subject: pkix.Name{CommonName: fo.Names[0]}, DNSNames: fo.Names,
		NotBefore: notBefore, NotAfter: notBefore.Add(90 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, csr.PublicKey, f.caKey)
	if err != nil {
		return nil, err
	}
	leaf, _ := x509.ParseCertificate(der)
	return &acme.Certificate{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), NotBefore: leaf.NotBefore,
		NotAfter: leaf.NotAfter, Serial: acme.SerialHex(leaf), Issuer: "Pebble Intermediate CA", ARICertID: "aki.CgsM", Leaf: leaf}, nil
}

func (f *fakeCA) NewKeyAndCSR(names []string) ([]byte, []byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, k)
	if err != nil {
		return nil, nil, err
	}
	der, _ := x509.MarshalECPrivateKey(k)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	f.mu.Lock()
	f.keys = append(f.keys, keyPEM)
	f.mu.Unlock()
	return keyPEM, csr, nil
}

type fakeSealer struct {
	plaintext [][]byte
	encCtx    map[string]string
	err       error
}

func (f *fakeSealer) Seal(_ context.Context, plaintext []byte, encCtx map[string]string) (envelope.Sealed, error) {
	f.plaintext = append(f.plaintext, slices.Clone(plaintext))
	f.encCtx = encCtx
	if f.err != nil {
		return envelope.Sealed{}, f.err
	}
	return envelope.Sealed{Wrapped: []byte("wrapped"), Ciphertext: []byte(fmt.Sprintf("ciphertext-%d", len(f.plaintext)))}, nil
}

// twoThirds renews at two thirds of the lifetime, the policy without ARI.
type twoThirds struct{}

func (twoThirds) RenewAt(_ context.Context, leaf *x509.Certificate, _ string) time.Time {
	return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
}

// fakeStore holds one domain's certificate item and pending order.
type fakeStore struct {
	cert     certstore.Certificate
	order    *certstore.Order
	puts     []certstore.Order
	dropped  int
	saved    []certstore.Issued
	spendErr error
	saveErr  error
	lease    string // the token of the lease in force
}

func (f *fakeStore) owns(execution string) error {
	switch {
	case f.cert.Status == certstore.StatusRetired:
		return certstore.ErrRetired
	case f.cert.Execution != execution:
		return certstore.ErrSuperseded
	}
	return nil
}

func (f *fakeStore) GetOrder(_ context.Context, domain string) (certstore.Order, error) {
	if f.order == nil {
		return certstore.Order{}, fmt.Errorf("order of %q: %w", domain, certstore.ErrNotFound)
	}
	return *f.order, nil
}

func (f *fakeStore) PutOrder(_ context.Context, o certstore.Order) error {
	if err := f.owns(o.Execution); err != nil {
		return err
	}
	f.puts = append(f.puts, o)
	f.order = &o
	return nil
}

func (f *fakeStore) DropOrder(context.Context, string) error {
	f.dropped++
	f.order = nil
	return nil
}

func (f *fakeStore) TakeLease(_ context.Context, domain string, l certstore.Lease) error {
	if err := f.owns(l.Execution); err != nil {
		return err
	}
	if f.lease != "" {
		return &certstore.LeaseHeldError{Domain: domain, Until: l.Until}
	}
	f.lease = l.Token
	return nil
}

func (f *fakeStore) ReleaseLease(_ context.Context, _ string, l certstore.Lease) error {
	if f.lease == l.Token {
		f.lease = ""
	}
	return nil
}

func (f *fakeStore) SpendSlot(_ context.Context, domain string, l certstore.Lease, seq int64) (bool, error) {
	if f.spendErr != nil {
		return false, f.spendErr
	}
	if f.lease != l.Token {
		return false, &certstore.LeaseHeldError{Domain: domain}
	}
	if f.cert.SpentSlot == seq && f.cert.SpentSlot != 0 || seq == 0 && f.cert.SpentSlot == -1 {
		return false, nil
	}
	f.cert.SpentSlot = seq
	if seq == 0 {
		f.cert.SpentSlot = -1 // the exempt marker, spent
	}
	return true, nil
}

func (f *fakeStore) UnspendSlot(_ context.Context, _ string, l certstore.Lease, seq int64) error {
	if f.lease == l.Token && f.cert.SpentSlot == seq {
		f.cert.SpentSlot = 0
	}
	return nil
}

func (f *fakeStore) StorePlaced(_ context.Context, o certstore.Order, l certstore.Lease) error {
	if f.lease != l.Token {
		return &certstore.LeaseHeldError{Domain: o.Domain}
	}
	f.puts = append(f.puts, o)
	f.order = &o
	return nil
}

func (f *fakeStore) SaveIssued(_ context.Context, in certstore.Issued) error {
	if f.saveErr != nil {
		return f.saveErr
	}
	if err := f.owns(in.Execution); err != nil {
		return err
	}
	f.saved = append(f.saved, in)
	f.order, f.lease = nil, ""
	return nil
}

// fakeSlots admits like the budget: not before the slot, and not while
// the slot's position admitted an order less than a step ago.
type fakeSlots struct {
	now      func() time.Time
	placed   time.Time // the last admission of the position
	step     time.Duration
	admits   int
	released int
}

func (f *fakeSlots) Admit(_ context.Context, r budget.Reservation) (budget.Admission, time.Duration, error) {
	now := f.now()
	if now.Before(r.At) {
		return budget.Admission{}, r.At.Sub(now), nil
	}
	if !f.placed.IsZero() && now.Sub(f.placed) < f.step {
		return budget.Admission{}, f.placed.Add(f.step).Sub(now), nil
	}
	a := budget.Admission{Seq: r.Seq, At: now.UnixMilli()}
	if !f.placed.IsZero() {
		a.Previous = f.placed.UnixMilli()
	}
	f.placed = now
	f.admits++
	return a, 0, nil
}

func (f *fakeSlots) Release(_ context.Context, a budget.Admission) error {
	if f.placed.UnixMilli() == a.At {
		f.placed = time.Time{}
		if a.Previous != 0 {
			f.placed = time.UnixMilli(a.Previous)
		}
		f.released++
	}
	return nil
}

// env is a Handler over fakes, for the execution of events/issue.json.
type env struct {
	ca     *fakeCA
	sealer *fakeSealer
	store  *fakeStore
	slots  *fakeSlots
	now    time.Time
	h      *Handler
	in     flow.Input
}

func newEnv(t *testing.T) *env {
	t.Helper()
	in := fixtures.StrictEvent[flow.Input](t, "issue.json")
	e := &env{ca: newFakeCA(t), sealer: &fakeSealer{}, in: in, now: in.OrderSlot.At.Add(5 * time.Second)}
	e.slots = &fakeSlots{now: func() time.Time { return e.now }, step: time.Hour}
	e.store = &fakeStore{cert: certstore.Certificate{Domain: in.Domain, Status: certstore.StatusPending, Generation: in.Generation, Run: 1, Execution: in.Execution}}
	e.h = New(Config{CAs: map[string]CAConfig{flow.CAPrimary: {CA: e.ca, Slots: e.slots, Renewal: twoThirds{}}},
		Sealer: e.sealer, Store: e.store, Names: domain.Policy{AllowTestingTLDs: true}, Now: func() time.Time { return e.now }})
	return e
}

// storeOrder stores an order of the fixture's names, placed at the CA,
// in status.
func (e *env) storeOrder(t *testing.T, status string) *fakeOrder {
	t.Helper()
	o, err := e.ca.Place(context.Background(), []string{"blog.customer.example", "www.blog.customer.example"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	e.ca.placed = nil
	fo := e.ca.orders[o.URL]
	fo.status = status
	e.store.order = &certstore.Order{Domain: e.in.Domain, Execution: "issue-earlier-run", URL: o.URL, Names: o.Names, Directory: directory, Account: o.Account}
	if status != acme.StatusPending {
		keyPEM, csr, _ := e.ca.NewKeyAndCSR(o.Names)
		clear(keyPEM)
		e.store.order.CSR, e.store.order.Key, e.store.order.KeyType = csr, certstore.SealedKey{Wrapped: []byte("w0"), Ciphertext: []byte("c0")}, "ec256"
		if status == acme.StatusValid || status == acme.StatusProcessing {
			fo.csr = csr
		}
	}
	return fo
}

func failureType(err error) string {
	if f, ok := failure.Find(err); ok {
		return failure.TypeName(f)
	}
	return ""
}

// TestHandleFixture takes the fixture's new order from placing to the
// stored certificate.
func TestHandleFixture(t *testing.T) {
	e := newEnv(t)
	var logs bytes.Buffer
	ctx := logging.Into(context.Background(), slog.New(slog.NewJSONHandler(&logs, nil)))
	out, err := e.h.Handle(ctx, e.in)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if len(e.ca.placed) != 1 || !slices.Equal(e.ca.placed[0].Names, []string{"blog.customer.example", "www.blog.customer.example"}) || e.ca.placed[0].Replaces != "" {
		t.Errorf("placed %+v, want one order for the fixture's names without replaces", e.ca.placed)
	}
	if e.store.cert.SpentSlot != e.in.OrderSlot.Seq {
		t.Errorf("spent slot %d, want the execution's slot %d", e.store.cert.SpentSlot, e.in.OrderSlot.Seq)
	}
	// The order is stored when placed, and again with the key and CSR
	// before the CA sees the CSR.
	if len(e.store.puts) != 2 || e.store.puts[0].CSR != nil || e.store.puts[1].CSR == nil || string(e.store.puts[1].Key.Wrapped) != "wrapped" {
		t.Errorf("stored orders %+v, want the placed order, then with its sealed key and CSR", e.store.puts)
	}
	if len(e.ca.keys) != 1 || len(e.sealer.plaintext) != 1 || len(e.sealer.plaintext[0]) != len(e.ca.keys[0]) ||
		!bytes.Contains(e.sealer.plaintext[0], []byte("PRIVATE KEY")) {
		t.Fatalf("made %d keys and sealed %d, want the one key sealed", len(e.ca.keys), len(e.sealer.plaintext))
	}
	if !bytes.Equal(e.ca.keys[0], make([]byte, len(e.ca.keys[0]))) {
		t.Error("the plaintext key was not zeroed")
	}
	if want := map[string]string{"purpose": "certificate-key", "domain": "blog.customer.example"}; !maps.Equal(e.sealer.encCtx, want) {
		t.Errorf("encryption context = %v, want %v", e.sealer.encCtx, want)
	}
	wantRenew := notBefore.Add(60 * 24 * time.Hour)
	if len(e.store.saved) != 1 {
		t.Fatalf("SaveIssued calls = %d, want 1", len(e.store.saved))
	}
	got := e.store.saved[0]
	if got.Domain != "blog.customer.example" || got.Execution != e.in.Execution || got.CA != flow.CAPrimary || !slices.Equal(got.SANs, []string{"blog.customer.example", "www.blog.customer.example"}) ||
		got.Serial != "0a1b2c" || got.Issuer != "Pebble Intermediate CA" || got.ARICertID != "aki.CgsM" || got.KeyType != "ec256" ||
		!got.RenewAt.Equal(wantRenew) || string(got.Key.Ciphertext) != "ciphertext-1" || strings.Contains(got.CertPEM, "PRIVATE KEY") {
		t.Errorf("SaveIssued(%+v) does not hold the issued certificate and the order's sealed key", got)
	}
	want := flow.Issued{Domain: "blog.customer.example", Serial: "0a1b2c", NotBefore: notBefore, NotAfter: notBefore.Add(90 * 24 * time.Hour), RenewAt: wantRenew, CA: flow.CAPrimary}
	if out != want {
		t.Errorf("Handle = %+v, want %+v", out, want)
	}
	b, _ := json.Marshal(out)
	if wantJSON := `{"domain":"blog.customer.example","serial":"0a1b2c","notBefore":"2026-11-21T16:00:00Z","notAfter":"2027-02-19T16:00:00Z","renewAt":"2027-01-20T16:00:00Z","renewed":false,"ca":"primary"}`; string(b) != wantJSON {
		t.Errorf("flow.Issued JSON = %s, want %s", b, wantJSON)
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") || !strings.Contains(logs.String(), `"serial":"0a1b2c"`) || !strings.Contains(logs.String(), "order placed") {
		t.Errorf("log = %s, want the order, the serial and no key", logs.String())
	}
}

// TestResume: a stored order is resumed where it stands, whoever placed
// it; nothing is placed and no slot is spent.
func TestResume(t *testing.T) {
	tests := []struct {
		status       string
		wantKeys     int
		wantFinalize int
	}{
		{acme.StatusPending, 1, 1},
		{acme.StatusReady, 0, 1}, // key and CSR stored: never made again
		{acme.StatusProcessing, 0, 0},
		{acme.StatusValid, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			e := newEnv(t)
			e.storeOrder(t, tt.status)
			keysBefore := len(e.ca.keys)
			e.in.OrderSlot = nil // a new run of the domain has none
			if _, err := e.h.Handle(context.Background(), e.in); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if len(e.ca.placed) != 0 || e.store.cert.SpentSlot != 0 {
				t.Errorf("placed %v, spent slot %d; want the stored order resumed", e.ca.placed, e.store.cert.SpentSlot)
			}
			if keys := len(e.ca.keys) - keysBefore; keys != tt.wantKeys || e.ca.finalized != tt.wantFinalize || e.ca.fetched != 1 {
				t.Errorf("keys made %d, finalized %d, fetched %d; want %d, %d, 1", keys, e.ca.finalized, e.ca.fetched, tt.wantKeys, tt.wantFinalize)
			}
			if len(e.store.saved) != 1 {
				t.Fatalf("saved %d certificates, want 1", len(e.store.saved))
			}
			if tt.wantKeys == 0 && string(e.store.saved[0].Key.Wrapped) != "w0" {
				t.Errorf("saved key %q, want the order's stored key", e.store.saved[0].Key.Wrapped)
			}
		})
	}
}

// TestStoredOrderNotResumed: an order the CA will not complete, or one for
// something else, is dropped; an invalid one is this attempt's failure.
func TestStoredOrderNotResumed(t *testing.T) {
	challenge := &failure.ChallengeFailedError{Message: "connection refused"}
	tests := []struct {
		name       string
		edit       func(e *env, fo *fakeOrder)
		wantPlaced int
		wantType   string
	}{
		{"gone at the CA", func(_ *env, fo *fakeOrder) { fo.gone = true }, 1, ""},
		{"invalid", func(_ *env, fo *fakeOrder) { fo.status, fo.problem = acme.StatusInvalid, challenge }, 0, "ChallengeFailedError"},
		{"other names", func(e *env, _ *fakeOrder) { e.store.order.Names = []string{"blog.customer.example"} }, 1, ""},
		{"another CA", func(e *env, _ *fakeOrder) { e.store.order.Directory = "https://other-ca.example/dir" }, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.edit(e, e.storeOrder(t, acme.StatusPending))
			_, err := e.h.Handle(context.Background(), e.in)
			if got := failureType(err); got != tt.wantType || (tt.wantType == "" && err != nil) {
				t.Fatalf("Handle = %v (type %q), want type %q", err, got, tt.wantType)
			}
			if len(e.ca.placed) != tt.wantPlaced || e.store.dropped != 1 {
				t.Errorf("placed %d, dropped %d; want %d placed and the stored order dropped", len(e.ca.placed), e.store.dropped, tt.wantPlaced)
			}
		})
	}
}

// TestSlots: a new order needs the execution's slot, unspent and current;
// ARI renewals go without.
func TestSlots(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(e *env)
		wantType   string
		wantPlaced int
	}{
		{"current slot", func(*env) {}, "", 1},
		{"late slot, position free", func(e *env) { e.now = e.in.OrderSlot.At.Add(time.Hour) }, "", 1},
		{"late slot, position just used by a successor", func(e *env) {
			e.now = e.in.OrderSlot.At.Add(time.Hour)
			e.slots.placed = e.now.Add(-time.Minute)
		}, "NeedsOrderSlotError", 0},
		{"position free in a moment", func(e *env) {
			e.h.cfg.MaxEarly = 200 * time.Millisecond
			e.now = e.in.OrderSlot.At.Add(time.Hour)
			e.slots.placed = e.now.Add(-time.Hour + 50*time.Millisecond)
			e.slots.now = time.Now // the step sleeps for real
			e.slots.placed = time.Now().Add(-time.Hour + 50*time.Millisecond)
		}, "", 1},
		{"slot far ahead", func(e *env) { e.now = e.in.OrderSlot.At.Add(-time.Hour) }, "TransientError", 0},
		{"no slot", func(e *env) { e.in.OrderSlot = nil }, "NeedsOrderSlotError", 0},
		{"spent slot", func(e *env) { e.store.cert.SpentSlot = 7 }, "NeedsOrderSlotError", 0},
		{"ARI renewal without a slot", func(e *env) {
			e.in.OrderSlot, e.in.Replaces, e.in.ReplacesSerial = nil, "aki.old", "01"
			e.store.cert.Status = certstore.StatusActive
		}, "", 1},
		{"ARI renewal whose exempt order was lost", func(e *env) {
			e.in.OrderSlot, e.in.Replaces = nil, "aki.old"
			e.store.cert.SpentSlot = -1
		}, "NeedsOrderSlotError", 0},
		{"another execution owns the domain", func(e *env) { e.store.cert.Execution = "issue-other" }, "SupersededError", 0},
		{"a slot of the other CA's budget", func(e *env) { e.in.OrderSlot.CA = flow.CAFallback }, "NeedsOrderSlotError", 0},
		{"a CA the deployment does not have", func(e *env) { e.in.CA = flow.CAFallback }, "InvalidInputError", 0},
		{"retired", func(e *env) {
			e.in.OrderSlot = nil
			e.in.Replaces = "aki.old"
			e.store.cert.Status = certstore.StatusRetired
		}, "DomainRetiredError", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.edit(e)
			_, err := e.h.Handle(context.Background(), e.in)
			if got := failureType(err); got != tt.wantType || (tt.wantType == "" && err != nil) {
				t.Fatalf("Handle = %v (type %q), want type %q", err, got, tt.wantType)
			}
			if len(e.ca.placed) != tt.wantPlaced {
				t.Errorf("placed %d orders, want %d", len(e.ca.placed), tt.wantPlaced)
			}
			if tt.wantType != "" && e.store.cert.SpentSlot > 0 && e.store.cert.SpentSlot != 7 {
				t.Errorf("slot %d left spent after %s", e.store.cert.SpentSlot, tt.wantType)
			}
			if tt.name == "ARI renewal without a slot" && (e.ca.placed[0].Replaces != "aki.old" || len(e.store.saved) != 1 || e.slots.admits != 0) {
				t.Errorf("placed %+v, admitted %d; want replaces aki.old, the certificate stored, no budget", e.ca.placed, e.slots.admits)
			}
		})
	}
}

// TestSlotGivenBack: the slot is given back when newOrder certainly
// created no order, and stays spent when it may have.
func TestSlotGivenBack(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantSpent bool
	}{
		{"rate limited", &failure.RateLimitedError{Message: "too many new orders", RetryAfter: time.Hour}, false},
		{"name rejected", &failure.DomainRejectedError{Message: "rejectedIdentifier"}, false},
		{"replaces refused", &failure.ReplacesRefusedError{Message: "alreadyReplaced"}, false},
		{"the CA erred", &failure.TransientError{Code: failure.CodeCAError, Message: "500"}, true},
		{"the CA could not be connected to", &failure.TransientError{Code: failure.CodeCAUnreachable, Message: "refused",
			Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}, false},
		{"the answer was lost", &failure.TransientError{Code: failure.CodeCAUnreachable, Message: "connection reset"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.ca.placeErr = tt.err
			if _, err := e.h.Handle(context.Background(), e.in); !errors.Is(err, tt.err) {
				t.Fatalf("Handle = %v, want %v", err, tt.err)
			}
			if spent := e.store.cert.SpentSlot == e.in.OrderSlot.Seq; spent != tt.wantSpent {
				t.Errorf("slot spent = %v, want %v", spent, tt.wantSpent)
			}
			if released := e.slots.released == 1; released == tt.wantSpent {
				t.Errorf("admission released = %v, want %v: the budget keeps only orders that may have reached the CA", released, !tt.wantSpent)
			}
			if e.store.lease != "" {
				t.Error("the lease is still held: the execution's retry would wait for it")
			}
		})
	}
}

// TestLeaseOutlivesItsExecution: the execution ended while its Issue
// invocation was placing an order, and the reconciler started the next
// run. The invocation still stores the order it placed; the next run,
// which waited while the invocation held the domain's lease, resumes that
// order instead of placing a second one for the certificate.
func TestLeaseOutlivesItsExecution(t *testing.T) {
	e := newEnv(t)
	next := e.in
	next.Execution = flow.IssueName(e.in.Domain, e.in.Generation, 2)
	next.OrderSlot = &flow.OrderSlot{CA: e.in.OrderSlot.CA, Seq: e.in.OrderSlot.Seq + 1, At: e.in.OrderSlot.At}
	var waited error
	e.ca.onPlace = func() {
		e.store.cert.Execution, e.store.cert.Run = next.Execution, 2
		e.ca.mu.Unlock() // the next run's attempt, while newOrder is in flight
		_, waited = e.h.Handle(context.Background(), next)
		e.ca.mu.Lock()
	}

	_, err := e.h.Handle(context.Background(), e.in)
	if failureType(err) != "SupersededError" {
		t.Fatalf("first run: Handle = %v, want SupersededError once it writes as the domain's owner", err)
	}
	var transient *failure.TransientError
	if !errors.As(waited, &transient) || transient.Code != failure.CodeIssueInProgress {
		t.Fatalf("next run, while the first placed its order: Handle = %v, want a TransientError with code %s", waited, failure.CodeIssueInProgress)
	}
	if e.store.order == nil || e.store.order.URL != e.ca.placed[0].URL || e.store.lease != "" {
		t.Fatalf("stored order %+v (lease %q), want the order placed, stored for the next run and the lease released", e.store.order, e.store.lease)
	}

	e.ca.onPlace = nil
	if _, err := e.h.Handle(context.Background(), next); err != nil {
		t.Fatalf("next run: Handle: %v", err)
	}
	if len(e.ca.placed) != 1 || len(e.store.saved) != 1 || e.ca.finalized != 1 {
		t.Errorf("the CA saw orders %+v and finalised %d, %d certificates stored: want the one order resumed and issued", e.ca.placed, e.ca.finalized, len(e.store.saved))
	}
}

// TestAuthorizeFailures: a judged challenge makes the order invalid and it
// is dropped; a transient failure keeps it for the next attempt.
func TestAuthorizeFailures(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		wantDropped bool
	}{
		{"challenge failed", &failure.ChallengeFailedError{Message: "404"}, true},
		{"CA unreachable", &failure.TransientError{Code: failure.CodeCAUnreachable, Message: "refused"}, false},
		{"deadline near", &failure.TransientError{Code: failure.CodeStepTimeout, Message: "10s left"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.ca.authErr = tt.err
			if _, err := e.h.Handle(context.Background(), e.in); !errors.Is(err, tt.err) {
				t.Fatalf("Handle = %v, want %v", err, tt.err)
			}
			if dropped := e.store.order == nil; dropped != tt.wantDropped {
				t.Errorf("order dropped = %v, want %v", dropped, tt.wantDropped)
			}
		})
	}
}

func TestHandleErrors(t *testing.T) {
	storeErr := errors.New("throttled")
	tests := []struct {
		name     string
		edit     func(e *env)
		wantType string
		wantIs   error
	}{
		{"invalid primary", func(e *env) { e.in.Domain = "bad_name.example" }, "InvalidInputError", nil},
		{"invalid SAN", func(e *env) { e.in.SANs = []string{"*.*.customer.example"} }, "InvalidInputError", nil},
		{"no execution", func(e *env) { e.in.Execution = "" }, "InvalidInputError", nil},
		{"seal failure", func(e *env) { e.sealer.err = storeErr }, "", storeErr},
		{"retired while issuing", func(e *env) { e.store.saveErr = fmt.Errorf("save: %w", certstore.ErrRetired) }, "DomainRetiredError", certstore.ErrRetired},
		{"superseded while issuing", func(e *env) { e.store.saveErr = fmt.Errorf("save: %w", certstore.ErrSuperseded) }, "SupersededError", certstore.ErrSuperseded},
		{"save failure", func(e *env) { e.store.saveErr = storeErr }, "", storeErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.edit(e)
			_, err := e.h.Handle(context.Background(), e.in)
			if err == nil {
				t.Fatal("Handle succeeded, want an error")
			}
			if got := failureType(err); got != tt.wantType {
				t.Errorf("Handle = %v (type %q), want type %q", err, got, tt.wantType)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Handle = %v, want it to wrap %v", err, tt.wantIs)
			}
			for _, k := range e.ca.keys {
				if !bytes.Equal(k, make([]byte, len(k))) {
					t.Error("a plaintext key was not zeroed after a failure")
				}
			}
			if strings.HasPrefix(tt.name, "invalid") && len(e.ca.placed) > 0 {
				t.Error("an invalid name reached the CA")
			}
		})
	}
}

// TestRenewalAndIDN: names as the platform wrote them are normalised; a
// renewal is reported as one.
func TestRenewalAndIDN(t *testing.T) {
	e := newEnv(t)
	e.in.Domain, e.in.SANs, e.in.Replaces, e.in.ReplacesSerial = "Bücher.Customer.Example.", []string{"www.bücher.customer.example", "bücher.customer.example"}, "aki.serial", "01"
	e.store.cert.Domain = "xn--bcher-kva.customer.example"
	out, err := e.h.Handle(context.Background(), e.in)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if p := e.ca.placed[0]; !slices.Equal(p.Names, []string{"www.xn--bcher-kva.customer.example", "xn--bcher-kva.customer.example"}) || p.Replaces != "aki.serial" {
		t.Errorf("placed %+v, want punycode names and replaces", p)
	}
	if !out.Renewed || out.Domain != "xn--bcher-kva.customer.example" {
		t.Errorf("Handle = %+v, want renewed xn--bcher-kva.customer.example", out)
	}
}
