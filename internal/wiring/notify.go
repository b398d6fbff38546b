package wiring

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/certflow/certflow/internal/notify"
)

// Notify builds functions/notify, the Notify state: Certificate Issued or
// Certificate Renewed on the event bus, never for a domain retired since.
func Notify(_ context.Context, cfg aws.Config, logger *slog.Logger) (lambda.Handler, error) {
	bus, err := requireEnv(EnvEventBus, "the name or ARN of the event bus")
	if err != nil {
		return nil, err
	}
	store, _, err := certificateStore(dynamodb.NewFromConfig(cfg))
	if err != nil {
		return nil, err
	}
	pub := notify.New(eventbridge.NewFromConfig(cfg), bus, notify.Source)
	step := notify.NewStep(pub, metricsEmitter()).WithDomains(store)
	return handler(logger, step.Handle), nil
}
