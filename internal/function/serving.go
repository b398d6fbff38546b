package function

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	legolog "github.com/go-acme/lego/v4/log"

	"github.com/certflow/certflow/internal/account"
	"github.com/certflow/certflow/internal/api"
	"github.com/certflow/certflow/internal/ari"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/delivery"
	"github.com/certflow/certflow/internal/dns01"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/execution"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/http01"
	"github.com/certflow/certflow/internal/issuance"
	"github.com/certflow/certflow/internal/issuer"
)

// reasonCessationOfOperation is the RFC 5280 reason code given when the
// platform retires a domain.
const reasonCessationOfOperation = 5

// Issue builds the issuing step: ACME order, sealed key, certificate and
// renewal timer stored; metadata only in its answer. The ACME client is
// built on first use (issuer.Lazy), so an unreachable CA fails an
// invocation, not the cold start.
func Issue(_ context.Context, cfg aws.Config, logger *slog.Logger) (any, error) {
	dynamo := dynamodb.NewFromConfig(cfg)
	store, table, err := certificateStore(dynamo)
	if err != nil {
		return nil, err
	}
	keyID, err := requireEnv(EnvKMSKeyID, "the KMS key sealing certificate keys")
	if err != nil {
		return nil, err
	}
	acme, err := issuer.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	kind, dnsCfg, err := dns01.ConfigFromEnv(cfg)
	if err != nil {
		return nil, err
	}
	if acme.DNS01, err = dns01.NewProvider(kind, dnsCfg); err != nil {
		return nil, err
	}
	// lego logs its progress through its own standard logger; keep it JSON.
	legolog.Logger = slog.NewLogLogger(logger.Handler(), slog.LevelInfo)

	sealer := envelope.New(kms.NewFromConfig(cfg), keyID)
	acme.HTTP01 = http01.NewProvider(dynamo, table)
	caClient, err := issuer.NewHTTPClient(acme)
	if err != nil {
		return nil, err
	}
	h := issuance.New(
		issuer.NewLazy(acme, account.New(dynamo, table, sealer, nil)),
		sealer,
		&ari.Scheduler{Info: ari.New(caClient, acme.DirectoryURL), Logger: logger},
		store,
		issuer.KeyTypeName(acme.KeyType),
		logger,
	)
	return func(ctx context.Context, in issuance.Input) (issuance.Output, error) {
		out, err := h.Handle(ctx, in)
		return out, failure.ForLambda(err)
	}, nil
}

// API builds the certificates API (request, read, list, retire).
func API(_ context.Context, cfg aws.Config, logger *slog.Logger) (any, error) {
	dynamo := dynamodb.NewFromConfig(cfg)
	store, table, err := certificateStore(dynamo)
	if err != nil {
		return nil, err
	}
	sfnClient := sfn.NewFromConfig(cfg)
	starter, err := stateMachineStarter(sfnClient)
	if err != nil {
		return nil, err
	}
	c := api.Config{
		Requester:  store,
		Executions: store,
		Getter:     store,
		Lister:     store,
		Retirer:    store,
		Starter:    starter,
		Stopper:    sfnClient,
		IssueName:  execution.IssueName,
		Logger:     logger,
	}
	// Revocation signs with the ACME account key, sealed under the KMS key;
	// without it, revoke requests answer 501.
	if keyID := os.Getenv(EnvKMSKeyID); keyID != "" {
		acme, err := issuer.ConfigFromEnv()
		if err != nil {
			return nil, err
		}
		sealer := envelope.New(kms.NewFromConfig(cfg), keyID)
		c.Revoker = revoker{issuer.NewLazy(acme, account.New(dynamo, table, sealer, nil))}
	}
	h, err := api.New(c)
	if err != nil {
		return nil, err
	}
	return h.Handle, nil
}

// revoker revokes through the ACME account, built on first use so that an
// unreachable CA fails a revocation rather than the cold start.
type revoker struct{ lazy *issuer.Lazy }

func (r revoker) Revoke(ctx context.Context, certPEM []byte) error {
	i, err := r.lazy.Issuer(ctx)
	if err != nil {
		return err
	}
	return i.Revoke(ctx, certPEM, reasonCessationOfOperation)
}

// Delivery builds the per-handshake certificate delivery for proxies: the
// only function allowed to unseal certificate keys.
func Delivery(_ context.Context, cfg aws.Config, logger *slog.Logger) (any, error) {
	table, err := requireEnv(EnvTable, "the name of the certflow table")
	if err != nil {
		return nil, err
	}
	keyID, err := requireEnv(EnvKMSKeyID, "the KMS key sealing certificate keys")
	if err != nil {
		return nil, err
	}
	h, err := delivery.New(delivery.Config{
		Finder: certstore.New(dynamodb.NewFromConfig(cfg), table),
		Opener: envelope.New(kms.NewFromConfig(cfg), keyID),
		Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	return h.Handle, nil
}

// Builders maps each function's logical ID in template.yaml to its builder.
func Builders() map[string]Builder {
	return map[string]Builder{
		"IssueFunction":          Issue,
		"ChallengeFunction":      Challenge,
		"PreflightFunction":      Preflight,
		"OrderBudgetFunction":    OrderBudget,
		"OutcomeFunction":        Outcome,
		"ApiFunction":            API,
		"DeliveryFunction":       Delivery,
		"RenewalTriggerFunction": RenewalTrigger,
		"SweeperFunction":        Sweeper,
	}
}
