package system

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
)

type doc struct {
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
// the platform renews nothing, and the sweeper catches it once overdue.
func TestRenewalEndToEnd(t *testing.T) {
	if testing.Short() || os.Getenv("CERTFLOW_E2E") == "" {
		t.Skip("offline end-to-end renewal test: set CERTFLOW_E2E=1 (make demo covers the same path in CI)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	sys, err := Start(ctx, Config{
		CertificateValidity: time.Minute,
		WaitOverride:        100 * time.Millisecond,
		Setenv:              func(k, v string) error { t.Setenv(k, v); return nil },
		FunctionLogger:      slog.New(slog.DiscardHandler),
		Logs:                io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	cfg, err := sys.Stack.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	sfnClient := sfn.NewFromConfig(cfg)

	const name = "renew.customer.example"
	post(ctx, t, sys.APIURL, name)
	first := waitFor(ctx, t, sys.APIURL, name, func(d doc) bool { return d.Status == "active" })
	t.Logf("issued serial %s, renewal at %s, not after %s", first.Serial, first.RenewAt, first.NotAfter)

	// Capture the timer now: the TTL deletion is about to remove it.
	timer, err := db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(sys.Table), ConsistentRead: aws.Bool(true),
		Key: map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "DOMAIN#" + name}, "sk": &ddbtypes.AttributeValueMemberS{Value: "TIMER"}},
	})
	if err != nil || timer.Item == nil {
		t.Fatalf("timer item: %v (found: %v)", err, timer != nil && timer.Item != nil)
	}

	second := waitFor(ctx, t, sys.APIURL, name, func(d doc) bool { return d.Status == "active" && d.Serial != first.Serial })
	if second.NotAfter <= first.NotAfter {
		t.Errorf("renewed not-after %s is not later than %s", second.NotAfter, first.NotAfter)
	}
	t.Logf("renewed: serial %s -> %s", first.Serial, second.Serial)

	// Deliver the same TTL REMOVE record again: the derived execution name
	// makes it a no-op.
	before := renewals(ctx, t, sfnClient, sys.StateMachineARN)
	record := ttlRemove(t, timer.Item)
	var resp events.DynamoDBEventResponse
	if err := invokeJSON(ctx, sys.handlers[renewalTriggerID], events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{record}}, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("redelivery reported failures: %+v", resp.BatchItemFailures)
	}
	if after := renewals(ctx, t, sfnClient, sys.StateMachineARN); len(after) != len(before) {
		t.Errorf("redelivered record started another execution: %v -> %v", before, after)
	}

	// A timer deleted by the platform renews nothing ...
	current := waitFor(ctx, t, sys.APIURL, name, func(d doc) bool { return d.Status == "active" })
	if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(sys.Table),
		Key:       map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "DOMAIN#" + name}, "sk": &ddbtypes.AttributeValueMemberS{Value: "TIMER"}},
	}); err != nil {
		t.Fatal(err)
	}
	renewAt, _ := time.Parse(time.RFC3339, current.RenewAt)
	time.Sleep(time.Until(renewAt) + 8*time.Second)
	if d := get(ctx, t, sys.APIURL, name); d.Serial != current.Serial {
		t.Fatalf("a timer deleted by the platform renewed %s (serial %s -> %s)", name, current.Serial, d.Serial)
	}
	// ... until the sweeper finds the overdue renewal on the ByRenewal index.
	var summary map[string]any
	if err := invokeJSON(ctx, sys.handlers[sweeperID], events.EventBridgeEvent{DetailType: "Scheduled Event", Source: "aws.events", Time: time.Now().UTC(), Detail: json.RawMessage(`{}`)}, &summary); err != nil {
		t.Fatal(err)
	}
	if summary["started"].(float64) < 1 {
		t.Fatalf("sweeper started nothing: %v", summary)
	}
	waitFor(ctx, t, sys.APIURL, name, func(d doc) bool { return d.Status == "active" && d.Serial != current.Serial })
}

func ttlRemove(t *testing.T, item map[string]ddbtypes.AttributeValue) events.DynamoDBEventRecord {
	t.Helper()
	image := map[string]events.DynamoDBAttributeValue{}
	for k, v := range item {
		switch v := v.(type) {
		case *ddbtypes.AttributeValueMemberS:
			image[k] = events.NewStringAttribute(v.Value)
		case *ddbtypes.AttributeValueMemberN:
			image[k] = events.NewNumberAttribute(v.Value)
		}
	}
	return events.DynamoDBEventRecord{
		EventID: "redelivered", EventName: "REMOVE", EventSource: "aws:dynamodb", AWSRegion: "us-east-1",
		Change: events.DynamoDBStreamRecord{
			Keys:           map[string]events.DynamoDBAttributeValue{"pk": image["pk"], "sk": image["sk"]},
			OldImage:       image,
			SequenceNumber: "1", StreamViewType: "NEW_AND_OLD_IMAGES",
		},
		UserIdentity: &events.DynamoDBUserIdentity{Type: "Service", PrincipalID: "dynamodb.amazonaws.com"},
	}
}

func renewals(ctx context.Context, t *testing.T, c *sfn.Client, arn string) []string {
	t.Helper()
	out, err := c.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(arn), MaxResults: 100})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range out.Executions {
		if strings.HasPrefix(aws.ToString(e.Name), "renew-") {
			names = append(names, aws.ToString(e.Name))
		}
	}
	return names
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
