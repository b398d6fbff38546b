package reconcile

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/notify"
)

const stateMachineARN = "arn:aws:states:us-east-1:123456789012:stateMachine:certflow"

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// fakeStore claims like certstore (next run, name by status) when the item
// is still as the caller saw it.
type fakeStore struct {
	cur      *certstore.Certificate
	claimErr error
	awaitErr error
	claims   int
	awaited  []string // execution names
}

func (f *fakeStore) Claim(_ context.Context, cur *certstore.Certificate, _ time.Time) (*certstore.Certificate, error) {
	if f.claimErr != nil {
		return nil, f.claimErr
	}
	f.claims++
	next := *cur
	next.Run++
	next.Execution = flow.IssueName(cur.Domain, cur.Generation, next.Run)
	if cur.Status == certstore.StatusActive {
		next.Execution = flow.RenewName(cur.Domain, cur.Serial, next.Run)
	}
	return &next, nil
}

func (f *fakeStore) Await(_ context.Context, _, execution string, _ time.Time) error {
	if f.awaitErr != nil {
		return f.awaitErr
	}
	f.awaited = append(f.awaited, execution)
	return nil
}

type fakeStarter struct {
	mu      sync.Mutex
	started map[string]flow.Input
	err     error
}

func (f *fakeStarter) Start(_ context.Context, name string, input any) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", false, f.err
	}
	if f.started == nil {
		f.started = map[string]flow.Input{}
	}
	_, already := f.started[name]
	f.started[name] = input.(flow.Input)
	return "arn:" + name, already, nil
}

// fakeExecutions answers DescribeExecution from a status per name; a name
// without one does not exist.
type fakeExecutions struct {
	status map[string]sfntypes.ExecutionStatus
	err    error
	asked  []string // ARNs
}

func (f *fakeExecutions) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	arn := aws.ToString(in.ExecutionArn)
	f.asked = append(f.asked, arn)
	if f.err != nil {
		return nil, f.err
	}
	st, ok := f.status[arn[strings.LastIndex(arn, ":")+1:]]
	if !ok {
		return nil, &sfntypes.ExecutionDoesNotExist{Message: aws.String("Execution Does Not Exist")}
	}
	return &sfn.DescribeExecutionOutput{Status: st}, nil
}

func TestReconcile(t *testing.T) {
	const d = "shop.customer.example"
	idle := &certstore.Certificate{Domain: d, SANs: []string{d, "www." + d}, Status: certstore.StatusActive, Generation: 2,
		Serial: "0abc", ARICertID: "aki.0abc"}
	owned := func(status certstore.Status, run int64) *certstore.Certificate {
		return &certstore.Certificate{Domain: d, SANs: []string{"www." + d}, Status: status, Generation: 3, Run: run,
			Execution: flow.IssueName(d, 3, run)}
	}
	boom := errors.New("throttled")
	tests := []struct {
		name        string
		cert        *certstore.Certificate
		status      sfntypes.ExecutionStatus // of the owning execution; "" = does not exist
		store       fakeStore
		describeErr error
		startErr    error
		want        Outcome
		wantErr     bool
		wantStart   string
		wantAwait   bool
	}{
		{name: "idle: the renewal starts", cert: idle, want: Started, wantStart: flow.RenewName(d, "0abc", 1)},
		{name: "running: given more time", cert: owned(certstore.StatusPending, 1), status: sfntypes.ExecutionStatusRunning,
			want: Running, wantAwait: true},
		{name: "lost by its engine: restarted", cert: owned(certstore.StatusFailed, 4), want: Restarted, wantStart: flow.IssueName(d, 3, 5)},
		{name: "postponed: the next run", cert: owned(certstore.StatusPending, 1), status: sfntypes.ExecutionStatusSucceeded,
			want: Restarted, wantStart: flow.IssueName(d, 3, 2)},
		{name: "failed anyway: the next run", cert: owned(certstore.StatusPending, 1), status: sfntypes.ExecutionStatusFailed,
			want: Restarted, wantStart: flow.IssueName(d, 3, 2)},
		{name: "timed out: the next run", cert: owned(certstore.StatusPending, 1), status: sfntypes.ExecutionStatusTimedOut,
			want: Restarted, wantStart: flow.IssueName(d, 3, 2)},
		{name: "someone else claimed first", cert: idle, store: fakeStore{claimErr: certstore.ErrStale}, want: Skipped},
		{name: "retired meanwhile", cert: owned(certstore.StatusPending, 1), store: fakeStore{claimErr: certstore.ErrRetired}, want: Skipped},
		{name: "superseded while running", cert: owned(certstore.StatusPending, 1), status: sfntypes.ExecutionStatusRunning,
			store: fakeStore{awaitErr: certstore.ErrSuperseded}, want: Skipped},
		{name: "quarantined: no work", cert: &certstore.Certificate{Domain: d, Status: certstore.StatusQuarantined}, want: Skipped},
		{name: "retired: no work", cert: &certstore.Certificate{Domain: d, Status: certstore.StatusRetired}, want: Skipped},
		{name: "describe fails: nothing done", cert: owned(certstore.StatusPending, 1), describeErr: boom, wantErr: true},
		{name: "start fails after the claim", cert: idle, startErr: boom, wantErr: true},
		{name: "store fails", cert: idle, store: fakeStore{claimErr: boom}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := &fakeExecutions{status: map[string]sfntypes.ExecutionStatus{}, err: tt.describeErr}
			if tt.status != "" {
				ex.status[tt.cert.Execution] = tt.status
			}
			st := &fakeStarter{err: tt.startErr}
			store := tt.store
			r := &Reconciler{Store: &store, Starter: st, Executions: ex, StateMachineARN: stateMachineARN, Now: func() time.Time { return now }}
			got, err := r.Reconcile(context.Background(), tt.cert, flow.StartedBySweeper)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Reconcile() error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("Reconcile() = %q, want %q", got, tt.want)
			}
			switch {
			case tt.wantStart == "" && len(st.started) != 0:
				t.Errorf("started %v, want nothing", st.started)
			case tt.wantStart != "" && len(st.started) != 1:
				t.Errorf("started %v, want %s", st.started, tt.wantStart)
			case tt.wantStart != "":
				if _, ok := st.started[tt.wantStart]; !ok {
					t.Errorf("started %v, want %s", st.started, tt.wantStart)
				}
			}
			if (len(store.awaited) == 1) != tt.wantAwait {
				t.Errorf("awaited %v, want awaited %v", store.awaited, tt.wantAwait)
			}
			for _, arn := range ex.asked {
				if want := "arn:aws:states:us-east-1:123456789012:execution:certflow:" + tt.cert.Execution; arn != want {
					t.Errorf("described %s, want %s", arn, want)
				}
			}
		})
	}
}

