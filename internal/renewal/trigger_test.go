package renewal

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/flow"

	"github.com/certflow/certflow/internal/fixtures"
)

// Values of events/renewal-trigger.json.
const (
	fixtureDomain = "shop.example.com"
	fixtureSerial = "04f3a9c1d2e5b6a7980112233445566778ab"
	fixtureARI    = "nytfzzwhRKxfihuLvDwv1qW3PhQ.BPOpwdLltqeYARIjNEVWZ3ir"
	fixtureSeq    = "4421584500000000017450439091"
)

var fixtureRenewAt = time.Date(2026, 4, 1, 11, 20, 0, 0, time.UTC)

func loadEvent(t *testing.T, name string) events.DynamoDBEvent {
	t.Helper()
	return fixtures.Event[events.DynamoDBEvent](t, name)
}

func activeCert() *certstore.Certificate {
	return &certstore.Certificate{Domain: fixtureDomain, SANs: []string{fixtureDomain, "www.shop.example.com"},
		Status: certstore.StatusActive, Serial: fixtureSerial, ARICertID: fixtureARI, RenewAt: fixtureRenewAt}
}

func TestFixtureShape(t *testing.T) {
	ev := loadEvent(t, "renewal-trigger.json")
	if len(ev.Records) != 1 {
		t.Fatalf("renewal-trigger.json has %d records, want 1", len(ev.Records))
	}
	r := ev.Records[0]
	if r.EventName != "REMOVE" || r.EventSource != "aws:dynamodb" || r.Change.StreamViewType != "OLD_IMAGE" ||
		r.UserIdentity == nil || r.Change.SequenceNumber != fixtureSeq || r.Change.ApproximateCreationDateTime.IsZero() {
		t.Fatalf("renewal-trigger.json record = %+v, want a TTL REMOVE", r)
	}
	if !IsTTLTimerRemoval(&r) {
		t.Errorf("IsTTLTimerRemoval(renewal-trigger.json) = false, want true")
	}
	u := loadEvent(t, "renewal-trigger-user-delete.json").Records[0]
	if IsTTLTimerRemoval(&u) || u.UserIdentity != nil {
		t.Errorf("IsTTLTimerRemoval(renewal-trigger-user-delete.json) = true, want false")
	}
	// Round trip: the fixture is what aws-lambda-go marshals.
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var again events.DynamoDBEvent
	if err := json.Unmarshal(b, &again); err != nil || again.Records[0].Change.OldImage["renewAt"].String() != "2026-04-01T11:20:00Z" {
		t.Errorf("round trip of renewal-trigger.json lost data: %v", err)
	}
}

