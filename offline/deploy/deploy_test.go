package deploy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/certflow/certflow/certclient"
	"github.com/certflow/certflow/internal/execution"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/renewal"
	"github.com/certflow/certflow/internal/table"
	"github.com/certflow/certflow/offline/capacity"
	"github.com/certflow/certflow/offline/offlinetest"
	"github.com/certflow/certflow/offline/template"
)

type doc struct {
	Domain   string `json:"domain"`
	Status   string `json:"status"`
	Serial   string `json:"serial"`
	NotAfter string `json:"notAfter"`
	RenewAt  string `json:"renewAt"`
}

// TestRenewalEndToEnd runs the real system offline: a certificate is issued
// through the API; DynamoDB Local's TTL deletes its timer; the stream runner
// (with the template's filter) triggers the real handler; the state machine
// renews with ARI replaces; a newer certificate is stored. The TTL record is
// delivered a second time and still one execution runs. A timer deleted by
// the platform renews nothing until the sweeper catches it once overdue. An
// ARI window that Pebble moves earlier moves the timer, which then renews.
// The DynamoDB capacity of one renewal is measured on the way.
func TestRenewalEndToEnd(t *testing.T) {
	offlinetest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const grace = 3 * time.Second
	var meter capacity.Meter
	var delivered recorder
	sys, err := Start(ctx, quiet(t, Config{
		OnStreamBatch:       delivered.add,
		CertificateValidity: time.Minute,
		WaitOverride:        100 * time.Millisecond,
		DueGrace:            grace, // and no scheduled sweeps: the test runs the sweeper itself
		ConfigureAWS:        meter.Add,
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	cfg := sys.Stack.AWS
	db := dynamodb.NewFromConfig(cfg) // not metered: the test's own reads
	sfnClient := sfn.NewFromConfig(cfg)

	const name, lost, ariName = "renew.customer.example", "lost.customer.example", "ari.customer.example"
	post(ctx, t, sys.APIURL, name)
	post(ctx, t, sys.APIURL, lost)
	first := waitFor(ctx, t, sys.APIURL, name, func(d doc) bool { return d.Status == "active" })
	// A timer deleted by the platform renews nothing. The renewal time is
	// drawn in Pebble's window, which for a one-minute certificate starts
	// at issuance: if the TTL deleted the timer first, that certificate
	// renews by its timer; delete its successor's timer instead.
	lostFirst := waitFor(ctx, t, sys.APIURL, lost, func(d doc) bool { return d.Status == "active" })
	for !deleteTimer(ctx, t, db, sys.TimerTable, lostFirst) {
		prev := lostFirst.Serial
		lostFirst = waitFor(ctx, t, sys.APIURL, lost, func(d doc) bool { return d.Status == "active" && d.Serial != prev })
	}
	t.Logf("issued serial %s, renewal at %s, not after %s", first.Serial, first.RenewAt, first.NotAfter)
	meter.Reset()
	metered := time.Now()

	want := flow.RenewName(name, first.Serial, 1)
	second := waitForStored(ctx, t, db, sys.Table, name, first.Serial)
	renewStarted := waitSucceeded(ctx, t, sfnClient, want)
	if second.NotAfter <= first.NotAfter {
		t.Errorf("renewed not-after %s is not later than %s", second.NotAfter, first.NotAfter)
	}
	t.Logf("renewed by TTL: serial %s -> %s", first.Serial, second.Serial)
	if usage := meter.Usage(); renewStarted.After(metered) {
		total := capacity.Total(usage)
		t.Logf("DynamoDB capacity of one renewal (all functions; %d calls, %.1f RRU, %.1f WRU):\n%s", total.Calls, total.Read, total.Write, capacity.Format(usage))
	} else {
		t.Logf("DynamoDB capacity not measured: the renewal started before the meter was reset")
	}
	if by := startedBy(ctx, t, sfnClient, sys.StateMachineARN, name); len(by) != 1 || by[want] != flow.StartedByTimer {
		t.Errorf("renewal executions of %s = %v, want only %s started by the timer", name, by, want)
	}

	// Deliver the same TTL REMOVE record again: the derived execution name
	// makes it a no-op.
	record, ok := delivered.timerRemoval(name, first.Serial)
	if !ok {
		t.Fatalf("the stream runner delivered no TTL removal of %s's timer", name)
	}
	var resp events.DynamoDBEventResponse
	if err := invokeJSON(ctx, sys.handlers[renewalTriggerID], events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{record}}, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("redelivery reported failures: %+v", resp.BatchItemFailures)
	}
	if by := startedBy(ctx, t, sfnClient, sys.StateMachineARN, name); len(by) != 1 {
		t.Errorf("redelivered record started another execution: %v", by)
	}

	// The lost timer: nothing renews it past its renewal time ...
	lostAt := parseTime(t, lostFirst.RenewAt)
	time.Sleep(time.Until(lostAt) + grace + 2*time.Second)
	if d := get(ctx, t, sys.APIURL, lost); d.Serial != lostFirst.Serial {
		t.Fatalf("a timer deleted by the platform renewed %s (serial %s -> %s)", lost, lostFirst.Serial, d.Serial)
	}
	// ... until the sweeper finds the overdue renewal on the ByRenewal index.
	if sum := sweep(ctx, t, sys, `{}`); sum.Started < 1 {
		t.Fatalf("sweeper started nothing: %+v", sum)
	}
	waitFor(ctx, t, sys.APIURL, lost, func(d doc) bool { return d.Status == "active" && d.Serial != lostFirst.Serial })
	if by := startedBy(ctx, t, sfnClient, sys.StateMachineARN, lost); by[flow.RenewName(lost, lostFirst.Serial, 1)] != flow.StartedBySweeper {
		t.Errorf("renewal executions of %s = %v, want the lost timer's renewal started by the sweeper", lost, by)
	}

	t.Run("ARI window moved earlier moves the timer", func(t *testing.T) {
		post(ctx, t, sys.APIURL, ariName)
		issued := waitFor(ctx, t, sys.APIURL, ariName, func(d doc) bool { return d.Status == "active" })
		// Pebble's window for a one-minute certificate is its whole
		// lifetime, so the drawn renewal time can be too close to move
		// earlier. Then let that certificate renew and try its successor.
		for !parseTime(t, issued.RenewAt).After(time.Now().Add(10 * time.Second)) {
			t.Logf("renewal at %s is too soon to move earlier; waiting for the next certificate", issued.RenewAt)
			prev := issued.Serial
			issued = waitFor(ctx, t, sys.APIURL, ariName, func(d doc) bool { return d.Status == "active" && d.Serial != prev })
		}
		start := time.Now().Add(4 * time.Second).Truncate(time.Second)
		if err := sys.Stack.SetPebbleRenewalInfo(ctx, leafPEM(ctx, t, sys.APIURL, ariName), start, start.Add(2*time.Second)); err != nil {
			t.Fatal(err)
		}
		sum := sweep(ctx, t, sys, `{"ariShard": "`+table.ShardOf(ariName)+`"}`)
		moved := get(ctx, t, sys.APIURL, ariName)
		at := parseTime(t, moved.RenewAt)
		if sum.Moved < 1 || at.Before(start) || at.After(start.Add(2*time.Second)) {
			t.Fatalf("after the sweep %+v renewAt is %s, want inside the new window [%s, +2s]", sum, moved.RenewAt, start.Format(time.RFC3339))
		}
		if tm, ok := timerItemIfAny(ctx, t, db, sys.TimerTable, ariName); ok && tm["renewAt"].(*ddbtypes.AttributeValueMemberS).Value != moved.RenewAt {
			t.Errorf("timer renewAt = %v, want %s", tm["renewAt"], moved.RenewAt)
		}
		// The moved timer expires and renews, long before the old time.
		renewed := waitFor(ctx, t, sys.APIURL, ariName, func(d doc) bool { return d.Serial != issued.Serial && d.Status == "active" })
		if by := startedBy(ctx, t, sfnClient, sys.StateMachineARN, ariName); by[flow.RenewName(ariName, issued.Serial, 1)] != flow.StartedByTimer {
			t.Errorf("renewal executions of %s: %v, want one started by the moved timer", ariName, by)
		}
		t.Logf("ARI: renewal moved from %s to %s, renewed to serial %s", issued.RenewAt, moved.RenewAt, renewed.Serial)
	})
}

func timerKey(name string) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "DOMAIN#" + name}, "sk": &ddbtypes.AttributeValueMemberS{Value: "TIMER"}}
}

