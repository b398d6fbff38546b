package wiring

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/certflow/certflow/internal/renewal"
)

// RenewalTrigger builds functions/renewal-trigger, the stream handler that
// starts a renewal when DynamoDB TTL deletes a renewal timer.
func RenewalTrigger(_ context.Context, cfg aws.Config, logger *slog.Logger) (lambda.Handler, error) {
	st, err := newStarting(cfg)
	if err != nil {
		return nil, err
	}
	t := &renewal.Trigger{Certificates: st.store, Reconciler: st.reconciler}
	return handler(logger, t.Handle), nil
}
