package certstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/table"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/offlinetest"
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

func newTestStore(t *testing.T) *Store {
	t.Helper()
	if testDB == nil {
		offlinetest.Require(t)
	}
	return New(testDB, testTable, WithTimerTable(testTimers), WithClock(func() time.Time { return t0 }))
}

// issued returns a certificate for domain issued at notBefore.
func issued(domain, serial string, notBefore time.Time, sans ...string) Issued {
	return Issued{
		Domain: domain, SANs: append([]string{domain}, sans...),
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
	c, started, err := s.Request(context.Background(), domain, append([]string{domain}, sans...), t0)
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

func TestRequestLifecycle(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const d = "request.example"
	c := mustRequest(t, s, d)
	if c.Status != StatusPending || c.Generation != 1 || c.Version != 1 {
		t.Errorf("Request(new) = %s gen %d v%d, want pending gen 1 v1", c.Status, c.Generation, c.Version)
	}
	if _, started, err := s.Request(ctx, d, []string{d}, t0); err != nil || started {
		t.Errorf("Request(pending) started = %v, %v, want false", started, err)
	}
	if err := s.SetExecution(ctx, d, 1, "arn:exec:1"); err != nil {
		t.Fatalf("SetExecution() error = %v", err)
	}
	if err := s.SetExecution(ctx, d, 2, "arn:exec:2"); !errors.Is(err, ErrStale) {
		t.Errorf("SetExecution(wrong generation) error = %v, want ErrStale", err)
	}
	if err := s.SetExecution(ctx, "missing.example", 1, "arn"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetExecution(missing) error = %v, want ErrNotFound", err)
	}
	if err := s.Quarantine(ctx, d, failure.CodeDomainRejected, "no", ""); err != nil {
		t.Fatal(err)
	}
	c, started, err := s.Request(ctx, d, []string{d, "www." + d}, t0.Add(time.Hour))
	if err != nil || !started {
		t.Fatalf("Request(quarantined) = %v, %v, want started", started, err)
	}
	if c.Status != StatusPending || c.Generation != 2 || c.QuarantineReason != "" || c.Execution != "" || len(c.SANs) != 2 {
		t.Errorf("Request(quarantined) = %+v, want pending generation 2 with failure fields cleared and new sans", c)
	}
}

func TestRequestConcurrent(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const d = "concurrent-request.example"
	mustRequest(t, s, d)
	if _, err := s.Retire(ctx, d); err != nil {
		t.Fatal(err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		started int
	)
	for range 8 {
		wg.Go(func() {
			_, st, err := s.Request(ctx, d, []string{d}, t0)
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

func TestSaveIssuedOrdering(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()

	t.Run("newer then older", func(t *testing.T) {
		const d = "stale.example"
		mustRequest(t, s, d)
		if err := s.SaveIssued(ctx, issued(d, "0b", t0.Add(time.Hour))); err != nil {
			t.Fatalf("SaveIssued(newer) error = %v", err)
		}
		if err := s.SaveIssued(ctx, issued(d, "0a", t0)); !errors.Is(err, ErrStale) {
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
		for i := range 2 {
			if err := s.SaveIssued(ctx, issued(d, "0C", t0)); err != nil {
				t.Fatalf("SaveIssued #%d error = %v", i+1, err)
			}
		}
		if c := mustGet(t, s, d); c.Version != v0+1 || c.Serial != "0c" {
			t.Errorf("version %d serial %s, want %d and 0c", c.Version, c.Serial, v0+1)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		for i := range 6 {
			d := fmt.Sprintf("race%d.example", i)
			mustRequest(t, s, d)
			older, newer := issued(d, "01", t0), issued(d, "02", t0.Add(time.Minute))
			certs := []Issued{older, newer}
			if i%2 == 1 {
				certs = []Issued{newer, older}
			}
			var wg sync.WaitGroup
			for _, c := range certs {
				wg.Go(func() {
					if err := s.SaveIssued(ctx, c); err != nil && !errors.Is(err, ErrStale) {
						t.Errorf("SaveIssued(%s) error = %v", c.Serial, err)
					}
				})
			}
			wg.Wait()
			if c := mustGet(t, s, d); c.Serial != "02" {
				t.Errorf("%s: stored serial %s, want the newer 02", d, c.Serial)
			}
		}
	})

	t.Run("retired", func(t *testing.T) {
		const d = "retired-save.example"
		mustRequest(t, s, d)
		if _, err := s.Retire(ctx, d); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveIssued(ctx, issued(d, "0d", t0)); !errors.Is(err, ErrRetired) {
			t.Errorf("SaveIssued(retired) error = %v, want ErrRetired", err)
		}
	})

	t.Run("never requested", func(t *testing.T) {
		if err := s.SaveIssued(ctx, issued("never.example", "0e", t0)); !errors.Is(err, ErrNotFound) {
			t.Errorf("SaveIssued(missing) error = %v, want ErrNotFound", err)
		}
	})
}

func TestRecordFailure(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	d := failure.Detail{Code: failure.CodeRateLimited, Message: "slow down"}

	const pending = "failing.example"
	mustRequest(t, s, pending)
	for i := 1; i <= 3; i++ {
		now := t0.Add(time.Duration(i) * time.Minute)
		count, first, err := s.RecordFailure(ctx, pending, d, now.Add(time.Hour), now)
		if err != nil || count != i || !first.Equal(t0.Add(time.Minute)) {
			t.Errorf("RecordFailure #%d = %d, %v, %v, want %d, %v", i, count, first, err, i, t0.Add(time.Minute))
		}
	}
	if c := mustGet(t, s, pending); c.Status != StatusFailed || c.LastErrorCode != failure.CodeRateLimited {
		t.Errorf("after failures status %s code %s, want failed rate_limited", c.Status, c.LastErrorCode)
	}

	const active = "renewal-failing.example"
	mustRequest(t, s, active)
	if err := s.SaveIssued(ctx, issued(active, "0f", t0)); err != nil {
		t.Fatal(err)
	}
	next := t0.Add(2 * time.Hour)
	if _, _, err := s.RecordFailure(ctx, active, d, next, t0); err != nil {
		t.Fatal(err)
	}
	c := mustGet(t, s, active)
	if c.Status != StatusActive || !c.RenewAt.Equal(next.Add(time.Hour)) || c.FailureCount != 1 {
		t.Errorf("active after failure: status %s renewAt %v count %d, want active, %v, 1", c.Status, c.RenewAt, c.FailureCount, next.Add(time.Hour))
	}
	// A new certificate clears the failure fields.
	if err := s.SaveIssued(ctx, issued(active, "10", t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if c := mustGet(t, s, active); c.FailureCount != 0 || c.LastErrorCode != "" || !c.FirstFailureAt.IsZero() {
		t.Errorf("after issuance failure fields = %d %q %v, want cleared", c.FailureCount, c.LastErrorCode, c.FirstFailureAt)
	}

	if err := s.Quarantine(ctx, pending, failure.CodeAccountPaused, "paused", "https://ca/unpause"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RecordFailure(ctx, pending, d, next, t0); !errors.Is(err, ErrQuarantined) {
		t.Errorf("RecordFailure(quarantined) error = %v, want ErrQuarantined", err)
	}
	if _, _, err := s.RecordFailure(ctx, "missing.example", d, next, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("RecordFailure(missing) error = %v, want ErrNotFound", err)
	}
}

func TestQuarantineAndRetire(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()

	const q = "quarantine.example"
	mustRequest(t, s, q)
	if err := s.SaveIssued(ctx, issued(q, "20", t0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Quarantine(ctx, q, failure.CodeAccountPaused, "paused", "https://ca/unpause"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetTimer(ctx, q); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetTimer(quarantined) error = %v, want ErrNotFound", err)
	}
	c := mustGet(t, s, q)
	if c.Status != StatusQuarantined || c.QuarantineReason != failure.CodeAccountPaused || c.UnpauseURL != "https://ca/unpause" || !c.RenewAt.IsZero() {
		t.Errorf("quarantined item = %+v", c)
	}

	const r = "retire.example"
	mustRequest(t, s, r, "www."+r)
	if err := s.SaveIssued(ctx, issued(r, "21", t0, "www."+r)); err != nil {
		t.Fatal(err)
	}
	prev, err := s.Retire(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if prev.Serial != "21" || len(prev.Key.Ciphertext) == 0 {
		t.Errorf("Retire() returned %+v, want the previous active item", prev)
	}
	c = mustGet(t, s, r)
	if c.Status != StatusRetired || len(c.Key.Wrapped) != 0 || len(c.Key.Ciphertext) != 0 || !c.RenewAt.IsZero() {
		t.Errorf("retired item = %+v, want no key material and no renewAt", c)
	}
	if _, err := s.GetTimer(ctx, r); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetTimer(retired) error = %v, want ErrNotFound", err)
	}
	if _, err := s.GetForDelivery(ctx, "www."+r); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetForDelivery(alias of retired) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Retire(ctx, r); err != nil {
		t.Errorf("Retire(retired) error = %v, want nil", err)
	}
	if err := s.Quarantine(ctx, r, "x", "y", ""); !errors.Is(err, ErrRetired) {
		t.Errorf("Quarantine(retired) error = %v, want ErrRetired", err)
	}
}

func TestGetForDelivery(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	mustRequest(t, s, "shop.delivery.example", "www.shop.delivery.example")
	if err := s.SaveIssued(ctx, issued("shop.delivery.example", "30", t0, "www.shop.delivery.example")); err != nil {
		t.Fatal(err)
	}
	mustRequest(t, s, "*.delivery.example")
	if err := s.SaveIssued(ctx, issued("*.delivery.example", "31", t0)); err != nil {
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

func TestListAndRenewalIndexes(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	var names []string
	for i := range 7 {
		d := fmt.Sprintf("list%d.example", i)
		names = append(names, d)
		mustRequest(t, s, d)
		// Half are due before t0+1h, half after.
		nb := t0.Add(time.Duration(i) * time.Minute)
		in := issued(d, fmt.Sprintf("4%d", i), nb)
		in.RenewAt = t0.Add(time.Duration(i-3) * time.Hour)
		in.NotAfter = t0.Add(time.Duration(100+i) * time.Hour)
		if err := s.SaveIssued(ctx, in); err != nil {
			t.Fatal(err)
		}
	}

	var listed []string
	cursor := ""
	for pages := 0; ; pages++ {
		certs, next, err := s.List(ctx, StatusActive, 3, cursor)
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
	if fmt.Sprint(listed) != fmt.Sprint(names) {
		t.Errorf("List(active) listed %v, want %v", listed, names)
	}
	if _, _, err := s.List(ctx, StatusActive, 3, "garbage"); !errors.Is(err, ErrBadCursor) {
		t.Errorf("List(bad cursor) error = %v, want ErrBadCursor", err)
	}

	now := t0.Add(30 * time.Minute) // list0..list3 are due
	var due []string
	for _, shard := range table.Shards() {
		cursor := ""
		for {
			rows, next, err := s.DueForRenewal(ctx, shard, now, 1, cursor)
			if err != nil {
				t.Fatalf("DueForRenewal(%s) error = %v", shard, err)
			}
			for _, r := range rows {
				if r.RenewAt.After(now) {
					t.Errorf("DueForRenewal returned %s due %v after %v", r.Domain, r.RenewAt, now)
				}
				if strings.HasPrefix(r.Domain, "list") {
					due = append(due, r.Domain)
					if r.Serial == "" || len(r.SANs) == 0 || r.NotAfter.IsZero() {
						t.Errorf("due row %+v lacks projected attributes", r)
					}
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	if len(due) != 4 {
		t.Errorf("DueForRenewal found %v, want list0..list3", due)
	}

	// Lease the renewal of one due domain: a second lease with the old time
	// loses.
	c := mustGet(t, s, "list0.example")
	if err := s.LeaseRenewal(ctx, c.Domain, c.RenewAt, now.Add(2*time.Hour)); err != nil {
		t.Fatalf("LeaseRenewal() error = %v", err)
	}
	if err := s.LeaseRenewal(ctx, c.Domain, c.RenewAt, now.Add(2*time.Hour)); !errors.Is(err, ErrStale) {
		t.Errorf("LeaseRenewal(again) error = %v, want ErrStale", err)
	}

	// ARI moves list6's renewal earlier.
	c = mustGet(t, s, "list6.example")
	if err := s.MoveTimer(ctx, c.Domain, c.Serial, t0); err != nil {
		t.Fatalf("MoveTimer() error = %v", err)
	}
	tm, err := s.GetTimer(ctx, c.Domain)
	if err != nil || !tm.RenewAt.Equal(t0) || tm.ARICertID != c.ARICertID {
		t.Errorf("timer after MoveTimer = %+v, %v", tm, err)
	}
	if err := s.MoveTimer(ctx, c.Domain, "ff", t0); !errors.Is(err, ErrStale) {
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
