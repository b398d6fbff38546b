package wiring

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/certflow/certflow/internal/budget"
)

// OrderBudget builds functions/order-budget, the ReserveOrderSlot state: the
// next slot of the account-wide new-order budget.
func OrderBudget(_ context.Context, cfg aws.Config, logger *slog.Logger) (lambda.Handler, error) {
	dynamo := dynamodb.NewFromConfig(cfg)
	store, table, err := certificateStore(dynamo)
	if err != nil {
		return nil, err
	}
	schedule, err := orderSchedule(dynamo, table)
	if err != nil {
		return nil, err
	}
	return handler(logger, budget.NewStep(schedule, store).Handle), nil
}

// orderSchedule is the account's new-order budget, as the environment
// configures it: ReserveOrderSlot reserves its slots, Issue checks and
// renews them.
func orderSchedule(dynamo *dynamodb.Client, table string) (*budget.Schedule, error) {
	bc, err := budget.ConfigFromEnv(table)
	if err != nil {
		return nil, err
	}
	return budget.New(dynamo, bc)
}
