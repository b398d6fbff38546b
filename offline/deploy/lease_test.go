package deploy

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/execution"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/offline/caproxy"
	"github.com/certflow/certflow/offline/offlinetest"
)

// TestLeaseOutlivesItsExecution stops an execution while its Issue step
// waits inside newOrder (the CA frozen), as an operator's StopExecution, a
// lost engine or an execution timeout would. The re-POST starts the next
// run at once; its Issue does nothing while the first invocation holds the
// domain's lease (issue_in_progress). Once the CA answers, the first
// invocation stores the order it placed and ends (its next write as the
// owner is refused), and the next run resumes the order: the CA sees one
// order for the certificate, and its challenges are solved by one
// invocation at a time.
func TestLeaseOutlivesItsExecution(t *testing.T) {
	offlinetest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const grace = 20 * time.Second
	cfg := logged(t, "lease", Config{
		CAProxy:             true,
		CertificateValidity: time.Hour,
		WaitOverride:        100 * time.Millisecond,
		DueGrace:            grace,
		SweepEvery:          5 * time.Second,
		Metrics:             io.Discard,
	})
	sys, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	store := certstore.New(dynamodb.NewFromConfig(sys.Stack.AWS), sys.Table, certstore.WithTimerTable(sys.TimerTable), certstore.WithGrace(grace))
	engine := sfn.NewFromConfig(sys.Stack.AWS)

	// A first certificate, so the ACME account and directory are known
	// and the target's first request to the CA is its newOrder.
	const warm, d = "warm.customer.example", "placed.customer.example"
	post(ctx, t, sys.APIURL, warm)
	waitFor(ctx, t, sys.APIURL, warm, func(x doc) bool { return x.Status == "active" })

	p := sys.CAProxy
	p.Freeze(25 * time.Second) // under the ACME client's 30 s per request
	post(ctx, t, sys.APIURL, d)
	for !heldNewOrder(p) {
		select {
		case <-ctx.Done():
			t.Fatal("no newOrder reached the frozen CA")
		case <-time.After(100 * time.Millisecond):
		}
	}
	first := waitItem(ctx, t, store, d, func(*certstore.Certificate) bool { return true })
	arn, err := execution.ExecutionARN(sys.StateMachineARN, first.Execution)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: aws.String(arn), Error: aws.String("Operator")}); err != nil {
		t.Fatal(err)
	}
	post(ctx, t, sys.APIURL, d) // the execution ended without an outcome: a new run
	next := waitItem(ctx, t, store, d, func(c *certstore.Certificate) bool {
		return c.Execution != first.Execution && c.LastErrorCode == failure.CodeIssueInProgress
	})
	t.Logf("%s stopped inside newOrder; %s waits: %s", first.Execution, next.Execution, next.LastErrorMessage)
	p.Thaw()

	done := waitFor(ctx, t, sys.APIURL, d, func(x doc) bool { return x.Status == "active" })
	var orders []caproxy.Order
	for _, o := range p.Orders() {
		if len(o.Identifiers) == 1 && o.Identifiers[0] == d {
			orders = append(orders, o)
		}
	}
	if n := ordersFor(sys, d); n != 1 || len(orders) != 1 {
		t.Fatalf("the CA saw %d newOrder requests and created %d orders for %s, want the one order resumed", n, len(orders), d)
	}
	t.Logf("%s issued (serial %s) from the one order %s", d, done.Serial, orders[0].URL)
}

// heldNewOrder reports whether a newOrder request is held by the frozen
// proxy.
func heldNewOrder(p *caproxy.Proxy) bool {
	for _, in := range p.Injections() {
		if in.Op == caproxy.OpNewOrder && in.Kind == caproxy.Freeze {
			return true
		}
	}
	return false
}
