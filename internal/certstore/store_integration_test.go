package certstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/table"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/offlinetest"
)

// The tenants of the tests' requests.
const (
	tenantA = "arn:aws:iam::123456789012:role/tenant-a"
	tenantB = "arn:aws:iam::123456789012:role/tenant-b"
)

// testDB and testTable are set by TestMain when the offline stack runs
// (not with -short).
var (
	testDB     *dynamodb.Client
	testTable  string
	testTimers string
)

func TestMain(m *testing.M) {
	os.Exit(offlinetest.Main(m, offline.Options{DynamoDB: true}, func(env *offline.Stack) {
		testDB = dynamodb.NewFromConfig(env.AWS)
		testTable, testTimers = env.Tables.Certificates, env.Tables.Timers
	}))
}

func newTestStore(t *testing.T, opts ...Option) *Store {
	t.Helper()
	if testDB == nil {
		offlinetest.Require(t)
	}
	return New(testDB, testTable, append([]Option{WithTimerTable(testTimers), WithClock(func() time.Time { return t0 })}, opts...)...)
}

// issued returns a certificate for domain issued at notBefore, stored by
// the execution that owns the domain now.
func issued(t *testing.T, s *Store, domain, serial string, notBefore time.Time, sans ...string) Issued {
	t.Helper()
	return Issued{
		Domain: domain, Execution: mustGet(t, s, domain).Execution, SANs: append([]string{domain}, sans...),
		CertPEM:   "-----BEGIN CERTIFICATE-----\n" + serial + "\n-----END CERTIFICATE-----\n",
		Key:       SealedKey{Wrapped: []byte("wrapped-" + serial), Ciphertext: []byte("sealed-" + serial)},
		KeyType:   "ec256",
		NotBefore: notBefore, NotAfter: notBefore.Add(90 * 24 * time.Hour),
		Serial: serial, Issuer: "Pebble Intermediate", ARICertID: "aki." + serial,
		RenewAt: notBefore.Add(60 * 24 * time.Hour),
	}
}

func mustRequest(t *testing.T, s *Store, domain string, sans ...string) *Certificate {
	t.Helper()
	c, started, err := s.Request(context.Background(), RequestInput{Tenant: tenantA, Domain: domain, SANs: sans, Now: t0})
	if err != nil || !started {
		t.Fatalf("Request(%q) = %v, %v, want started", domain, started, err)
	}
	return c
}

func mustGet(t *testing.T, s *Store, domain string) *Certificate {
	t.Helper()
	c, err := s.GetConsistent(context.Background(), domain)
	if err != nil {
		t.Fatalf("GetConsistent(%q) error = %v", domain, err)
	}
	return c
}

// mustIssue stores a certificate for domain by its owning execution.
func mustIssue(t *testing.T, s *Store, domain, serial string, notBefore time.Time, sans ...string) {
	t.Helper()
	if err := s.SaveIssued(context.Background(), issued(t, s, domain, serial, notBefore, sans...)); err != nil {
		t.Fatalf("SaveIssued(%s %s) error = %v", domain, serial, err)
	}
}

func TestRequestLifecycle(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const d = "request.example"
	c := mustRequest(t, s, d)
	if c.Status != StatusPending || c.Generation != 1 || c.Version != 1 || c.Run != 1 || c.Execution != flow.IssueName(d, 1, 1) || !c.DueAt.Equal(t0.Add(DefaultGrace)) {
		t.Errorf("Request(new) = %+v, want pending gen 1 v1, run 1 owned by %s, due %v", c, flow.IssueName(d, 1, 1), t0.Add(DefaultGrace))
	}
	if stored := mustGet(t, s, d); stored.Execution != c.Execution || !stored.DueAt.Equal(c.DueAt) {
		t.Errorf("stored item = %+v, want what Request returned", stored)
	}
	if _, started, err := s.Request(ctx, RequestInput{Tenant: tenantA, Domain: d, Now: t0}); err != nil || started {
		t.Errorf("Request(pending) started = %v, %v, want false", started, err)
	}
	if err := s.Quarantine(ctx, d, c.Execution, failure.CodeDomainRejected, "no", ""); err != nil {
		t.Fatal(err)
	}
	c, started, err := s.Request(ctx, RequestInput{Tenant: tenantA, Domain: d, SANs: []string{"www." + d}, Now: t0.Add(time.Hour)})
	if err != nil || !started {
		t.Fatalf("Request(quarantined) = %v, %v, want started", started, err)
	}
	if c.Status != StatusPending || c.Generation != 2 || c.Run != 1 || c.Execution != flow.IssueName(d, 2, 1) || c.QuarantineReason != "" || len(c.SANs) != 1 {
		t.Errorf("Request(quarantined) = %+v, want pending generation 2 run 1, failure fields cleared, the new sans", c)
	}
}

