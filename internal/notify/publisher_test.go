package notify

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"

	"github.com/certflow/certflow/internal/failure"
)

type fakeEventBridge struct {
	in  *eventbridge.PutEventsInput
	out *eventbridge.PutEventsOutput
	err error
}

func (f *fakeEventBridge) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	f.in = in
	if f.out == nil && f.err == nil {
		return &eventbridge.PutEventsOutput{Entries: []types.PutEventsResultEntry{{EventId: aws.String("1")}}}, nil
	}
	return f.out, f.err
}

func TestPublishDetail(t *testing.T) {
	notAfter := time.Date(2026, 8, 1, 12, 0, 0, 0, time.FixedZone("X", 7200))
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"issued", Event{Type: TypeIssued, Domain: "a.example", Serial: "0a1b", NotAfter: notAfter},
			`{"eventId":"9d0f125674fd7698fb3e92cedf248db2","domain":"a.example","serial":"0a1b","notAfter":"2026-08-01T10:00:00Z"}`},
		{"failed", Event{Type: TypeFailed, Domain: "a.example", ReasonCode: "challenge_failed", Message: "connection refused", FailureCount: 3},
			`{"eventId":"b14292b71bf26a0f1401db0217de15d7","domain":"a.example","reasonCode":"challenge_failed","message":"connection refused","failureCount":3}`},
		{"quarantined", Event{Type: TypeQuarantined, Domain: "a.example", ReasonCode: "account_paused", UnpauseURL: "https://ca.example/unpause"},
			`{"eventId":"eddf8a1143ade698c2c026fb05e960aa","domain":"a.example","reasonCode":"account_paused","unpauseURL":"https://ca.example/unpause"}`},
		{"retired", Event{Type: TypeRetired, Domain: "a.example", Serial: "0a1b", Version: 7},
			`{"eventId":"` + Event{Type: TypeRetired, Domain: "a.example", Serial: "0a1b", Version: 7}.ID() + `","domain":"a.example","serial":"0a1b","version":7}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeEventBridge{}
			if err := New(f, "certflow-bus", Source).Publish(context.Background(), tt.ev); err != nil {
				t.Fatalf("Publish() error: %v", err)
			}
			if len(f.in.Entries) != 1 {
				t.Fatalf("PutEvents got %d entries, want 1", len(f.in.Entries))
			}
			e := f.in.Entries[0]
			if got := aws.ToString(e.Detail); got != tt.want {
				t.Errorf("Detail = %s, want %s", got, tt.want)
			}
			if aws.ToString(e.DetailType) != tt.ev.Type || aws.ToString(e.Source) != Source || aws.ToString(e.EventBusName) != "certflow-bus" {
				t.Errorf("entry = type %q source %q bus %q, want %q certflow certflow-bus",
					aws.ToString(e.DetailType), aws.ToString(e.Source), aws.ToString(e.EventBusName), tt.ev.Type)
			}
		})
	}
}

// TestEventID: copies of one event (a step retried after a timeout) share
// an ID, so consumers can drop duplicates; different events do not.
func TestEventID(t *testing.T) {
	base := Event{Type: TypeIssued, Domain: "a.example", Serial: "0a1b", Version: 3}
	same := base
	same.NotAfter = time.Now() // not part of the identity
	if base.ID() != same.ID() {
		t.Errorf("copies of one event have IDs %s and %s", base.ID(), same.ID())
	}
	for _, other := range []Event{
		{Type: TypeRenewed, Domain: "a.example", Serial: "0a1b", Version: 3},
		{Type: TypeIssued, Domain: "b.example", Serial: "0a1b", Version: 3},
		{Type: TypeIssued, Domain: "a.example", Serial: "0a1c", Version: 3},
		{Type: TypeIssued, Domain: "a.example", Serial: "0a1b", Version: 4},
	} {
		if other.ID() == base.ID() {
			t.Errorf("%+v has the ID of %+v", other, base)
		}
	}
	if len(base.ID()) != 32 {
		t.Errorf("ID() = %q, want 32 hex digits", base.ID())
	}
}

func TestPublishErrors(t *testing.T) {
	rejected := func(code string) *eventbridge.PutEventsOutput {
		return &eventbridge.PutEventsOutput{FailedEntryCount: 1, Entries: []types.PutEventsResultEntry{{ErrorCode: aws.String(code), ErrorMessage: aws.String("no")}}}
	}
	tests := []struct {
		name      string
		client    *fakeEventBridge
		ev        Event
		transient bool
	}{
		{"entry rejected", &fakeEventBridge{out: rejected("AccessDeniedException")}, Event{Type: TypeIssued, Domain: "a.example"}, false},
		{"entry throttled", &fakeEventBridge{out: rejected("ThrottlingException")}, Event{Type: TypeIssued, Domain: "a.example"}, true},
		{"call throttled", &fakeEventBridge{err: &smithy.GenericAPIError{Code: "ThrottlingException"}}, Event{Type: TypeIssued, Domain: "a.example"}, true},
		{"call denied", &fakeEventBridge{err: &smithy.GenericAPIError{Code: "AccessDeniedException"}}, Event{Type: TypeIssued, Domain: "a.example"}, false},
		{"no type", &fakeEventBridge{}, Event{Domain: "a.example"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(tt.client, "", Source).Publish(context.Background(), tt.ev)
			if err == nil {
				t.Fatal("Publish() = nil, want an error")
			}
			var te *failure.TransientError
			if errors.As(err, &te) != tt.transient {
				t.Errorf("Publish() error = %v, want transient %v", err, tt.transient)
			}
		})
	}
}

func TestDetailRoundTrip(t *testing.T) {
	f := &fakeEventBridge{}
	if err := New(f, "", Source).Publish(context.Background(), Event{Type: TypeRenewed, Domain: "a.example", Serial: "ff"}); err != nil {
		t.Fatal(err)
	}
	if f.in.Entries[0].EventBusName != nil {
		t.Errorf("EventBusName = %q, want unset for the default bus", aws.ToString(f.in.Entries[0].EventBusName))
	}
	var d Detail
	if err := json.Unmarshal([]byte(aws.ToString(f.in.Entries[0].Detail)), &d); err != nil || d.Serial != "ff" {
		t.Errorf("detail = %+v (%v), want serial ff", d, err)
	}
}
