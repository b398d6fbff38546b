package wiring

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/delivery"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/principal"
)

// EnvDeliveryPrincipals lists the principal ARNs (comma-separated) that may
// fetch certificates and keys from /sni (delivery.Config.Allowed); empty:
// no one. The template fills it from its DeliveryPrincipals parameter.
const EnvDeliveryPrincipals = "CERTFLOW_DELIVERY_PRINCIPALS"

// Delivery builds functions/delivery, the per-handshake certificate
// delivery for proxies (GET /sni/{name}): the only function allowed to
// unseal certificate keys, and only for the principals listed.
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
	allowed, err := principal.ParseList(os.Getenv(EnvDeliveryPrincipals))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvDeliveryPrincipals, err)
	}
	h, err := delivery.New(delivery.Config{
		Finder:  certstore.New(dynamodb.NewFromConfig(cfg), table),
		Opener:  envelope.New(kms.NewFromConfig(cfg), keyID),
		Allowed: allowed,
		Names:   names,
	})
	if err != nil {
		return nil, err
	}
	return handler(logger, h.Handle), nil
}