func TestRequestConcurrent(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const d = "concurrent-request.example"
	mustRequest(t, s, d)
	if _, err := s.Retire(ctx, tenantA, d); err != nil {
		t.Fatal(err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		started int
	)
	for range 8 {
		wg.Go(func() {
			_, st, err := s.Request(ctx, RequestInput{Tenant: tenantA, Domain: d, SANs: []string{"www." + d}, Now: t0})
			if err != nil {
				t.Errorf("Request() error = %v", err)
			}
			if st {
				mu.Lock()
				started++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if started != 1 {
		t.Errorf("%d concurrent requests started %d generations, want 1", 8, started)
	}
	if c := mustGet(t, s, d); c.Generation != 2 {
		t.Errorf("generation = %d, want 2", c.Generation)
	}
}

// TestNamesTaken: a SAN or a primary name another live domain holds is
// refused, and changes nothing; retiring the holder frees it.
func TestNamesTaken(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const a, b = "a.taken.example", "b.taken.example"
	mustRequest(t, s, a, "www.a.taken.example")
	for _, tc := range []struct {
		name    string
		primary string
		sans    []string
		taken   string
	}{
		{"another's SAN as a SAN", b, []string{"shop.taken.example", "www.a.taken.example"}, "www.a.taken.example"},
		{"another's SAN as the primary", "www.a.taken.example", nil, "www.a.taken.example"},
		{"another's primary as a SAN", b, []string{a}, a},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.Request(ctx, RequestInput{Tenant: tenantA, Domain: tc.primary, SANs: tc.sans, Now: t0})
			var taken *NameTakenError
			if !errors.As(err, &taken) || taken.Name != tc.taken || !errors.Is(err, ErrNameTaken) {
				t.Fatalf("Request(%s %v) error = %v, want %q taken", tc.primary, tc.sans, err, tc.taken)
			}
			if _, err := s.GetConsistent(ctx, tc.primary); !errors.Is(err, ErrNotFound) {
				t.Errorf("Request(%s) refused but wrote the item (%v)", tc.primary, err)
			}
			if c, err := s.GetForDelivery(ctx, "shop.taken.example"); !errors.Is(err, ErrNotFound) {
				t.Errorf("a refused request left an alias: %v, %v", c, err)
			}
		})
	}
	// A quarantined domain keeps its names (its certificate is served).
	c := mustGet(t, s, a)
	if err := s.Quarantine(ctx, a, c.Execution, failure.CodeDomainNotPointed, "moved", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Request(ctx, RequestInput{Tenant: tenantA, Domain: b, SANs: []string{"www.a.taken.example"}, Now: t0}); !errors.Is(err, ErrNameTaken) {
		t.Errorf("Request(SAN of a quarantined domain) error = %v, want ErrNameTaken", err)
	}
	// A retired one frees them.
	if _, err := s.Retire(ctx, tenantA, a); err != nil {
		t.Fatal(err)
	}
	mustRequest(t, s, b, "www.a.taken.example")
	if _, _, err := s.Request(ctx, RequestInput{Tenant: tenantA, Domain: a, SANs: []string{"www.a.taken.example"}, Now: t0}); !errors.Is(err, ErrNameTaken) {
		t.Errorf("Request(retired domain asking for a SAN now b's) error = %v, want ErrNameTaken", err)
	}
	if c := mustGet(t, s, a); c.Status != StatusRetired {
		t.Errorf("a refused request changed the retired item to %s", c.Status)
	}
}

// TestClaimAndFencing: a claim makes the next run the owner; every write of
// the superseded execution is refused.
func TestClaimAndFencing(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const d = "claim.example"
	first := mustRequest(t, s, d)
	second, err := s.Claim(ctx, first, t0.Add(time.Minute))
	if err != nil {
		t.Fatalf("Claim() error = %v", err)
	}
	if second.Run != 2 || second.Execution != flow.IssueName(d, 1, 2) || second.Waits != 0 || !second.DueAt.Equal(t0.Add(time.Minute+DefaultGrace)) {
		t.Errorf("Claim() = %+v, want run 2 owned by %s", second, flow.IssueName(d, 1, 2))
	}
	if _, err := s.Claim(ctx, first, t0); !errors.Is(err, ErrStale) {
		t.Errorf("Claim(stale view) error = %v, want ErrStale", err)
	}
	detail := failure.Detail{Code: failure.CodeChallengeFailed, Message: "404"}
	if _, err := s.RecordFailure(ctx, d, first.Execution, detail, t0.Add(time.Hour), t0); !errors.Is(err, ErrSuperseded) {
		t.Errorf("RecordFailure(superseded execution) error = %v, want ErrSuperseded", err)
	}
	if err := s.Await(ctx, d, first.Execution, t0.Add(time.Hour)); !errors.Is(err, ErrSuperseded) {
		t.Errorf("Await(superseded execution) error = %v, want ErrSuperseded", err)
	}
	old := issued(t, s, d, "0a", t0)
	old.Execution = first.Execution
	if err := s.SaveIssued(ctx, old); !errors.Is(err, ErrSuperseded) {
		t.Errorf("SaveIssued(superseded execution) error = %v, want ErrSuperseded", err)
	}
	if err := s.PutOrder(ctx, Order{Domain: d, Execution: first.Execution, URL: "https://ca/order/1"}); !errors.Is(err, ErrSuperseded) {
		t.Errorf("PutOrder(superseded execution) error = %v, want ErrSuperseded", err)
	}

	// Concurrent claims of one view: one wins.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	for range 6 {
		wg.Go(func() {
			if _, err := s.Claim(ctx, second, t0); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, ErrStale) {
				t.Errorf("Claim() error = %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d concurrent claims won, want 1", wins)
	}

	// The owner stores; the domain is then idle: active, owned by no one,
	// due at its renewal time plus the grace.
	mustIssue(t, s, d, "0b", t0)
	c := mustGet(t, s, d)
	if c.Status != StatusActive || c.Execution != "" || c.Run != 0 || !c.DueAt.Equal(c.RenewAt.Add(DefaultGrace)) {
		t.Errorf("after SaveIssued: %+v, want active, idle, due at renewAt+grace", c)
	}
	renewal, err := s.Claim(ctx, c, t0)
	if err != nil || renewal.Execution != flow.RenewName(d, "0b", 1) {
		t.Errorf("Claim(active) = %+v, %v, want owned by %s", renewal, err, flow.RenewName(d, "0b", 1))
	}
	// An ARI move of a certificate being renewed is refused.
	if err := s.MoveTimer(ctx, d, "0b", c.ARICertID, t0.Add(time.Hour)); !errors.Is(err, ErrStale) {
		t.Errorf("MoveTimer(renewing) error = %v, want ErrStale", err)
	}
}

func TestSaveIssuedOrdering(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()

	t.Run("newer then older", func(t *testing.T) {
		const d = "stale.example"
		mustRequest(t, s, d)
		newer := issued(t, s, d, "0b", t0.Add(time.Hour))
		older := issued(t, s, d, "0a", t0)
		if err := s.SaveIssued(ctx, newer); err != nil {
			t.Fatalf("SaveIssued(newer) error = %v", err)
		}
		if err := s.SaveIssued(ctx, older); !errors.Is(err, ErrSuperseded) {
			t.Fatalf("SaveIssued(older, after the execution's end) error = %v, want ErrSuperseded", err)
		}
		renewal, err := s.Claim(ctx, mustGet(t, s, d), t0)
		if err != nil {
			t.Fatal(err)
		}
		older.Execution = renewal.Execution
		if err := s.SaveIssued(ctx, older); !errors.Is(err, ErrStale) {
			t.Fatalf("SaveIssued(older) error = %v, want ErrStale", err)
		}
		if c := mustGet(t, s, d); c.Serial != "0b" || c.Status != StatusActive {
			t.Errorf("stored serial %s status %s, want 0b active", c.Serial, c.Status)
		}
		tm, err := s.GetTimer(ctx, d)
		if err != nil || tm.Serial != "0b" {
			t.Errorf("timer = %+v, %v, want serial 0b", tm, err)
		}
	})

	t.Run("same serial twice", func(t *testing.T) {
		const d = "idempotent.example"
		v0 := mustRequest(t, s, d).Version
		in := issued(t, s, d, "0C", t0)
		for i := range 2 {
			if err := s.SaveIssued(ctx, in); err != nil {
				t.Fatalf("SaveIssued #%d error = %v", i+1, err)
			}
		}
		if c := mustGet(t, s, d); c.Version != v0+1 || c.Serial != "0c" {
			t.Errorf("version %d serial %s, want %d and 0c", c.Version, c.Serial, v0+1)
		}
	})

	t.Run("retired", func(t *testing.T) {
		const d = "retired-save.example"
		mustRequest(t, s, d)
		in := issued(t, s, d, "0d", t0)
		if _, err := s.Retire(ctx, tenantA, d); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveIssued(ctx, in); !errors.Is(err, ErrRetired) {
			t.Errorf("SaveIssued(retired) error = %v, want ErrRetired", err)
		}
	})

	t.Run("never requested", func(t *testing.T) {
		in := Issued{Domain: "never.example", Execution: "issue-x", SANs: []string{"never.example"}, CertPEM: "c", Key: SealedKey{Wrapped: []byte("w"), Ciphertext: []byte("c")},
			NotBefore: t0, NotAfter: t0.Add(time.Hour), RenewAt: t0.Add(time.Minute), Serial: "0e"}
		if err := s.SaveIssued(ctx, in); !errors.Is(err, ErrNotFound) {
			t.Errorf("SaveIssued(missing) error = %v, want ErrNotFound", err)
		}
	})
}

// TestRecordFailureAndWait: failures that count against the domain and
// waits that do not.
func TestRecordFailureAndWait(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	notPointed := failure.Detail{Code: failure.CodeDomainNotPointed, Message: "elsewhere"}
	outage := failure.Detail{Code: failure.CodeCAUnreachable, Message: "connection refused"}

	const pending = "failing.example"
	exec := mustRequest(t, s, pending).Execution
	for i := 1; i <= 3; i++ {
		now := t0.Add(time.Duration(i) * time.Minute)
		a, err := s.RecordFailure(ctx, pending, exec, notPointed, now.Add(time.Hour), now)
		if err != nil || a.FailureCount != i || !a.FirstFailureAt.Equal(t0.Add(time.Minute)) || a.Waits != i {
			t.Errorf("RecordFailure #%d = %+v, %v, want count %d since %v", i, a, err, i, t0.Add(time.Minute))
		}
	}
	a, err := s.RecordWait(ctx, pending, exec, outage, true, t0.Add(2*time.Hour), t0.Add(time.Hour))
	if err != nil || a.FailureCount != 3 || a.OutageCount != 1 || a.Waits != 4 {
		t.Errorf("RecordWait(outage) = %+v, %v, want 3 failures, 1 outage, 4 waits", a, err)
	}
	c := mustGet(t, s, pending)
	if c.Status != StatusFailed || c.LastErrorCode != failure.CodeCAUnreachable || !c.NextAttemptAt.Equal(t0.Add(2*time.Hour)) || !c.DueAt.Equal(t0.Add(2*time.Hour+DefaultGrace)) {
		t.Errorf("after failures: %+v, want failed, last ca_unreachable, next attempt and due accordingly", c)
	}

	const active = "renewal-failing.example"
	mustRequest(t, s, active)
	mustIssue(t, s, active, "0f", t0)
	renewal, err := s.Claim(ctx, mustGet(t, s, active), t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordWait(ctx, active, renewal.Execution, outage, true, t0.Add(time.Hour), t0); err != nil {
		t.Fatal(err)
	}
	if c := mustGet(t, s, active); c.Status != StatusActive || c.FailureCount != 0 || c.OutageCount != 1 {
		t.Errorf("active after an outage: %+v, want still active, nothing counted against it", c)
	}
	if _, err := s.RecordFailure(ctx, active, renewal.Execution, notPointed, t0.Add(time.Hour), t0); err != nil {
		t.Fatal(err)
	}
	if c := mustGet(t, s, active); c.Status != StatusActive || c.FailureCount != 1 {
		t.Errorf("active after a failure: %+v, want still active (served), one failure", c)
	}
	// A new certificate clears the failure fields.
	mustIssue(t, s, active, "10", t0.Add(time.Hour))
	if c := mustGet(t, s, active); c.FailureCount != 0 || c.OutageCount != 0 || c.LastErrorCode != "" || !c.FirstFailureAt.IsZero() || c.Waits != 0 {
		t.Errorf("after issuance: %+v, want the failure fields cleared", c)
	}

	if err := s.Quarantine(ctx, pending, exec, failure.CodeAccountPaused, "paused", "https://ca/unpause"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordFailure(ctx, pending, exec, notPointed, t0, t0); !errors.Is(err, ErrSuperseded) {
		t.Errorf("RecordFailure(quarantined) error = %v, want ErrSuperseded (no execution owns it)", err)
	}
	if _, err := s.RecordFailure(ctx, "missing.example", "x", notPointed, t0, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("RecordFailure(missing) error = %v, want ErrNotFound", err)
	}
}

func TestQuarantineAndRetire(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()

	const q = "quarantine.example"
	mustRequest(t, s, q)
	mustIssue(t, s, q, "20", t0)
	renewal, err := s.Claim(ctx, mustGet(t, s, q), t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutOrder(ctx, Order{Domain: q, Execution: renewal.Execution, URL: "https://ca/order/q", Names: []string{q}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Quarantine(ctx, q, renewal.Execution, failure.CodeAccountPaused, "paused", "https://ca/unpause"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetTimer(ctx, q); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetTimer(quarantined) error = %v, want ErrNotFound", err)
	}
	if _, err := s.GetOrder(ctx, q); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetOrder(quarantined) error = %v, want ErrNotFound", err)
	}
	c := mustGet(t, s, q)
	if c.Status != StatusQuarantined || c.QuarantineReason != failure.CodeAccountPaused || c.UnpauseURL != "https://ca/unpause" || !c.DueAt.IsZero() || c.Execution != "" {
		t.Errorf("quarantined item = %+v", c)
	}
	if got, err := s.GetForDelivery(ctx, q); err != nil || got.Serial != "20" {
		t.Errorf("GetForDelivery(quarantined) = %v, %v, want its certificate still served", got, err)
	}

	const r = "retire.example"
	mustRequest(t, s, r, "www."+r)
	mustIssue(t, s, r, "21", t0, "www."+r)
	prev, err := s.Retire(ctx, tenantA, r)
	if err != nil {
		t.Fatal(err)
	}
	if prev.Serial != "21" || len(prev.Key.Ciphertext) == 0 {
		t.Errorf("Retire() returned %+v, want the previous active item", prev)
	}
	c = mustGet(t, s, r)
	if c.Status != StatusRetired || len(c.Key.Wrapped) != 0 || len(c.Key.Ciphertext) != 0 || !c.DueAt.IsZero() {
		t.Errorf("retired item = %+v, want no key material and not due", c)
	}
	if _, err := s.GetTimer(ctx, r); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetTimer(retired) error = %v, want ErrNotFound", err)
	}
	if _, err := s.GetForDelivery(ctx, "www."+r); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetForDelivery(alias of retired) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Retire(ctx, tenantA, r); err != nil {
		t.Errorf("Retire(retired) error = %v, want nil", err)
	}
	if err := s.Quarantine(ctx, r, "x", "y", "z", ""); !errors.Is(err, ErrRetired) {
		t.Errorf("Quarantine(retired) error = %v, want ErrRetired", err)
	}
}

// TestOrderAndSlots: the pending order of the owning execution survives
// until the certificate is stored; an order slot is spent once.
func TestOrderAndSlots(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const d = "order.example"
	c := mustRequest(t, s, d)
	o := Order{Domain: d, Execution: c.Execution, URL: "https://ca/order/7", Names: []string{d}, Directory: "https://ca/dir", Account: "https://ca/acct/1", CreatedAt: t0}
	if err := s.PutOrder(ctx, o); err != nil {
		t.Fatal(err)
	}
	o.CSR, o.Key, o.KeyType = []byte("csr"), SealedKey{Wrapped: []byte("w"), Ciphertext: []byte("c")}, "ec256"
	if err := s.PutOrder(ctx, o); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetOrder(ctx, d)
	if err != nil || got.URL != o.URL || string(got.CSR) != "csr" || string(got.Key.Ciphertext) != "c" || got.Account != o.Account || !got.CreatedAt.Equal(t0) {
		t.Errorf("GetOrder() = %+v, %v, want %+v", got, err, o)
	}
	l := Lease{Execution: c.Execution, Token: c.Execution + "/1", Until: t0.Add(time.Minute)}
	if err := s.TakeLease(ctx, d, l); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		spent, err := s.SpendSlot(ctx, d, l, 42)
		if err != nil || spent != want {
			t.Errorf("SpendSlot(42) #%d = %v, %v, want %v", i+1, spent, err, want)
		}
	}
	if err := s.UnspendSlot(ctx, d, l, 42); err != nil {
		t.Fatal(err)
	}
	if spent, err := s.SpendSlot(ctx, d, l, 42); err != nil || !spent {
		t.Errorf("SpendSlot(42) after giving it back = %v, %v, want true", spent, err)
	}
	mustIssue(t, s, d, "0a", t0)
	if _, err := s.GetOrder(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetOrder() after the certificate was stored: %v, want ErrNotFound", err)
	}
	if c := mustGet(t, s, d); c.SpentSlot != 0 {
		t.Errorf("spent slot after issuance = %d, want cleared", c.SpentSlot)
	}
	if err := s.DropOrder(ctx, d); err != nil {
		t.Errorf("DropOrder(missing) error = %v, want nil", err)
	}
}

func TestGetForDelivery(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	mustRequest(t, s, "shop.delivery.example", "www.shop.delivery.example")
	if err := s.SaveIssued(ctx, issued(t, s, "shop.delivery.example", "30", t0, "www.shop.delivery.example")); err != nil {
		t.Fatal(err)
	}
	mustRequest(t, s, "*.delivery.example")
	if err := s.SaveIssued(ctx, issued(t, s, "*.delivery.example", "31", t0)); err != nil {
		t.Fatal(err)
	}
	mustRequest(t, s, "pending.delivery.example")

	tests := []struct {
		name, want string
	}{
		{"shop.delivery.example", "shop.delivery.example"},
		{"www.shop.delivery.example", "shop.delivery.example"},
		{"other.delivery.example", "*.delivery.example"},
		{"pending.delivery.example", "*.delivery.example"},
		{"a.b.delivery.example", ""},
		{"delivery.example", ""},
	}
	for _, tt := range tests {
		c, err := s.GetForDelivery(ctx, tt.name)
		switch {
		case tt.want == "" && !errors.Is(err, ErrNotFound):
			t.Errorf("GetForDelivery(%q) error = %v, want ErrNotFound", tt.name, err)
		case tt.want != "" && (err != nil || c.Domain != tt.want):
			t.Errorf("GetForDelivery(%q) = %v, %v, want %q", tt.name, c, err, tt.want)
		}
	}
}

func TestListAndDueIndexes(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	var names []string
	for i := range 7 {
		d := fmt.Sprintf("list%d.example", i)
		names = append(names, d)
		mustRequest(t, s, d)
		// Half are due before t0+1h, half after.
		in := issued(t, s, d, fmt.Sprintf("4%d", i), t0.Add(time.Duration(i)*time.Minute))
		in.RenewAt = t0.Add(time.Duration(i-3) * time.Hour)
		in.NotAfter = t0.Add(time.Duration(100+i) * time.Hour)
		if err := s.SaveIssued(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	mustRequest(t, s, "list-pending.example")

	var listed []string
	cursor := ""
	for pages := 0; ; pages++ {
		certs, next, err := s.List(ctx, tenantA, StatusActive, 3, cursor)
		if err != nil {
			t.Fatalf("List() error = %v", err)
		}
		for _, c := range certs {
			if strings.HasPrefix(c.Domain, "list") {
				listed = append(listed, c.Domain)
			}
			if c.CertPEM != "" || len(c.Key.Ciphertext) > 0 {
				t.Errorf("List() returned certificate or key material for %s", c.Domain)
			}
		}
		if next == "" {
			break
		}
		if pages > 20 {
			t.Fatal("List() does not end")
		}
		cursor = next
	}
	slices.Sort(listed) // the index orders a tenant's domains of one status by nothing
	if fmt.Sprint(listed) != fmt.Sprint(names) {
		t.Errorf("List(active) listed %v, want %v", listed, names)
	}
	if _, _, err := s.List(ctx, tenantA, StatusActive, 3, "garbage"); !errors.Is(err, ErrBadCursor) {
		t.Errorf("List(bad cursor) error = %v, want ErrBadCursor", err)
	}
	// Another tenant lists none of them, and cannot page with tenant A's
	// cursor.
	page, next, err := s.List(ctx, tenantA, StatusActive, 3, "")
	if err != nil || next == "" {
		t.Fatalf("List(first page) = %d, %q, %v", len(page), next, err)
	}
	if other, _, err := s.List(ctx, tenantB, StatusActive, 100, ""); err != nil || slices.ContainsFunc(other, func(c Certificate) bool { return strings.HasPrefix(c.Domain, "list") }) {
		t.Errorf("List(tenant B) = %d certificates, %v; want none of tenant A's", len(other), err)
	}
	if _, _, err := s.List(ctx, tenantB, StatusActive, 3, next); !errors.Is(err, ErrBadCursor) {
		t.Errorf("List(tenant B, tenant A's cursor) error = %v, want ErrBadCursor", err)
	}

	// Due: renewAt+grace for idle certificates (list0..list3 by t0+1h30),
	// the request's deadline for the pending domain.
	by := t0.Add(DefaultGrace + 30*time.Minute)
	due := map[string]Due{}
	for _, shard := range table.Shards() {
		cursor := ""
		for {
			rows, next, err := s.DueBy(ctx, shard, by, 1, cursor)
			if err != nil {
				t.Fatalf("DueBy(%s) error = %v", shard, err)
			}
			for _, r := range rows {
				if r.DueAt.After(by) {
					t.Errorf("DueBy returned %s due %v after %v", r.Domain, r.DueAt, by)
				}
				if strings.HasPrefix(r.Domain, "list") {
					due[r.Domain] = r
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	if len(due) != 5 {
		t.Errorf("DueBy found %v, want list0..list3 and the pending one", due)
	}
	if r := due["list0.example"]; r.Status != StatusActive || r.Serial == "" || len(r.SANs) == 0 || r.NotAfter.IsZero() || r.Execution != "" {
		t.Errorf("due row %+v lacks projected attributes", r)
	}
	if r := due["list-pending.example"]; r.Status != StatusPending || r.Execution == "" || r.Generation != 1 || r.Run != 1 {
		t.Errorf("due pending row %+v lacks projected attributes", r)
	}

	// ARI moves list6's renewal earlier.
	c := mustGet(t, s, "list6.example")
	if err := s.MoveTimer(ctx, c.Domain, c.Serial, c.ARICertID, t0); err != nil {
		t.Fatalf("MoveTimer() error = %v", err)
	}
	tm, err := s.GetTimer(ctx, c.Domain)
	if err != nil || !tm.RenewAt.Equal(t0) || tm.ARICertID != c.ARICertID {
		t.Errorf("timer after MoveTimer = %+v, %v", tm, err)
	}
	if c := mustGet(t, s, c.Domain); !c.RenewAt.Equal(t0) || !c.DueAt.Equal(t0.Add(DefaultGrace)) {
		t.Errorf("after MoveTimer: renewAt %v dueAt %v", c.RenewAt, c.DueAt)
	}
	if err := s.MoveTimer(ctx, c.Domain, "ff", c.ARICertID, t0); !errors.Is(err, ErrStale) {
		t.Errorf("MoveTimer(other serial) error = %v, want ErrStale", err)
	}

	exp, err := s.MinNotAfter(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if exp.NotAfter.After(t0.Add(100 * time.Hour)) {
		t.Errorf("MinNotAfter() = %+v, want at most %v", exp, t0.Add(100*time.Hour))
	}
}

// TestNoPlaintextKeys scans the whole table after the other tests (go test
// runs tests in source order, and this is the last one of the last file) and
// checks that no attribute holds a PEM private key.
func TestNoPlaintextKeys(t *testing.T) {
	if testDB == nil {
		offlinetest.Require(t)
	}
	ctx := context.Background()
	p := dynamodb.NewScanPaginator(testDB, &dynamodb.ScanInput{TableName: aws.String(testTable)})
	items := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range out.Items {
			items++
			for name, av := range item {
				if strings.Contains(fmt.Sprint(avString(av)), "PRIVATE KEY") {
					t.Errorf("item %v attribute %s holds a private key", item[table.AttrPK], name)
				}
			}
		}
	}
	if items == 0 {
		t.Error("scan found no items")
	}
}

func avString(av types.AttributeValue) string {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberB:
		return string(v.Value)
	case *types.AttributeValueMemberL:
		var b strings.Builder
		for _, e := range v.Value {
			b.WriteString(avString(e))
		}
		return b.String()
	case *types.AttributeValueMemberM:
		var b strings.Builder
		for _, e := range v.Value {
			b.WriteString(avString(e))
		}
		return b.String()
	}
	return fmt.Sprint(av)
}

// TestOffboard: a domain quarantined because it moved away stays due,
// when it is to be offboarded; before that, or once requested again, it
// is left alone; then it is retired. A quarantine for another reason is
// never offboarded.
func TestOffboard(t *testing.T) {
	s := newTestStore(t, WithOffboardAfter(time.Hour))
	ctx := context.Background()
	const moved, paused = "moved.example", "paused.example"
	for _, d := range []string{moved, paused} {
		c := mustRequest(t, s, d)
		reason := failure.CodeDomainNotPointed
		if d == paused {
			reason = failure.CodeAccountPaused
		}
		if err := s.Quarantine(ctx, d, c.Execution, reason, "gone", ""); err != nil {
			t.Fatal(err)
		}
	}
	q := mustGet(t, s, moved)
	if !q.DueAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("moved-away domain due %v, want an hour after the quarantine", q.DueAt)
	}
	due, _, err := s.DueBy(ctx, table.ShardOf(moved), t0.Add(2*time.Hour), 100, "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range due {
		found = found || d.Domain == moved
		if d.Domain == paused {
			t.Errorf("a domain quarantined for %s is in the due index", failure.CodeAccountPaused)
		}
	}
	if !found {
		t.Errorf("DueBy did not list the moved-away domain")
	}
	if _, err := s.Offboard(ctx, moved, t0); !errors.Is(err, ErrStale) {
		t.Errorf("Offboard before its time = %v, want ErrStale", err)
	}
	if _, err := s.Offboard(ctx, paused, t0.Add(48*time.Hour)); !errors.Is(err, ErrStale) {
		t.Errorf("Offboard(%s) = %v, want ErrStale", failure.CodeAccountPaused, err)
	}
	prev, err := s.Offboard(ctx, moved, t0.Add(2*time.Hour))
	if err != nil || prev.Status != StatusQuarantined {
		t.Fatalf("Offboard after its time = %+v, %v, want the quarantined item", prev, err)
	}
	if c := mustGet(t, s, moved); c.Status != StatusRetired || !c.DueAt.IsZero() {
		t.Errorf("offboarded item = %+v, want retired and not due", c)
	}
}

// TestLease: one Issue invocation at a time works a domain's order, even
// after its execution was superseded; it still stores the order it placed
// (for the next run to resume), and a lease ends when released, with the
// certificate, or past its deadline.
func TestLease(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const d = "lease.example"
	first := mustRequest(t, s, d)
	l1 := Lease{Execution: first.Execution, Token: first.Execution + "/a", Until: t0.Add(5 * time.Minute)}
	if err := s.TakeLease(ctx, d, l1); err != nil {
		t.Fatalf("TakeLease(first run) error = %v", err)
	}
	if spent, err := s.SpendSlot(ctx, d, l1, 7); err != nil || !spent {
		t.Fatalf("SpendSlot(first run) = %v, %v, want spent", spent, err)
	}
	second, err := s.Claim(ctx, first, t0)
	if err != nil {
		t.Fatalf("Claim() error = %v", err)
	}
	l2 := Lease{Execution: second.Execution, Token: second.Execution + "/b", Until: t0.Add(5 * time.Minute)}
	var held *LeaseHeldError
	if err := s.TakeLease(ctx, d, l2); !errors.As(err, &held) || !held.Until.Equal(l1.Until) {
		t.Fatalf("TakeLease(next run, first lease held) error = %v, want a LeaseHeldError until %s", err, l1.Until)
	}
	if _, err := s.SpendSlot(ctx, d, l2, 8); !errors.As(err, &held) {
		t.Errorf("SpendSlot(without the lease) error = %v, want a LeaseHeldError", err)
	}
	if err := s.TakeLease(ctx, d, Lease{Execution: first.Execution, Token: "c", Until: l1.Until}); !errors.Is(err, ErrSuperseded) {
		t.Errorf("TakeLease(superseded run) error = %v, want ErrSuperseded", err)
	}

	o := Order{Domain: d, Execution: first.Execution, URL: "https://ca/order/1", Names: []string{d}, Directory: "https://ca/dir", CreatedAt: t0}
	if err := s.StorePlaced(ctx, o, l1); err != nil {
		t.Fatalf("StorePlaced(superseded run holding the lease) error = %v, want the order stored for the next run", err)
	}
	if got, err := s.GetOrder(ctx, d); err != nil || got.URL != o.URL {
		t.Errorf("GetOrder() = %+v, %v, want the first run's order", got, err)
	}
	if err := s.PutOrder(ctx, o); !errors.Is(err, ErrSuperseded) {
		t.Errorf("PutOrder(superseded run) error = %v, want ErrSuperseded: only the owner goes on with the order", err)
	}
	if err := s.ReleaseLease(ctx, d, l1); err != nil {
		t.Fatal(err)
	}
	if err := s.StorePlaced(ctx, o, l1); !errors.As(err, &held) {
		t.Errorf("StorePlaced(lease released) error = %v, want a LeaseHeldError", err)
	}
	if err := s.ReleaseLease(ctx, d, l1); err != nil {
		t.Errorf("ReleaseLease(released) error = %v, want nil", err)
	}

	// The next run's lease, past its deadline without being released (its
	// invocation died), is over; one stored with the certificate too.
	dead := Lease{Execution: second.Execution, Token: second.Execution + "/dead", Until: t0.Add(-time.Second)}
	if err := s.TakeLease(ctx, d, dead); err != nil {
		t.Fatalf("TakeLease(next run, first lease released) error = %v", err)
	}
	l3 := Lease{Execution: second.Execution, Token: second.Execution + "/c", Until: t0.Add(time.Minute)}
	if err := s.TakeLease(ctx, d, l3); err != nil {
		t.Errorf("TakeLease(after a lease's deadline) error = %v", err)
	}
	mustIssue(t, s, d, "0b", t0)
	if c := mustGet(t, s, d); c.Execution != "" {
		t.Fatalf("after issuance the domain belongs to %q", c.Execution)
	}
	if err := s.StorePlaced(ctx, o, l3); !errors.As(err, &held) {
		t.Errorf("StorePlaced(lease stored with the certificate) error = %v, want a LeaseHeldError", err)
	}

	if _, err := s.Retire(ctx, tenantA, d); err != nil {
		t.Fatal(err)
	}
	if err := s.StorePlaced(ctx, o, l3); !errors.Is(err, ErrRetired) {
		t.Errorf("StorePlaced(retired domain) error = %v, want ErrRetired", err)
	}
}
