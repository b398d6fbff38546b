package function

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/certflow/certflow/internal/budget"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/metrics"
	"github.com/certflow/certflow/internal/notify"
	"github.com/certflow/certflow/internal/outcome"
	"github.com/certflow/certflow/internal/preflight"
)

// Preflight builds the preflight step: DNS checks before any ACME order.
func Preflight(_ context.Context, _ aws.Config, logger *slog.Logger) (any, error) {
	cfg, err := preflight.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	checker, err := preflight.New(cfg)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, in preflight.Input) (preflight.Output, error) {
		ctx = logging.With(logging.WithLambda(ctx, logger, in.Execution), "domain", in.Domain)
		out, err := checker.Handle(ctx, in)
		if err != nil {
			logFailure(ctx, "preflight failed", err)
		}
		return out, failure.ForLambda(err)
	}, nil
}

// OrderBudget builds the step taking a token from the new-order budget.
func OrderBudget(_ context.Context, cfg aws.Config, logger *slog.Logger) (any, error) {
	table, err := requireEnv(EnvTable, "the name of the certflow table")
	if err != nil {
		return nil, err
	}
	spec := os.Getenv(budget.EnvOrderBudget)
	if spec == "" {
		spec = budget.DefaultSpec
	}
	capacity, per, err := budget.ParseSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", budget.EnvOrderBudget, err)
	}
	h := budget.NewHandler(budget.New(dynamodb.NewFromConfig(cfg), table, capacity, per, time.Now), logger)
	return func(ctx context.Context, in json.RawMessage) (budget.Result, error) {
		return h.Handle(ctx, in)
	}, nil
}

// Outcome builds the step recording failures, quarantines and issuances.
func Outcome(_ context.Context, cfg aws.Config, logger *slog.Logger) (any, error) {
	store, _, err := certificateStore(dynamodb.NewFromConfig(cfg))
	if err != nil {
		return nil, err
	}
	bus, err := requireEnv(EnvEventBus, "the name or ARN of the event bus")
	if err != nil {
		return nil, err
	}
	pub := notify.New(eventbridge.NewFromConfig(cfg), bus, notify.Source)
	h := outcome.New(store, store, pub, metrics.New(os.Stdout, metrics.Namespace, nil), nil)
	return func(ctx context.Context, in outcome.Input) (any, error) {
		ctx = logging.With(logging.WithLambda(ctx, logger, in.Execution), "domain", in.Domain)
		out, err := h.Handle(ctx, in)
		if err != nil {
			logFailure(ctx, "outcome failed", err)
			return nil, failure.ForLambda(err)
		}
		return out, nil
	}, nil
}
