package streamrunner_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/reconcile"
	"github.com/certflow/certflow/internal/renewal"
	"github.com/certflow/certflow/internal/table"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/offlinetest"
	"github.com/certflow/certflow/offline/streamrunner"
	"github.com/certflow/certflow/offline/template"
)

type startCall struct {
	name  string
	input flow.Input
	at    time.Time
}

type recordingStarter struct {
	mu    sync.Mutex
	calls []startCall
}

func (s *recordingStarter) Start(_ context.Context, name string, input any) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.calls {
		if c.name == name {
			return "arn:" + name, true, nil
		}
	}
	s.calls = append(s.calls, startCall{name, input.(flow.Input), time.Now()})
	return "arn:" + name, false, nil
}

// noExecutions answers that no execution exists.
type noExecutions struct{}

func (noExecutions) DescribeExecution(context.Context, *sfn.DescribeExecutionInput, ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	return nil, &sfntypes.ExecutionDoesNotExist{}
}

func (s *recordingStarter) snapshot() []startCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]startCall(nil), s.calls...)
}

func s(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }

func putActive(ctx context.Context, t *testing.T, db *dynamodb.Client, tableName, domain, serial string, renewAt time.Time) {
	t.Helper()
	ts := func(x time.Time) ddbtypes.AttributeValue { return s(table.FormatTime(x)) }
	_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: map[string]ddbtypes.AttributeValue{
		"pk": s("DOMAIN#" + domain), "sk": s("CERT"), "domain": s(domain),
		"sans":   &ddbtypes.AttributeValueMemberL{Value: []ddbtypes.AttributeValue{s(domain)}},
		"status": s("active"), "version": &ddbtypes.AttributeValueMemberN{Value: "1"}, "generation": &ddbtypes.AttributeValueMemberN{Value: "1"},
		"serial": s(serial), "ariCertID": s("aki." + serial), "renewAt": ts(renewAt), "notBefore": ts(renewAt.Add(-60 * 24 * time.Hour)),
		"notAfter": ts(renewAt.Add(30 * 24 * time.Hour)), "shard": s(table.ShardOf(domain)),
		"dueAt": ts(renewAt.Add(certstore.DefaultGrace)), "run": &ddbtypes.AttributeValueMemberN{Value: "0"},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

func putTimer(ctx context.Context, t *testing.T, db *dynamodb.Client, tableName, domain, serial string, renewAt time.Time) {
	t.Helper()
	_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: map[string]ddbtypes.AttributeValue{
		"pk": s("DOMAIN#" + domain), "sk": s("TIMER"), "domain": s(domain), "serial": s(serial), "ariCertID": s("aki." + serial),
		"renewAt": s(table.FormatTime(renewAt)), "expiresAt": &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(renewAt.Unix(), 10)},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDynamoDBLocalTTL runs the renewal trigger behind the runner on DynamoDB
// Local's real stream: a timer whose TTL has passed must be deleted by
// DynamoDB Local's TTL (userIdentity Service/dynamodb.amazonaws.com), pass
// the template's filter and start exactly one renewal; a timer deleted by a
// user must not.
func TestDynamoDBLocalTTL(t *testing.T) {
	env := offlinetest.Start(t, offline.Options{DynamoDB: true, Moto: true})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := env.AWS
	db := dynamodb.NewFromConfig(cfg)
	certs, timers := env.Tables.Certificates, env.Tables.Timers
	streams := dynamodbstreams.NewFromConfig(cfg)
	sq := sqs.NewFromConfig(cfg)
	tmpl, err := template.Load(filepath.Join("..", "..", "template.yaml"), template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mapping, err := streamrunner.FromTemplate(tmpl, "RenewalTriggerFunction")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	store := certstore.New(db, certs, certstore.WithTimerTable(timers))

	t.Run("TTL removal starts one renewal", func(t *testing.T) {
		starter := &recordingStarter{}
		trig := &renewal.Trigger{Certificates: store, Reconciler: &reconcile.Reconciler{Store: store, Starter: starter,
			Executions: noExecutions{}, StateMachineARN: "arn:aws:states:us-east-1:000000000000:stateMachine:certflow"}}
		var mu sync.Mutex
		var delivered []events.DynamoDBEventRecord
		handler := func(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
			mu.Lock()
			delivered = append(delivered, ev.Records...)
			mu.Unlock()
			return trig.Handle(ctx, ev)
		}
		r := streamrunner.New(streams, timers, mapping, handler, streamrunner.Options{Logger: logger, StartingPosition: streamrunner.TrimHorizon})
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer r.Close()

		// Timers are written for the future; TTL deletes them once due.
		renewAt := time.Now().UTC().Add(3 * time.Second).Truncate(time.Second)
		putActive(ctx, t, db, certs, "ttl.example", "0a01", renewAt)
		putActive(ctx, t, db, certs, "user.example", "0b02", renewAt)
		putTimer(ctx, t, db, timers, "user.example", "0b02", time.Now().Add(time.Hour))
		if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(timers),
			Key: map[string]ddbtypes.AttributeValue{"pk": s("DOMAIN#user.example"), "sk": s("TIMER")}}); err != nil {
			t.Fatal(err)
		}
		written := time.Now()
		putTimer(ctx, t, db, timers, "ttl.example", "0a01", renewAt)

		for len(starter.snapshot()) == 0 && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
		calls := starter.snapshot()
		if len(calls) == 0 {
			t.Fatalf("no renewal started: DynamoDB Local did not delete the expired timer by TTL within the deadline")
		}
		t.Logf("TTL deletion to renewal start: %v after the timer was written", calls[0].at.Sub(written).Round(time.Millisecond))
		time.Sleep(2 * time.Second) // anything else would arrive by now
		calls = starter.snapshot()
		if len(calls) != 1 {
			t.Fatalf("renewals started = %+v, want one (ttl.example)", calls)
		}
		if want := flow.RenewName("ttl.example", "0a01", 1); calls[0].name != want || calls[0].input.Domain != "ttl.example" ||
			calls[0].input.Replaces != "aki.0a01" || calls[0].input.ReplacesSerial != "0a01" || calls[0].input.Reason != "renewal" {
			t.Errorf("started %+v, want %s for ttl.example", calls[0], want)
		}
		mu.Lock()
		for _, rec := range delivered {
			if rec.EventName != "REMOVE" || rec.UserIdentity == nil || rec.UserIdentity.Type != "Service" ||
				rec.UserIdentity.PrincipalID != "dynamodb.amazonaws.com" || rec.Change.Keys["sk"].String() != "TIMER" {
				b, _ := json.Marshal(rec)
				t.Errorf("the template's filter let through %s", b)
			}
			if rec.EventSourceArn != r.StreamARN() || rec.Change.SequenceNumber == "" || rec.Change.OldImage["renewAt"].String() == "" {
				t.Errorf("delivered record lacks stream data: %+v", rec)
			}
		}
		mu.Unlock()
		c, err := store.Get(ctx, "ttl.example")
		if err != nil {
			t.Fatal(err)
		}
		if c.Execution != calls[0].name || c.Run != 1 {
			t.Errorf("after the trigger the domain is owned by %q (run %d), want %s", c.Execution, c.Run, calls[0].name)
		}
		if grace := time.Until(c.DueAt); grace < certstore.DefaultGrace-time.Minute || grace > certstore.DefaultGrace {
			t.Errorf("dueAt after the trigger = %v, want about now+%v", c.DueAt, certstore.DefaultGrace)
		}
	})

	t.Run("exhausted retries reach the SQS on-failure queue", func(t *testing.T) {
		q, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("renewal-failures")})
		if err != nil {
			t.Fatal(err)
		}
		m := mapping
		m.MaximumRetryAttempts = 1
		failing := func(_ context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
			return events.DynamoDBEventResponse{}, errors.New("always failing")
		}
		r := streamrunner.New(streams, timers, m, failing, streamrunner.Options{Logger: logger, RetryBackoff: 10 * time.Millisecond,
			FunctionARN: "arn:aws:lambda:us-east-1:000000000000:function:renewal-trigger",
			Sink:        streamrunner.NewSQSSink(sq, aws.ToString(q.QueueUrl))})
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		putTimer(ctx, t, db, timers, "fail.example", "0c03", time.Now().Add(-time.Minute))
		for ctx.Err() == nil {
			out, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, WaitTimeSeconds: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Messages) == 0 {
				continue
			}
			var rec streamrunner.OnFailureRecord
			if err := json.Unmarshal([]byte(aws.ToString(out.Messages[0].Body)), &rec); err != nil {
				t.Fatal(err)
			}
			info := rec.DDBStreamBatchInfo
			if info.BatchSize != 1 || info.StreamARN != r.StreamARN() || info.StartSequenceNumber == "" ||
				rec.RequestContext.ApproximateInvokeCount != 2 || rec.ResponseContext.FunctionError != "Unhandled" {
				t.Errorf("on-failure record = %+v", rec)
			}
			return
		}
		t.Fatal("no on-failure record arrived")
	})
}
