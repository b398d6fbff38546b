package notify

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/offlinetest"
)

func TestPublishMoto(t *testing.T) {
	env := offlinetest.Start(t, offline.Options{Moto: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := env.AWS
	eb := eventbridge.NewFromConfig(cfg)
	sq := sqs.NewFromConfig(cfg)

	const bus = "certflow-test"
	if _, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)}); err != nil {
		t.Fatalf("CreateEventBus: %v", err)
	}
	q, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("certflow-events")})
	if err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	attrs, err := sq.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatalf("GetQueueAttributes: %v", err)
	}
	pattern, _ := json.Marshal(map[string][]string{"source": {Source}})
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("to-sqs"), EventBusName: aws.String(bus), EventPattern: aws.String(string(pattern))}); err != nil {
		t.Fatalf("PutRule: %v", err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("to-sqs"), EventBusName: aws.String(bus),
		Targets: []ebtypes.Target{{Id: aws.String("q"), Arn: aws.String(attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)])}}}); err != nil {
		t.Fatalf("PutTargets: %v", err)
	}

	notAfter := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	err = New(eb, bus, Source).Publish(ctx, Event{Type: TypeIssued, Domain: "blog.customer.example", Serial: "0abc", NotAfter: notAfter})
	if err != nil {
		t.Fatalf("Publish() error: %v", err)
	}

	var msgs []sqstypes.Message
	for i := 0; i < 10 && len(msgs) == 0; i++ {
		out, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, WaitTimeSeconds: 1, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatalf("ReceiveMessage: %v", err)
		}
		msgs = out.Messages
	}
	if len(msgs) != 1 {
		t.Fatalf("received %d messages, want 1", len(msgs))
	}
	var got struct {
		Source     string `json:"source"`
		DetailType string `json:"detail-type"`
		Detail     Detail `json:"detail"`
	}
	if err := json.Unmarshal([]byte(aws.ToString(msgs[0].Body)), &got); err != nil {
		t.Fatalf("message body %q: %v", aws.ToString(msgs[0].Body), err)
	}
	want := Detail{EventID: got.Detail.EventID, Domain: "blog.customer.example", Serial: "0abc", NotAfter: "2026-09-01T00:00:00Z"}
	if got.Detail.EventID == "" {
		t.Error("the event carries no eventId")
	}
	if got.Source != Source || got.DetailType != TypeIssued || got.Detail != want {
		t.Errorf("event = %+v, want source %q, detail-type %q, detail %+v", got, Source, TypeIssued, want)
	}
}
