package certstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/certflow/certflow/internal/failure"
)

// TestTenancy: a domain belongs to the tenant that requested it. Another
// tenant can neither request it again, retire it, nor take its SANs, until
// the holder retires it; then it is anyone's.
func TestTenancy(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const d, www = "a.tenancy.example", "www.a.tenancy.example"
	asA := RequestInput{Tenant: tenantA, Domain: d, SANs: []string{www}, Now: t0}
	asB := RequestInput{Tenant: tenantB, Domain: d, Now: t0}
	c, started, err := s.Request(ctx, asA)
	if err != nil || !started || c.Tenant != tenantA {
		t.Fatalf("Request(A) = %+v, %v, %v; want started for tenant A", c, started, err)
	}
	if mustGet(t, s, d).Tenant != tenantA {
		t.Error("the stored item does not name tenant A")
	}

	var taken *NameTakenError
	if _, _, err := s.Request(ctx, asB); !errors.As(err, &taken) || taken.Name != d {
		t.Errorf("Request(B, A's pending domain) error = %v, want %q taken", err, d)
	}
	if _, _, err := s.Request(ctx, RequestInput{Tenant: tenantB, Domain: "b.tenancy.example", SANs: []string{www}, Now: t0}); !errors.As(err, &taken) || taken.Name != www {
		t.Errorf("Request(B with A's SAN) error = %v, want %q taken", err, www)
	}
	if _, err := s.Retire(ctx, tenantB, d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Retire(B, A's domain) error = %v, want ErrNotFound", err)
	}
	if got := mustGet(t, s, d); got.Status != StatusPending || got.Version != c.Version {
		t.Errorf("refused requests changed A's item: %+v", got)
	}

	// Quarantined, it is still A's.
	if err := s.Quarantine(ctx, d, c.Execution, failure.CodeDomainNotPointed, "moved", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Request(ctx, asB); !errors.As(err, &taken) {
		t.Errorf("Request(B, A's quarantined domain) error = %v, want taken", err)
	}

	// Retired by A, anyone may take it; B's generation is B's.
	if _, err := s.Retire(ctx, tenantA, d); err != nil {
		t.Fatal(err)
	}
	c, started, err = s.Request(ctx, RequestInput{Tenant: tenantB, Domain: d, SANs: []string{www}, Now: t0})
	if err != nil || !started || c.Tenant != tenantB || c.Generation != 2 {
		t.Fatalf("Request(B, retired domain) = %+v, %v, %v; want generation 2 of tenant B", c, started, err)
	}
	if _, err := s.Retire(ctx, tenantA, d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Retire(A, now B's) error = %v, want ErrNotFound", err)
	}
}

// TestWildcardCoversAnotherTenantsName: a wildcard, as the primary name or
// as a SAN, is refused while another tenant holds a name it covers (a
// certificate or an alias); the tenant's own names, other wildcards and
// retired names do not count.
func TestWildcardCoversAnotherTenantsName(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const parent = "w.tenancy.example"
	mustRequestAs(t, s, tenantA, "x."+parent)
	mustRequestAs(t, s, tenantA, "other.tenancy.example", "y."+parent)
	mustRequestAs(t, s, tenantB, "*.deeper.x."+parent) // two labels down: not covered by *.w

	for _, tc := range []struct {
		name string
		in   RequestInput
	}{
		{"as the primary name", RequestInput{Tenant: tenantB, Domain: "*." + parent, Now: t0}},
		{"as a SAN", RequestInput{Tenant: tenantB, Domain: "b.tenancy.example", SANs: []string{"*." + parent}, Now: t0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.Request(ctx, tc.in)
			var wc *WildcardConflictError
			if !errors.As(err, &wc) || wc.Wildcard != "*."+parent || !errors.Is(err, ErrWildcardConflict) {
				t.Fatalf("Request(%+v) error = %v, want *.%s refused", tc.in, err, parent)
			}
			if _, err := s.GetConsistent(ctx, tc.in.Domain); !errors.Is(err, ErrNotFound) {
				t.Errorf("a refused request wrote %s (%v)", tc.in.Domain, err)
			}
		})
	}
	// Retiring x leaves y, A's alias: still refused.
	if _, err := s.Retire(ctx, tenantA, "x."+parent); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Request(ctx, RequestInput{Tenant: tenantB, Domain: "*." + parent, Now: t0}); !errors.Is(err, ErrWildcardConflict) {
		t.Errorf("Request(B, wildcard over A's alias) error = %v, want ErrWildcardConflict", err)
	}
	// A's own wildcard is fine.
	mustRequestAs(t, s, tenantA, "*."+parent)
	if _, err := s.Retire(ctx, tenantA, "*."+parent); err != nil {
		t.Fatal(err)
	}
	// Once A retired everything below it, the wildcard is B's to take.
	if _, err := s.Retire(ctx, tenantA, "other.tenancy.example"); err != nil {
		t.Fatal(err)
	}
	mustRequestAs(t, s, tenantB, "*."+parent)
}

// TestDeliveryNeverFallsBackToAnotherTenant: a name a tenant held (its
// certificate retired, or its SAN's alias a tombstone) is not served with
// another tenant's wildcard; names no one else held are.
func TestDeliveryNeverFallsBackToAnotherTenant(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const parent = "f.tenancy.example"
	// B's wildcard first: a name below it may still be requested by A.
	mustRequestAs(t, s, tenantB, "*."+parent)
	mustIssue(t, s, "*."+parent, "b1", t0)
	mustRequestAs(t, s, tenantA, "n."+parent)
	mustIssue(t, s, "n."+parent, "a1", t0)
	mustRequestAs(t, s, tenantA, "p.tenancy.example", "s."+parent)
	mustIssue(t, s, "p.tenancy.example", "a2", t0, "s."+parent)
	mustRequestAs(t, s, tenantB, "q."+parent)
	mustIssue(t, s, "q."+parent, "b2", t0)

	serves := func(name, serial string) {
		t.Helper()
		c, err := s.GetForDelivery(ctx, name)
		switch {
		case serial == "" && !errors.Is(err, ErrNotFound):
			t.Errorf("GetForDelivery(%s) = %v, %v; want ErrNotFound", name, c, err)
		case serial != "" && (err != nil || c.Serial != serial):
			t.Errorf("GetForDelivery(%s) = %v, %v; want serial %s", name, c, err, serial)
		}
	}
	serves("n."+parent, "a1")
	serves("s."+parent, "a2")
	serves("m."+parent, "b1") // no one else ever held it
	for _, d := range []string{"n." + parent, "p.tenancy.example"} {
		if _, err := s.Retire(ctx, tenantA, d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Retire(ctx, tenantB, "q."+parent); err != nil {
		t.Fatal(err)
	}
	serves("n."+parent, "")   // A's retired certificate
	serves("s."+parent, "")   // A's retired SAN
	serves("q."+parent, "b1") // B's own retired name: B's wildcard
	serves("m."+parent, "b1")
}

// TestRequestAgainPausedAndCooldown: a domain the CA paused is requested
// again only once the operator says it was unpaused, and no domain starts
// a generation within the cooldown of the last one.
func TestRequestAgainPausedAndCooldown(t *testing.T) {
	s := newTestStore(t, WithRequestCooldown(20*time.Minute))
	ctx := context.Background()
	const d = "paused.tenancy.example"
	c := mustRequestAs(t, s, tenantA, d)
	if err := s.Quarantine(ctx, d, c.Execution, failure.CodeAccountPaused, "paused", "https://ca.example/unpause"); err != nil {
		t.Fatal(err)
	}
	later := t0.Add(time.Hour)
	if _, _, err := s.Request(ctx, RequestInput{Tenant: tenantA, Domain: d, Now: later}); !errors.Is(err, ErrPaused) {
		t.Errorf("Request(paused) error = %v, want ErrPaused", err)
	}
	c, started, err := s.Request(ctx, RequestInput{Tenant: tenantA, Domain: d, Unpaused: true, Now: later})
	if err != nil || !started {
		t.Fatalf("Request(paused, unpaused) = %v, %v; want started", started, err)
	}
	if err := s.Quarantine(ctx, d, c.Execution, failure.CodeDomainNotPointed, "moved", ""); err != nil {
		t.Fatal(err)
	}
	var cool *CooldownError
	if _, _, err := s.Request(ctx, RequestInput{Tenant: tenantA, Domain: d, Now: later.Add(5 * time.Minute)}); !errors.As(err, &cool) || !cool.Until.Equal(later.Add(20*time.Minute)) {
		t.Errorf("Request(5 min after the last) error = %v, want a cooldown until %v", err, later.Add(20*time.Minute))
	}
	if _, err := s.Retire(ctx, tenantA, d); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Request(ctx, RequestInput{Tenant: tenantB, Domain: d, Now: later.Add(10 * time.Minute)}); !errors.Is(err, ErrCooldown) {
		t.Errorf("Request(retired, within the cooldown, another tenant) error = %v, want ErrCooldown", err)
	}
	if _, started, err := s.Request(ctx, RequestInput{Tenant: tenantA, Domain: d, Now: later.Add(20 * time.Minute)}); err != nil || !started {
		t.Errorf("Request(after the cooldown) = %v, %v; want started", started, err)
	}
}

// TestOwnershipProof: a request asking for the proof gets a token; the
// owning execution records the verification; the same tenant asking again
// keeps both, a new tenant or a request without the proof does not.
func TestOwnershipProof(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const d = "proof.tenancy.example"
	c, _, err := s.Request(ctx, RequestInput{Tenant: tenantA, Domain: d, ProveOwnership: true, Now: t0})
	if err != nil || len(c.OwnershipToken) < 20 || !c.OwnershipVerifiedAt.IsZero() {
		t.Fatalf("Request(proof) = %+v, %v; want a token, not verified", c, err)
	}
	token := c.OwnershipToken
	if err := s.RecordOwnership(ctx, d, "issue-not-the-owner", t0); !errors.Is(err, ErrSuperseded) {
		t.Errorf("RecordOwnership(another execution) error = %v, want ErrSuperseded", err)
	}
	if err := s.RecordOwnership(ctx, d, c.Execution, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, d); got.OwnershipToken != token || !got.OwnershipVerifiedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("after RecordOwnership: %+v", got)
	}
	if err := s.Quarantine(ctx, d, c.Execution, failure.CodeDomainNotPointed, "moved", ""); err != nil {
		t.Fatal(err)
	}
	c, _, err = s.Request(ctx, RequestInput{Tenant: tenantA, Domain: d, ProveOwnership: true, Now: t0})
	if err != nil || c.OwnershipToken != token || c.OwnershipVerifiedAt.IsZero() || mustGet(t, s, d).OwnershipToken != token {
		t.Errorf("Request(again, same tenant) = %+v, %v; want the token and its verification kept", c, err)
	}
	if _, err := s.Retire(ctx, tenantA, d); err != nil {
		t.Fatal(err)
	}
	c, _, err = s.Request(ctx, RequestInput{Tenant: tenantB, Domain: d, ProveOwnership: true, Now: t0})
	if err != nil || c.OwnershipToken == token || c.OwnershipToken == "" || !c.OwnershipVerifiedAt.IsZero() {
		t.Errorf("Request(new tenant) = %+v, %v; want a new token, not verified", c, err)
	}
	if got := mustGet(t, s, d); got.OwnershipToken != c.OwnershipToken || !got.OwnershipVerifiedAt.IsZero() {
		t.Errorf("stored %+v, want what Request returned", got)
	}
}

func mustRequestAs(t *testing.T, s *Store, tenant, domain string, sans ...string) *Certificate {
	t.Helper()
	c, started, err := s.Request(context.Background(), RequestInput{Tenant: tenant, Domain: domain, SANs: sans, Now: t0})
	if err != nil || !started {
		t.Fatalf("Request(%s, %q) = %v, %v, want started", tenant, domain, started, err)
	}
	return c
}
