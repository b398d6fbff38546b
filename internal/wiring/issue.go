package wiring

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	legolog "github.com/go-acme/lego/v4/log"

	"github.com/certflow/certflow/internal/account"
	"github.com/certflow/certflow/internal/acme"
	"github.com/certflow/certflow/internal/ari"
	"github.com/certflow/certflow/internal/budget"
	"github.com/certflow/certflow/internal/dns01"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/http01"
	"github.com/certflow/certflow/internal/issue"
)

// Issue builds functions/issue, the Issue state: the domain's ACME order
// resumed or placed (with a slot of the new-order budget), sealed key,
// certificate and renewal timer stored; metadata only in its answer. The
// ACME client is built on first use (acme.Lazy), so an unreachable CA fails
// an invocation, not the cold start.
func Issue(_ context.Context, cfg aws.Config, logger *slog.Logger) (lambda.Handler, error) {
	dynamo := dynamodb.NewFromConfig(cfg)
	store, table, err := certificateStore(dynamo)
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
	acmeCfg, err := acme.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	kind, dnsCfg, err := dns01.ConfigFromEnv(cfg)
	if err != nil {
		return nil, err
	}
	if acmeCfg.DNS01, err = dns01.NewProvider(kind, dnsCfg); err != nil {
		return nil, err
	}
	// lego logs its progress through its own standard logger; keep it JSON.
	legolog.Logger = slog.NewLogLogger(logger.Handler(), slog.LevelInfo)

	sealer := envelope.New(kms.NewFromConfig(cfg), keyID)
	acmeCfg.HTTP01 = http01.NewProvider(dynamo, table)
	caClient, err := acme.NewHTTPClient(acmeCfg)
	if err != nil {
		return nil, err
	}
	schedules, err := orderSchedules(dynamo, table)
	if err != nil {
		return nil, err
	}
	accounts := account.New(dynamo, table, sealer, nil)
	cas := map[string]issue.CAConfig{flow.CAPrimary: {
		CA:      acme.NewLazy(acmeCfg, accounts),
		Slots:   schedules[flow.CAPrimary],
		Renewal: &ari.Scheduler{Info: ari.New(caClient, acmeCfg.DirectoryURL)},
	}}
	fallback, ok, err := acme.FallbackFromEnv(acmeCfg)
	if err != nil {
		return nil, err
	}
	if ok {
		if schedules[flow.CAFallback] == nil {
			return nil, fmt.Errorf("%s is set but %s is not: the fallback CA needs its order budget", acme.EnvFallbackDirectory, budget.EnvFallbackOrderBudget)
		}
		fallbackClient, err := acme.NewHTTPClient(fallback)
		if err != nil {
			return nil, err
		}
		cas[flow.CAFallback] = issue.CAConfig{
			CA:      acme.NewLazy(fallback, accounts),
			Slots:   schedules[flow.CAFallback],
			Renewal: &ari.Scheduler{Info: ari.New(fallbackClient, fallback.DirectoryURL)},
		}
	}
	h := issue.New(issue.Config{CAs: cas, Sealer: sealer, Store: store, Names: names})
	return handler(logger, h.Handle), nil
}