func TestInput(t *testing.T) {
	const d = "shop.customer.example"
	tests := []struct {
		name string
		cert certstore.Certificate
		want flow.Input
	}{
		{"a request", certstore.Certificate{Domain: d, SANs: []string{"www." + d}, Status: certstore.StatusPending, Generation: 2, Run: 1,
			Execution: flow.IssueName(d, 2, 1)},
			flow.Input{Domain: d, SANs: []string{"www." + d}, Reason: flow.ReasonRequest, Generation: 2, Execution: flow.IssueName(d, 2, 1)}},
		{"a failed request, no SANs", certstore.Certificate{Domain: d, Status: certstore.StatusFailed, Generation: 1, Run: 3,
			Execution: flow.IssueName(d, 1, 3)},
			flow.Input{Domain: d, SANs: []string{}, Reason: flow.ReasonRequest, Generation: 1, Execution: flow.IssueName(d, 1, 3)}},
		{"a renewal", certstore.Certificate{Domain: d, SANs: []string{d, "www." + d}, Status: certstore.StatusActive, Generation: 1, Run: 1,
			Serial: "0abc", ARICertID: "aki.0abc", Execution: flow.RenewName(d, "0abc", 1)},
			flow.Input{Domain: d, SANs: []string{"www." + d}, Reason: flow.ReasonRenewal, Replaces: "aki.0abc", ReplacesSerial: "0abc",
				StartedBy: flow.StartedByTimer, Generation: 1, Execution: flow.RenewName(d, "0abc", 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Input(&tt.cert, flow.StartedByTimer)
			if got.Domain != tt.want.Domain || strings.Join(got.SANs, ",") != strings.Join(tt.want.SANs, ",") || got.SANs == nil ||
				got.Reason != tt.want.Reason || got.Replaces != tt.want.Replaces || got.ReplacesSerial != tt.want.ReplacesSerial ||
				got.StartedBy != tt.want.StartedBy || got.Generation != tt.want.Generation || got.Execution != tt.want.Execution {
				t.Errorf("Input() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

type fakeOffboarder struct {
	err  error
	done []string
}

func (f *fakeOffboarder) Offboard(_ context.Context, domain string, _ time.Time) (*certstore.Certificate, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.done = append(f.done, domain)
	return &certstore.Certificate{Domain: domain, Status: certstore.StatusQuarantined, QuarantineReason: "domain_not_pointed", Serial: "0abc", Version: 4}, nil
}

type fakePublisher struct{ events []notify.Event }

func (f *fakePublisher) Publish(_ context.Context, ev notify.Event) error {
	f.events = append(f.events, ev)
	return nil
}

// TestOffboarding: the sweeper's reconciler offboards a quarantined domain
// due to be offboarded and tells the platform; one the store refuses (not
// yet, requested again) is skipped; without an offboarder nothing happens.
func TestOffboarding(t *testing.T) {
	moved := &certstore.Certificate{Domain: "moved.example", Status: certstore.StatusQuarantined, QuarantineReason: "domain_not_pointed"}
	tests := []struct {
		name       string
		off        *fakeOffboarder
		want       Outcome
		wantEvents int
	}{
		{"due", &fakeOffboarder{}, Offboarded, 1},
		{"not yet, or requested again", &fakeOffboarder{err: certstore.ErrStale}, Skipped, 0},
		{"no offboarder", nil, Skipped, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{}
			r := &Reconciler{Store: &fakeStore{}, Starter: &fakeStarter{}, Executions: &fakeExecutions{}, StateMachineARN: stateMachineARN, Publisher: pub}
			if tt.off != nil {
				r.Offboarder = tt.off
			}
			got, err := r.Reconcile(context.Background(), moved, flow.StartedBySweeper)
			if err != nil || got != tt.want {
				t.Fatalf("Reconcile() = %q, %v, want %q", got, err, tt.want)
			}
			if len(pub.events) != tt.wantEvents {
				t.Fatalf("published %+v, want %d events", pub.events, tt.wantEvents)
			}
			if tt.wantEvents == 1 && (pub.events[0].Type != notify.TypeOffboarded || pub.events[0].Domain != "moved.example" || pub.events[0].ReasonCode != "domain_not_pointed") {
				t.Errorf("event = %+v, want Domain Offboarded for moved.example", pub.events[0])
			}
		})
	}
}
