package budget

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/fixtures"
	"github.com/certflow/certflow/internal/flow"
)

type fakeReserver struct {
	r   Reservation
	err error
}

func (f fakeReserver) Reserve(context.Context) (Reservation, error) { return f.r, f.err }

type fakeAwaiter struct {
	until time.Time
	err   error
}

func (f *fakeAwaiter) Await(_ context.Context, _, _ string, until time.Time) error {
	f.until = until
	return f.err
}

func TestStep(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	paris := time.FixedZone("CET", 3600)
	in := flow.Input{Domain: "x.example", Execution: "issue-x"}
	tests := []struct {
		name     string
		reserver fakeReserver
		awaitErr error
		in       flow.Input
		want     string
		wantType string
	}{
		{"whole second", fakeReserver{r: Reservation{Seq: 7, At: t0}}, nil, in, `{"seq":7,"at":"2026-03-01T12:00:00Z","ca":"primary"}`, ""},
		{"rounds up", fakeReserver{r: Reservation{Seq: 8, At: t0.Add(time.Millisecond)}}, nil, in, `{"seq":8,"at":"2026-03-01T12:00:01Z","ca":"primary"}`, ""},
		{"in UTC", fakeReserver{r: Reservation{Seq: 9, At: t0.In(paris)}}, nil, in, `{"seq":9,"at":"2026-03-01T12:00:00Z","ca":"primary"}`, ""},
		{"budget unavailable", fakeReserver{err: errors.New("throttled")}, nil, in, "", "TransientError"},
		{"superseded", fakeReserver{r: Reservation{Seq: 1, At: t0}}, certstore.ErrSuperseded, in, "", "SupersededError"},
		{"retired", fakeReserver{r: Reservation{Seq: 1, At: t0}}, certstore.ErrRetired, in, "", "DomainRetiredError"},
		{"no execution", fakeReserver{r: Reservation{Seq: 1, At: t0}}, nil, flow.Input{Domain: "x.example"}, "", "InvalidInputError"},
		{"a CA without a budget", fakeReserver{r: Reservation{Seq: 1, At: t0}}, nil, flow.Input{Domain: "x.example", Execution: "issue-1", CA: flow.CAFallback}, "", "InvalidInputError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &fakeAwaiter{err: tt.awaitErr}
			res, err := NewStep(map[string]Reserver{flow.CAPrimary: tt.reserver}, a).Handle(context.Background(), tt.in)
			if tt.wantType != "" {
				f, ok := failure.Find(err)
				if !ok || failure.TypeName(f) != tt.wantType {
					t.Fatalf("Handle() error = %v, want %s", err, tt.wantType)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(res)
			if string(got) != tt.want {
				t.Errorf("Handle() = %s, want %s", got, tt.want)
			}
			if !a.until.Equal(res.At) {
				t.Errorf("the domain awaits until %v, want the slot %v", a.until, res.At)
			}
		})
	}
}

// TestStepFixture reads events/order-budget.json, the input sam local
// invoke sends.
func TestStepFixture(t *testing.T) {
	in := fixtures.StrictEvent[flow.Input](t, "order-budget.json")
	if in.Domain == "" || in.Execution == "" {
		t.Errorf("fixture = %+v, want domain and execution", in)
	}
}
