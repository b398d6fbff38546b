package wiring

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/certflow/certflow/internal/budget"
	"github.com/certflow/certflow/internal/notify"
	"github.com/certflow/certflow/internal/record"
)

// Record builds functions/record, the RecordFailure, RecordPermanentFailure,
// RecordRateLimit, RecordOutage and Quarantine states.
func Record(_ context.Context, cfg aws.Config, logger *slog.Logger) (lambda.Handler, error) {
	store, _, err := certificateStore(dynamodb.NewFromConfig(cfg))
	if err != nil {
		return nil, err
	}
	bus, err := requireEnv(EnvEventBus, "the name or ARN of the event bus")
	if err != nil {
		return nil, err
	}
	pub := notify.New(eventbridge.NewFromConfig(cfg), bus, notify.Source)
	h := record.New(store, store, pub, metricsEmitter(), nil)
	// The deployment has a fallback CA when it gives it a budget.
	if os.Getenv(budget.EnvFallbackOrderBudget) != "" {
		h.WithFallbackCA()
	}
	return handler(logger, h.Handle), nil
}
