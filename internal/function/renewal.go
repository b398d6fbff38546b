package function

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
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

// EnvARIChecksPerRun is how many certificates a sweeper run re-asks ARI
// about (an integer, default renewal.DefaultMaxARIChecks).
const EnvARIChecksPerRun = "CERTFLOW_ARI_CHECKS_PER_RUN"

// positiveEnv reads a positive setting from the environment, def when it
// is unset.
func positiveEnv[T int | time.Duration](name string, def T, parse func(string) (T, error), want string) (T, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := parse(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s = %q: want %s", name, v, want)
	}
	return n, nil
}

func intEnv(name string, def int) (int, error) {
	return positiveEnv(name, def, strconv.Atoi, "a positive integer")
}

func durationEnv(name string, def time.Duration) (time.Duration, error) {
	return positiveEnv(name, def, time.ParseDuration, "a positive Go duration such as 1h")
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
	checks, err := intEnv(EnvARIChecksPerRun, renewal.DefaultMaxARIChecks)
	if err != nil {
		return nil, err
	}
	s := &renewal.Sweeper{
		Due:          store,
		Starter:      starter,
		Leaser:       store,
		ARI:          ari.New(httpClient, acme.DirectoryURL),
		Mover:        store,
		Positions:    store,
		Expiry:       store,
		Metrics:      metrics.New(os.Stdout, metrics.Namespace, nil),
		Grace:        grace,
		MaxARIChecks: checks,
		Logger:       logger,
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
