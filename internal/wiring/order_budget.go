package wiring

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/certflow/certflow/internal/budget"
)

// OrderBudget builds functions/order-budget, the TakeOrderToken state: a
// token from the account-wide new-order budget.
func OrderBudget(_ context.Context, cfg aws.Config, logger *slog.Logger) (lambda.Handler, error) {
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
	return handler(logger, h.Handle), nil
}
