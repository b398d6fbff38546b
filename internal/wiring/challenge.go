package wiring

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/certflow/certflow/internal/http01"
)

// Challenge builds functions/challenge, the HTTP-01 responder the CA calls
// at /.well-known/acme-challenge/{token}.
func Challenge(_ context.Context, cfg aws.Config, logger *slog.Logger) (lambda.Handler, error) {
	table, err := requireEnv(EnvTable, "the name of the certflow table")
	if err != nil {
		return nil, err
	}
	return handler(logger, http01.NewResponder(dynamodb.NewFromConfig(cfg), table).Handle), nil
}