// waitForStored polls the certificate item (not the API, whose reads
// would be metered) until its serial is no longer old.
func waitForStored(ctx context.Context, t *testing.T, db *dynamodb.Client, table, name, old string) doc {
	t.Helper()
	key := timerKey(name)
	key["sk"] = &ddbtypes.AttributeValueMemberS{Value: "CERT"}
	for {
		out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		str := func(k string) string {
			if v, ok := out.Item[k].(*ddbtypes.AttributeValueMemberS); ok {
				return v.Value
			}
			return ""
		}
		if d := (doc{Status: str("status"), Serial: str("serial"), NotAfter: str("notAfter"), RenewAt: str("renewAt")}); d.Serial != old && d.Status == "active" {
			return d
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s was not renewed", name)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitSucceeded waits until the execution called name has succeeded and
// returns when it started.
func waitSucceeded(ctx context.Context, t *testing.T, c *sfn.Client, name string) time.Time {
	t.Helper()
	arn, err := execution.ExecutionARN(template.StateMachineARN(StateMachine), name)
	if err != nil {
		t.Fatal(err)
	}
	for {
		out, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err == nil && out.Status == sfntypes.ExecutionStatusSucceeded {
			return aws.ToTime(out.StartDate)
		}
		if err == nil && out.Status != sfntypes.ExecutionStatusRunning {
			t.Fatalf("execution %s ended %s", name, out.Status)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("execution %s did not succeed: %v", name, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func timerItemIfAny(ctx context.Context, t *testing.T, db *dynamodb.Client, table, name string) (map[string]ddbtypes.AttributeValue, bool) {
	t.Helper()
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(table), ConsistentRead: aws.Bool(true), Key: timerKey(name),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item, out.Item != nil
}

// leafPEM fetches name's certificate from the delivery endpoint.
func leafPEM(ctx context.Context, t *testing.T, api, name string) string {
	t.Helper()
	c, err := certclient.New(certclient.Config{BaseURL: api, AllowInsecureHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}))
}

func sweep(ctx context.Context, t *testing.T, sys *Deployment, detail string) renewal.Summary {
	t.Helper()
	var sum renewal.Summary
	ev := events.EventBridgeEvent{DetailType: "Scheduled Event", Source: "aws.events", Time: time.Now().UTC(), Detail: json.RawMessage(detail)}
	if err := invokeJSON(ctx, sys.handlers[sweeperID], ev, &sum); err != nil {
		t.Fatal(err)
	}
	return sum
}

// startedBy maps the names of domain's renewal executions to what started
// them (the input's startedBy).
func startedBy(ctx context.Context, t *testing.T, c *sfn.Client, arn, domain string) map[string]string {
	t.Helper()
	out, err := c.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(arn), MaxResults: 1000})
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]string{}
	for _, e := range out.Executions {
		if !strings.HasPrefix(aws.ToString(e.Name), "renew-") {
			continue
		}
		d, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: e.ExecutionArn})
		if err != nil {
			t.Fatal(err)
		}
		var in flow.Input
		if err := json.Unmarshal([]byte(aws.ToString(d.Input)), &in); err != nil {
			t.Fatal(err)
		}
		if in.Domain == domain {
			by[aws.ToString(e.Name)] = in.StartedBy
		}
	}
	return by
}

// recorder keeps every record the stream runner delivered.
type recorder struct {
	mu      sync.Mutex
	records []events.DynamoDBEventRecord
}

func (r *recorder) add(ev events.DynamoDBEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, ev.Records...)
}

