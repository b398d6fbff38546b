package function

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/certflow/certflow/internal/ari"
	"github.com/certflow/certflow/internal/http01"
	"github.com/certflow/certflow/internal/issuer"
	"github.com/certflow/certflow/internal/metrics"
	"github.com/certflow/certflow/internal/renewal"
)

// ariTimeout bounds one ARI request of the sweeper.
const ariTimeout = 10 * time.Second

// EnvSweepGrace is how long after its renewal time a certificate is left to
// its timer before the sweeper renews it (a Go duration, default 1h).
const EnvSweepGrace = "CERTFLOW_SWEEP_GRACE"

func durationEnv(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s = %q: want a positive Go duration such as 1h", name, v)
	}
	return d, nil
}

// RenewalTrigger builds the stream handler that starts renewals when
// DynamoDB TTL deletes a renewal timer.
func RenewalTrigger(_ context.Context, cfg aws.Config, logger *slog.Logger) (any, error) {
	store, _, err := certificateStore(dynamodb.NewFromConfig(cfg))
	if err != nil {
		return nil, err
	}
	starter, err := stateMachineStarter(sfn.NewFromConfig(cfg))
	if err != nil {
		return nil, err
	}
	t := &renewal.Trigger{
		Certificates: store,
		Starter:      starter,
		Leaser:       store,
		Logger:       logger,
	}
	return t.Handle, nil
}

// Sweeper builds the scheduled backstop: overdue renewals, ARI re-checks,
// the minimum days-to-expiry metric.
func Sweeper(_ context.Context, cfg aws.Config, logger *slog.Logger) (any, error) {
	store, _, err := certificateStore(dynamodb.NewFromConfig(cfg))
	if err != nil {
		return nil, err
	}
	starter, err := stateMachineStarter(sfn.NewFromConfig(cfg))
	if err != nil {
		return nil, err
	}
	acme, err := issuer.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	acme.HTTPTimeout = ariTimeout
	httpClient, err := issuer.NewHTTPClient(acme)
	if err != nil {
		return nil, err
	}
	grace, err := durationEnv(EnvSweepGrace, renewal.DefaultGrace)
	if err != nil {
		return nil, err
	}
	s := &renewal.Sweeper{
		Due:       store,
		Starter:   starter,
		Leaser:    store,
		ARI:       ari.New(httpClient, acme.DirectoryURL),
		Mover:     store,
		Positions: store,
		Expiry:    store,
		Metrics:   metrics.New(os.Stdout, metrics.Namespace, nil),
		Grace:     grace,
		Logger:    logger,
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
