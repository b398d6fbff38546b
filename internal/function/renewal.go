package function

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/certflow/certflow/internal/ari"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/execution"
	"github.com/certflow/certflow/internal/http01"
	"github.com/certflow/certflow/internal/issuer"
	"github.com/certflow/certflow/internal/metrics"
	"github.com/certflow/certflow/internal/renewal"
)

// ariTimeout bounds one ARI request of the sweeper.
const ariTimeout = 10 * time.Second

// RenewalTrigger builds the stream handler that starts renewals when
// DynamoDB TTL deletes a renewal timer.
func RenewalTrigger(_ context.Context, cfg aws.Config, logger *slog.Logger) (any, error) {
	table, err := requireEnv(EnvTable, "the name of the certflow table")
	if err != nil {
		return nil, err
	}
	smARN, err := requireEnv(EnvStateMachineARN, "the ARN of the issuance state machine")
	if err != nil {
		return nil, err
	}
	store := certstore.New(dynamodb.NewFromConfig(cfg), table)
	t := &renewal.Trigger{
		Certificates: store,
		Starter:      execution.New(sfn.NewFromConfig(cfg), smARN),
		Leaser:       store,
		Logger:       logger,
	}
	return t.Handle, nil
}

// Sweeper builds the scheduled backstop: overdue renewals, ARI re-checks,
// the minimum days-to-expiry metric.
func Sweeper(_ context.Context, cfg aws.Config, logger *slog.Logger) (any, error) {
	table, err := requireEnv(EnvTable, "the name of the certflow table")
	if err != nil {
		return nil, err
	}
	smARN, err := requireEnv(EnvStateMachineARN, "the ARN of the issuance state machine")
	if err != nil {
		return nil, err
	}
	acme, err := issuer.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	httpClient, err := caClient(acme.CARoots)
	if err != nil {
		return nil, err
	}
	store := certstore.New(dynamodb.NewFromConfig(cfg), table)
	s := &renewal.Sweeper{
		Due:     store,
		Starter: execution.New(sfn.NewFromConfig(cfg), smARN),
		Leaser:  store,
		ARI:     ari.New(httpClient, acme.DirectoryURL),
		Mover:   store,
		Expiry:  store,
		Metrics: metrics.New(os.Stdout, metrics.Namespace, nil),
		Logger:  logger,
	}
	return s.Handle, nil
}

// Challenge builds the HTTP-01 responder.
func Challenge(_ context.Context, cfg aws.Config, _ *slog.Logger) (any, error) {
	table, err := requireEnv(EnvTable, "the name of the certflow table")
	if err != nil {
		return nil, err
	}
	return http01.NewResponder(dynamodb.NewFromConfig(cfg), table).Handle, nil
}

// caClient returns the HTTP client for the CA, trusting the system roots
// and the PEM file rootsFile when set (Pebble's root offline).
func caClient(rootsFile string) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if rootsFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pemBytes, err := os.ReadFile(rootsFile)
		if err != nil {
			return nil, fmt.Errorf("read CA roots: %w", err)
		}
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("read CA roots %q: no PEM certificate found", rootsFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: transport, Timeout: ariTimeout}, nil
}