// timerRemoval returns the delivered TTL deletion of domain's timer for the
// certificate serial.
func (r *recorder) timerRemoval(domain, serial string) (events.DynamoDBEventRecord, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.records {
		old := rec.Change.OldImage
		if rec.EventName == "REMOVE" && old["domain"].String() == domain && old["serial"].String() == serial {
			return rec, true
		}
	}
	return events.DynamoDBEventRecord{}, false
}

// deleteTimer deletes the timer of d's certificate as the platform would,
// and reports false if the TTL deleted it first.
func deleteTimer(ctx context.Context, t *testing.T, db *dynamodb.Client, table string, d doc) bool {
	t.Helper()
	_, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(table), Key: timerKey(d.Domain),
		ConditionExpression:       aws.String("serial = :s"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":s": &ddbtypes.AttributeValueMemberS{Value: d.Serial}},
	})
	var failed *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func post(ctx context.Context, t *testing.T, api, name string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, api+"/certificates", bytes.NewReader([]byte(fmt.Sprintf(`{"domain": %q}`, name))))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /certificates: %s", resp.Status)
	}
}

func get(ctx context.Context, t *testing.T, api, name string) doc {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"/certificates/"+name, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d doc
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

func waitFor(ctx context.Context, t *testing.T, api, name string, ok func(doc) bool) doc {
	t.Helper()
	for {
		d := get(ctx, t, api, name)
		if ok(d) {
			return d
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: condition not reached, last %+v", name, d)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
