package wiring

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/delivery"
	"github.com/certflow/certflow/internal/envelope"
)

// Delivery builds functions/delivery, the per-handshake certificate
// delivery for proxies (GET /sni/{name}): the only function allowed to
// unseal certificate keys.
func Delivery(_ context.Context, cfg aws.Config, logger *slog.Logger) (lambda.Handler, error) {
	table, err := requireEnv(EnvTable, "the name of the certflow table")
	if err != nil {
		return nil, err
	}
	keyID, err := requireEnv(EnvKMSKeyID, "the KMS key sealing certificate keys")
	if err != nil {
		return nil, err
	}
	names, err := namePolicy()
	if err != nil {
		return nil, err
	}
	h, err := delivery.New(delivery.Config{
		Finder: certstore.New(dynamodb.NewFromConfig(cfg), table),
		Opener: envelope.New(kms.NewFromConfig(cfg), keyID),
		Names:  names,
	})
	if err != nil {
		return nil, err
	}
	return handler(logger, h.Handle), nil
}
