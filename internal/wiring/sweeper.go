package wiring

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/certflow/certflow/internal/acme"
	"github.com/certflow/certflow/internal/ari"
	"github.com/certflow/certflow/internal/notify"
	"github.com/certflow/certflow/internal/renewal"
)

// ariTimeout bounds one ARI request of the sweeper.
const ariTimeout = 10 * time.Second

// EnvARIChecksPerRun is how many certificates a sweeper run re-asks ARI
// about (an integer, default renewal.DefaultMaxARIChecks).
const EnvARIChecksPerRun = "CERTFLOW_ARI_CHECKS_PER_RUN"

// EnvReconcilesPerRun is how many domains a sweeper run reconciles at most
// (an integer, default renewal.DefaultMaxReconciles).
const EnvReconcilesPerRun = "CERTFLOW_RECONCILES_PER_RUN"

// Sweeper builds functions/sweeper, the scheduled backstop: overdue
// renewals, ARI re-checks, the minimum days-to-expiry metric.
func Sweeper(_ context.Context, cfg aws.Config, logger *slog.Logger) (lambda.Handler, error) {
	st, err := newStarting(cfg)
	if err != nil {
		return nil, err
	}
	bus, err := requireEnv(EnvEventBus, "the name or ARN of the event bus")
	if err != nil {
		return nil, err
	}
	// The sweeper's reconciler also offboards domains that moved away.
	st.reconciler.Offboarder = st.store
	st.reconciler.Publisher = notify.New(eventbridge.NewFromConfig(cfg), bus, notify.Source)
	acmeCfg, err := acme.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	acmeCfg.HTTPTimeout = ariTimeout
	httpClient, err := acme.NewHTTPClient(acmeCfg)
	if err != nil {
		return nil, err
	}
	checks, err := intEnv(EnvARIChecksPerRun, renewal.DefaultMaxARIChecks)
	if err != nil {
		return nil, err
	}
	reconciles, err := intEnv(EnvReconcilesPerRun, renewal.DefaultMaxReconciles)
	if err != nil {
		return nil, err
	}
	s := &renewal.Sweeper{
		Due:           st.store,
		Reconciler:    st.reconciler,
		ARI:           ari.New(httpClient, acmeCfg.DirectoryURL),
		Mover:         st.store,
		Positions:     st.store,
		Expiry:        st.store,
		Metrics:       metricsEmitter(),
		MaxARIChecks:  checks,
		MaxReconciles: reconciles,
	}
	return handler(logger, s.Handle), nil
}
