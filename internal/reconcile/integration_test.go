package reconcile_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/reconcile"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/offlinetest"
)

// testTenant holds the domains the test requests.
const testTenant = "arn:aws:iam::123456789012:role/platform-control"

// engine is a Step Functions stand-in: Start records executions by name
// (a name started twice is one execution), DescribeExecution answers
// RUNNING for those, or the status an execution ended with.
type engine struct {
	mu      sync.Mutex
	started map[string]int // starts per name
	ended   map[string]sfntypes.ExecutionStatus
	lose    bool // Start fails after nothing was started
}

func (e *engine) Start(_ context.Context, name string, _ any) (string, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lose {
		return "", false, context.DeadlineExceeded
	}
	e.started[name]++
	return "arn:" + name, e.started[name] > 1, nil
}

func (e *engine) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	arn := aws.ToString(in.ExecutionArn)
	name := arn[strings.LastIndex(arn, ":")+1:]
	if st, ok := e.ended[name]; ok {
		return &sfn.DescribeExecutionOutput{Status: st}, nil
	}
	if e.started[name] == 0 {
		return nil, &sfntypes.ExecutionDoesNotExist{}
	}
	return &sfn.DescribeExecutionOutput{Status: sfntypes.ExecutionStatusRunning}, nil
}

// TestConcurrentReconcilesStartOnce: the renewal trigger, the sweeper and a
// repeated API request reconciling one domain at the same moment, on
// DynamoDB Local, start one execution; a lost start, or an execution that
// ended without an outcome, is restarted once as the next run.
func TestConcurrentReconcilesStartOnce(t *testing.T) {
	env := offlinetest.Start(t, offline.Options{DynamoDB: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store := certstore.New(dynamodb.NewFromConfig(env.AWS), env.Tables.Certificates, certstore.WithTimerTable(env.Tables.Timers))
	eng := &engine{started: map[string]int{}, ended: map[string]sfntypes.ExecutionStatus{}}
	r := &reconcile.Reconciler{Store: store, Starter: eng, Executions: eng, StateMachineARN: "arn:aws:states:us-east-1:000000000000:stateMachine:certflow"}
	const d = "race.customer.example"

	// The request's own start is lost: the item names run 1, which never
	// ran.
	c, started, err := store.Request(ctx, certstore.RequestInput{Tenant: testTenant, Domain: d, SANs: []string{"www." + d}, Now: time.Now()})
	if err != nil || !started {
		t.Fatalf("Request() = %v, %v", started, err)
	}

	reconcileAll := func(by ...string) map[reconcile.Outcome]int {
		t.Helper()
		cur, err := store.GetConsistent(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			got = map[reconcile.Outcome]int{}
		)
		for _, who := range by {
			wg.Go(func() {
				snapshot := *cur
				out, err := r.Reconcile(ctx, &snapshot, who)
				if err != nil {
					t.Errorf("Reconcile(%s) error = %v", who, err)
				}
				mu.Lock()
				got[out]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return got
	}
	callers := []string{flow.StartedByTimer, flow.StartedBySweeper, flow.ReasonRequest, flow.StartedBySweeper, flow.StartedByTimer, flow.ReasonRequest}

	got := reconcileAll(callers...)
	run2 := flow.IssueName(d, c.Generation, 2)
	if got[reconcile.Restarted] != 1 || got[reconcile.Skipped] != len(callers)-1 || len(eng.started) != 1 || eng.started[run2] != 1 {
		t.Fatalf("first round: outcomes %v, started %v; want run 2 restarted once", got, eng.started)
	}

	// Run 2 runs: everyone finds it running.
	got = reconcileAll(callers...)
	if got[reconcile.Running] != len(callers) || len(eng.started) != 1 {
		t.Fatalf("second round: outcomes %v, started %v; want all running, nothing started", got, eng.started)
	}

	// Run 2 ends postponed (SUCCEEDED without an outcome): run 3, once.
	eng.ended[run2] = sfntypes.ExecutionStatusSucceeded
	got = reconcileAll(callers...)
	run3 := flow.IssueName(d, c.Generation, 3)
	if got[reconcile.Restarted] != 1 || len(eng.started) != 2 || eng.started[run3] != 1 {
		t.Fatalf("third round: outcomes %v, started %v; want run 3 restarted once", got, eng.started)
	}
	if cur, err := store.GetConsistent(ctx, d); err != nil || cur.Execution != run3 || cur.Run != 3 {
		t.Errorf("owner = %+v, %v; want %s", cur, err, run3)
	}
}
