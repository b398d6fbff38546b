// Command issue is the Lambda function of the state machine's Issue step:
// it obtains a certificate from the ACME CA, seals its key with KMS and
// stores it with its renewal timer.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	legolog "github.com/go-acme/lego/v4/log"

	"github.com/certflow/certflow/internal/account"
	"github.com/certflow/certflow/internal/ari"
	"github.com/certflow/certflow/internal/awsconfig"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/dns01"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/http01"
	"github.com/certflow/certflow/internal/issuance"
	"github.com/certflow/certflow/internal/issuer"
	"github.com/certflow/certflow/internal/logging"
)

// Environment variables read here; the ACME and DNS-01 settings are read by
// issuer.ConfigFromEnv and dns01.ConfigFromEnv.
const (
	EnvTable    = "CERTFLOW_TABLE"
	EnvKMSKeyID = "CERTFLOW_KMS_KEY_ID"
)

func main() {
	logger := logging.New(os.Stdout, slog.LevelInfo)
	// lego logs its progress through the standard logger; keep it JSON.
	legolog.Logger = slog.NewLogLogger(logger.Handler(), slog.LevelInfo)
	h, err := newHandler(context.Background(), logger)
	if err != nil {
		logger.Error("start issue function", "error", err)
		os.Exit(1)
	}
	lambda.Start(func(ctx context.Context, in issuance.Input) (issuance.Output, error) {
		out, err := h.Handle(ctx, in)
		return out, failure.ForLambda(err)
	})
}

// newHandler reads the configuration and builds the clients once per cold
// start. The ACME client itself is built on first use (issuer.Lazy), so an
// unreachable CA fails an invocation, not the cold start.
func newHandler(ctx context.Context, logger *slog.Logger) (*issuance.Handler, error) {
	table, keyID := os.Getenv(EnvTable), os.Getenv(EnvKMSKeyID)
	if table == "" {
		return nil, fmt.Errorf("%s is not set: want the name of the certflow table", EnvTable)
	}
	if keyID == "" {
		return nil, fmt.Errorf("%s is not set: want the KMS key sealing certificate keys", EnvKMSKeyID)
	}
	cfg, err := issuer.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsconfig.Load(ctx)
	if err != nil {
		return nil, err
	}
	kind, dnsCfg, err := dns01.ConfigFromEnv(awsCfg)
	if err != nil {
		return nil, err
	}
	if cfg.DNS01, err = dns01.NewProvider(kind, dnsCfg); err != nil {
		return nil, err
	}
	dynamo := dynamodb.NewFromConfig(awsCfg)
	sealer := envelope.New(kms.NewFromConfig(awsCfg), keyID)
	cfg.HTTP01 = http01.NewProvider(dynamo, table)

	caClient, err := issuer.NewHTTPClient(cfg)
	if err != nil {
		return nil, err
	}
	scheduler := &ari.Scheduler{Info: ari.New(caClient, cfg.DirectoryURL), Logger: logger}
	accounts := account.New(dynamo, table, sealer, nil)
	return issuance.New(
		issuer.NewLazy(cfg, accounts),
		sealer,
		scheduler,
		certstore.New(dynamo, table),
		issuer.KeyTypeName(cfg.KeyType),
		logger,
	), nil
}