func TestTriggerHandle(t *testing.T) {
	boom := errors.New("boom")
	with := func(edit func(*certstore.Certificate)) *certstore.Certificate {
		c := activeCert()
		edit(c)
		return c
	}
	tests := []struct {
		name          string
		fixture       string
		edit          func(*events.DynamoDBEventRecord)
		cert          *certstore.Certificate // nil: missing
		getErr        error
		reconcileErr  error
		wantReconcile bool
		wantARI       string // the ARI cert ID the reconciler gets
		wantFailure   bool
	}{
		{name: "TTL removal of the current certificate's timer", fixture: "renewal-trigger.json", cert: activeCert(), wantReconcile: true, wantARI: fixtureARI},
		{name: "removal by a user is skipped", fixture: "renewal-trigger-user-delete.json", cert: activeCert()},
		{name: "removal by another principal is skipped", fixture: "renewal-trigger.json", cert: activeCert(), edit: func(r *events.DynamoDBEventRecord) {
			r.UserIdentity.PrincipalID = "lambda.amazonaws.com"
		}},
		{name: "modify is skipped", fixture: "renewal-trigger.json", cert: activeCert(), edit: func(r *events.DynamoDBEventRecord) { r.EventName = "MODIFY" }},
		{name: "TTL removal of another item is skipped", fixture: "renewal-trigger.json", cert: activeCert(), edit: func(r *events.DynamoDBEventRecord) {
			r.Change.Keys["sk"] = events.NewStringAttribute("HTTP01")
		}},
		{name: "missing certificate", fixture: "renewal-trigger.json"},
		{name: "retired", fixture: "renewal-trigger.json", cert: with(func(c *certstore.Certificate) { c.Status = certstore.StatusRetired })},
		{name: "quarantined", fixture: "renewal-trigger.json", cert: with(func(c *certstore.Certificate) { c.Status = certstore.StatusQuarantined })},
		{name: "already renewed", fixture: "renewal-trigger.json", cert: with(func(c *certstore.Certificate) { c.Serial = "0badc0ffee" })},
		{name: "a duplicate record, or the sweeper was first", fixture: "renewal-trigger.json", cert: with(func(c *certstore.Certificate) {
			c.Execution, c.Run = flow.RenewName(fixtureDomain, fixtureSerial, 1), 1
		})},
		{name: "serial in upper case still matches", fixture: "renewal-trigger.json", cert: with(func(c *certstore.Certificate) {
			c.Serial = "04F3A9C1D2E5B6A7980112233445566778AB"
		}), wantReconcile: true, wantARI: fixtureARI},
		{name: "the timer's ARI cert ID when the item has none", fixture: "renewal-trigger.json", cert: with(func(c *certstore.Certificate) { c.ARICertID = "" }),
			wantReconcile: true, wantARI: fixtureARI},
		{name: "unreadable image is skipped", fixture: "renewal-trigger.json", cert: activeCert(), edit: func(r *events.DynamoDBEventRecord) {
			delete(r.Change.OldImage, "renewAt")
		}},
		{name: "read failure is retried", fixture: "renewal-trigger.json", getErr: boom, wantFailure: true},
		{name: "start failure is retried", fixture: "renewal-trigger.json", cert: activeCert(), reconcileErr: boom, wantFailure: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := loadEvent(t, tt.fixture)
			if tt.edit != nil {
				tt.edit(&ev.Records[0])
			}
			g := &fakeGetter{certs: map[string]*certstore.Certificate{}, err: tt.getErr}
			if tt.cert != nil {
				g.certs[fixtureDomain] = tt.cert
			}
			rec := &fakeReconciler{fail: map[string]error{fixtureDomain: tt.reconcileErr}}
			tr := &Trigger{Certificates: g, Reconciler: rec}
			resp, err := tr.Handle(context.Background(), ev)
			if err != nil {
				t.Fatalf("Handle() error = %v, want nil", err)
			}
			if got := len(rec.calls) == 1; got != tt.wantReconcile {
				t.Fatalf("Handle() reconciled %v, want reconciled = %v", rec.calls, tt.wantReconcile)
			}
			if tt.wantReconcile {
				c := rec.calls[0]
				if c.By != flow.StartedByTimer || c.Cert.Domain != fixtureDomain || c.Cert.ARICertID != tt.wantARI || c.Cert.Status != certstore.StatusActive {
					t.Errorf("reconciled %+v by %q, want the active certificate with ARI cert ID %q, by %q", c.Cert, c.By, tt.wantARI, flow.StartedByTimer)
				}
			}
			var wantFailures []events.DynamoDBBatchItemFailure
			if tt.wantFailure {
				wantFailures = []events.DynamoDBBatchItemFailure{{ItemIdentifier: fixtureSeq}}
			}
			if !slices.Equal(resp.BatchItemFailures, wantFailures) {
				t.Errorf("BatchItemFailures = %v, want %v", resp.BatchItemFailures, wantFailures)
			}
		})
	}
}

func TestTriggerBatchReportsOnlyFailedRecords(t *testing.T) {
	base := loadEvent(t, "renewal-trigger.json").Records[0]
	var ev events.DynamoDBEvent
	domains := []string{"a.example", "b.example", "c.example"}
	g := &fakeGetter{certs: map[string]*certstore.Certificate{}}
	for i, d := range domains {
		b, _ := json.Marshal(base)
		var r events.DynamoDBEventRecord
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		r.Change.SequenceNumber = fixtureSeq[:len(fixtureSeq)-1] + string(rune('1'+i))
		r.Change.Keys["pk"] = events.NewStringAttribute("DOMAIN#" + d)
		r.Change.OldImage["pk"] = events.NewStringAttribute("DOMAIN#" + d)
		r.Change.OldImage["domain"] = events.NewStringAttribute(d)
		ev.Records = append(ev.Records, r)
		c := activeCert()
		c.Domain = d
		g.certs[d] = c
	}
	st := &fakeReconciler{fail: map[string]error{"b.example": errors.New("throttled")}}
	tr := &Trigger{Certificates: g, Reconciler: st}
	resp, err := tr.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	want := []events.DynamoDBBatchItemFailure{{ItemIdentifier: ev.Records[1].Change.SequenceNumber}}
	if !slices.Equal(resp.BatchItemFailures, want) {
		t.Errorf("BatchItemFailures = %v, want %v", resp.BatchItemFailures, want)
	}
	if len(st.calls) != 2 {
		t.Errorf("started %d renewals, want 2 (a and c)", len(st.calls))
	}
}
