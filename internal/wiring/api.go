package wiring

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/certflow/certflow/internal/account"
	"github.com/certflow/certflow/internal/acme"
	"github.com/certflow/certflow/internal/api"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/notify"
)

// reasonCessationOfOperation is the RFC 5280 reason code given when the
// platform retires a domain.
const reasonCessationOfOperation = 5

// API builds functions/api, the certificates API (request, read, list,
// retire).
func API(_ context.Context, cfg aws.Config, logger *slog.Logger) (lambda.Handler, error) {
	st, err := newStarting(cfg)
	if err != nil {
		return nil, err
	}
	names, err := namePolicy()
	if err != nil {
		return nil, err
	}
	bus, err := requireEnv(EnvEventBus, "the name or ARN of the event bus")
	if err != nil {
		return nil, err
	}
	c := api.Config{
		Requester:       st.store,
		Reconciler:      st.reconciler,
		Getter:          st.store,
		Lister:          st.store,
		Retirer:         st.store,
		Stopper:         st.sfn,
		StateMachineARN: st.arn,
		Publisher:       notify.New(eventbridge.NewFromConfig(cfg), bus, notify.Source),
		Names:           names,
	}
	// Revocation signs with the ACME account key, sealed under the KMS key;
	// without it, revoke requests answer 501.
	if keyID := os.Getenv(EnvKMSKeyID); keyID != "" {
		acmeCfg, err := acme.ConfigFromEnv()
		if err != nil {
			return nil, err
		}
		sealer := envelope.New(kms.NewFromConfig(cfg), keyID)
		c.Revoker = revoker{acme.NewLazy(acmeCfg, account.New(dynamodb.NewFromConfig(cfg), st.table, sealer, nil))}
	}
	h, err := api.New(c)
	if err != nil {
		return nil, err
	}
	return handler(logger, h.Handle), nil
}

// revoker revokes through the ACME account, built on first use so that an
// unreachable CA fails a revocation rather than the cold start.
type revoker struct{ lazy *acme.Lazy }

func (r revoker) Revoke(ctx context.Context, certPEM []byte) error {
	c, err := r.lazy.Client(ctx)
	if err != nil {
		return err
	}
	return c.Revoke(ctx, certPEM, reasonCessationOfOperation)
}
