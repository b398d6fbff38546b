package wiring

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/certflow/certflow/internal/acme"
	"github.com/certflow/certflow/internal/ari"
	"github.com/certflow/certflow/internal/metrics"
	"github.com/certflow/certflow/internal/renewal"
)

// ariTimeout bounds one ARI request of the sweeper.
const ariTimeout = 10 * time.Second

// Settings of the sweeper.
const (
	// EnvSweepGrace is how long after its renewal time a certificate is
	// left to its timer before the sweeper renews it (a Go duration,
	// default renewal.DefaultGrace).
	EnvSweepGrace = "CERTFLOW_SWEEP_GRACE"
	// EnvARIChecksPerRun is how many certificates a sweeper run re-asks
	// ARI about (an integer, default renewal.DefaultMaxARIChecks).
	EnvARIChecksPerRun = "CERTFLOW_ARI_CHECKS_PER_RUN"
)

// Sweeper builds functions/sweeper, the scheduled backstop: overdue
// renewals, ARI re-checks, the minimum days-to-expiry metric.
func Sweeper(_ context.Context, cfg aws.Config, logger *slog.Logger) (lambda.Handler, error) {
	st, err := newStarting(cfg)
	if err != nil {
		return nil, err
	}
	acmeCfg, err := acme.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	acmeCfg.HTTPTimeout = ariTimeout
	httpClient, err := acme.NewHTTPClient(acmeCfg)
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
		Due:          st.store,
		Starter:      st.starter,
		Leaser:       st.store,
		ARI:          ari.New(httpClient, acmeCfg.DirectoryURL),
		Mover:        st.store,
		Positions:    st.store,
		Expiry:       st.store,
		Metrics:      metrics.New(os.Stdout, metrics.Namespace, nil),
		Grace:        grace,
		MaxARIChecks: checks,
	}
	return handler(logger, s.Handle), nil
}
