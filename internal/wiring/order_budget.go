package wiring

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/certflow/certflow/internal/budget"
	"github.com/certflow/certflow/internal/flow"
)

// OrderBudget builds functions/order-budget, the ReserveOrderSlot state: the
// next slot of the account-wide new-order budget.
func OrderBudget(_ context.Context, cfg aws.Config, logger *slog.Logger) (lambda.Handler, error) {
	dynamo := dynamodb.NewFromConfig(cfg)
	store, table, err := certificateStore(dynamo)
	if err != nil {
		return nil, err
	}
	schedules, err := orderSchedules(dynamo, table)
	if err != nil {
		return nil, err
	}
	reservers := make(map[string]budget.Reserver, len(schedules))
	for ca, s := range schedules {
		reservers[ca] = s
	}
	return handler(logger, budget.NewStep(reservers, store).Handle), nil
}

// orderSchedules are the new-order budgets of the deployment's CAs, by CA
// name, as the environment configures them: ReserveOrderSlot reserves
// their slots, Issue has them admit its orders. The fallback CA has one
// when CERTFLOW_FALLBACK_ORDER_BUDGET is set (the template sets it with a
// fallback directory).
func orderSchedules(dynamo *dynamodb.Client, table string) (map[string]*budget.Schedule, error) {
	configs := map[string]func(string) (budget.Config, error){flow.CAPrimary: budget.ConfigFromEnv}
	if os.Getenv(budget.EnvFallbackOrderBudget) != "" {
		configs[flow.CAFallback] = budget.FallbackConfigFromEnv
	}
	out := make(map[string]*budget.Schedule, len(configs))
	for ca, config := range configs {
		bc, err := config(table)
		if err != nil {
			return nil, err
		}
		if out[ca], err = budget.New(dynamo, bc); err != nil {
			return nil, err
		}
	}
	return out, nil
}
