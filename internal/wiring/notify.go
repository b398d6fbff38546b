package wiring

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/certflow/certflow/internal/notify"
)

// Notify builds functions/notify, the Notify state: Certificate Issued or
// Certificate Renewed on the event bus.
func Notify(_ context.Context, cfg aws.Config, logger *slog.Logger) (lambda.Handler, error) {
	bus, err := requireEnv(EnvEventBus, "the name or ARN of the event bus")
	if err != nil {
		return nil, err
	}
	pub := notify.New(eventbridge.NewFromConfig(cfg), bus, notify.Source)
	step := notify.NewStep(pub, metricsEmitter())
	return handler(logger, step.Handle), nil
}
