package wiring

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/certflow/certflow/internal/preflight"
)

// Preflight builds functions/preflight, the Preflight state: the
// ownership proof a request asked for, then DNS checks, before any ACME
// order.
func Preflight(_ context.Context, awsCfg aws.Config, logger *slog.Logger) (lambda.Handler, error) {
	cfg, err := preflight.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	if cfg.Names, err = namePolicy(); err != nil {
		return nil, err
	}
	if cfg.Owners, _, err = certificateStore(dynamodb.NewFromConfig(awsCfg)); err != nil {
		return nil, err
	}
	checker, err := preflight.New(cfg)
	if err != nil {
		return nil, err
	}
	return handler(logger, checker.Handle), nil
}
