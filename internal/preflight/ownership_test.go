package preflight

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
)

const ownershipZone = `
proof.customer.example.                          A     127.0.0.1
direct.customer.example.                         A     127.0.0.1
www.proof.customer.example.                      A     127.0.0.1
_certflow-challenge.proof.customer.example.      TXT   "tok-1"
_certflow-challenge.www.proof.customer.example.  TXT   "other" "tok-1"
_certflow-challenge.www.proof.customer.example.  TXT   "tok-1"
half.customer.example.                           A     127.0.0.1
www.half.customer.example.                       A     127.0.0.1
_certflow-challenge.half.customer.example.       TXT   "tok-1"
wrong.customer.example.                          A     127.0.0.1
_certflow-challenge.wrong.customer.example.      TXT   "tok-2"
delegated.customer.example.                      A     127.0.0.1
_certflow-challenge.delegated.customer.example.  CNAME delegated.proofs.platform.example.
delegated.proofs.platform.example.               TXT   "tok-1"
moved.customer.example.                          A     127.0.0.2
_certflow-challenge.moved.customer.example.      TXT   "tok-1"
`

// fakeOwners is the certificate table as preflight sees it.
type fakeOwners struct {
	mu       sync.Mutex
	items    map[string]*certstore.Certificate
	err      error // of RecordOwnership
	recorded map[string]string
}

func (f *fakeOwners) GetConsistent(_ context.Context, d string) (*certstore.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.items[d]
	if !ok {
		return nil, fmt.Errorf("get %q: %w", d, certstore.ErrNotFound)
	}
	cp := *c
	return &cp, nil
}

func (f *fakeOwners) RecordOwnership(_ context.Context, d, execution string, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.recorded[d] = execution
	return nil
}

// recordMissing is the outcome of a missing ownership record.
const recordMissing = "record missing"

func TestOwnershipProof(t *testing.T) {
	z := newZoneServer(t, true, ownershipZone, nil)
	verified := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		in        flow.Input
		item      *certstore.Certificate // nil: no item
		recordErr error
		want      string // outcome class
		wantCode  string
		recorded  bool
	}{
		{"every name proven", flow.Input{Domain: "proof.customer.example", SANs: []string{"www.proof.customer.example", "*.proof.customer.example"}},
			&certstore.Certificate{OwnershipToken: "tok-1"}, nil, ok, "", true},
		{"a SAN not proven", flow.Input{Domain: "half.customer.example", SANs: []string{"www.half.customer.example"}},
			&certstore.Certificate{OwnershipToken: "tok-1"}, nil, recordMissing, failure.CodeOwnershipMissing, false},
		{"another token", flow.Input{Domain: "wrong.customer.example"},
			&certstore.Certificate{OwnershipToken: "tok-1"}, nil, recordMissing, failure.CodeOwnershipMissing, false},
		{"no record at all", flow.Input{Domain: "direct.customer.example"},
			&certstore.Certificate{OwnershipToken: "tok-1"}, nil, recordMissing, failure.CodeOwnershipMissing, false},
		{"delegated by CNAME", flow.Input{Domain: "delegated.customer.example"},
			&certstore.Certificate{OwnershipToken: "tok-1"}, nil, ok, "", true},
		{"proven, but pointed elsewhere", flow.Input{Domain: "moved.customer.example"},
			&certstore.Certificate{OwnershipToken: "tok-1"}, nil, notPointed, "", true},
		{"proven before: not asked again", flow.Input{Domain: "wrong.customer.example"},
			&certstore.Certificate{OwnershipToken: "tok-1", OwnershipVerifiedAt: verified}, nil, ok, "", false},
		{"no proof asked for", flow.Input{Domain: "direct.customer.example"}, &certstore.Certificate{}, nil, ok, "", false},
		{"no item", flow.Input{Domain: "direct.customer.example"}, nil, nil, ok, "", false},
		{"superseded while proving", flow.Input{Domain: "proof.customer.example"},
			&certstore.Certificate{OwnershipToken: "tok-1"}, certstore.ErrSuperseded, "superseded", "", false},
		{"retired while proving", flow.Input{Domain: "proof.customer.example"},
			&certstore.Certificate{OwnershipToken: "tok-1"}, certstore.ErrRetired, "retired", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Execution = "issue-1"
			owners := &fakeOwners{items: map[string]*certstore.Certificate{}, recorded: map[string]string{}, err: tt.recordErr}
			if tt.item != nil {
				tt.item.Domain = tt.in.Domain
				owners.items[tt.in.Domain] = tt.item
			}
			c, err := New(Config{
				Resolver:      z.addr,
				EdgeAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
				Timeout:       300 * time.Millisecond,
				Names:         domain.Policy{AllowTestingTLDs: true},
				Owners:        owners,
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Handle(context.Background(), tt.in)
			got := classify(err)
			var sup *failure.SupersededError
			var ret *failure.DomainRetiredError
			var rec *failure.ValidationRecordError
			switch {
			case errors.As(err, &rec):
				got = recordMissing
			case errors.As(err, &sup):
				got = "superseded"
			case errors.As(err, &ret):
				got = "retired"
			}
			if got != tt.want {
				t.Fatalf("Handle(%+v) error = %v (%s), want %s", tt.in, err, got, tt.want)
			}
			if errors.As(err, &rec) && rec.Code != tt.wantCode {
				t.Errorf("code = %q, want %q (%v)", rec.Code, tt.wantCode, err)
			}
			if rec := owners.recorded[tt.in.Domain]; (rec != "") != tt.recorded || (rec != "" && rec != "issue-1") {
				t.Errorf("recorded = %q, want recorded %v by issue-1", rec, tt.recorded)
			}
		})
	}
}
