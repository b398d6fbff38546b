// Package function builds the handler of every certflow Lambda function from
// its configuration: the composition root. Each functions/<name>/main.go
// only calls Run with its builder, and the offline runtime calls the same
// builders, so what runs locally is what runs in AWS.
//
// Configuration comes from the environment variables that template.yaml
// sets; each builder reports the first missing or malformed variable by name.
package function

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/certflow/certflow/internal/awsconfig"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/execution"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/logging"
)

// Environment variables shared by several functions.
const (
	EnvTable           = "CERTFLOW_TABLE"
	EnvTimerTable      = "CERTFLOW_TIMER_TABLE"
	EnvKMSKeyID        = "CERTFLOW_KMS_KEY_ID"
	EnvStateMachineARN = "CERTFLOW_STATE_MACHINE_ARN"
	EnvEventBus        = "CERTFLOW_EVENT_BUS"
)

// Builder builds a function's handler (anything lambda.Start accepts) once
// per execution environment, with SDK clients made from cfg.
type Builder func(ctx context.Context, cfg aws.Config, logger *slog.Logger) (any, error)

// Run is the whole main of a Lambda function: load the AWS configuration,
// build the handler once, serve invocations. A configuration error is logged
// once and ends the process, so the failed init is visible in the logs.
func Run(name string, build Builder) {
	logger := logging.New(os.Stdout, slog.LevelInfo).With("function", name)
	ctx := context.Background()
	cfg, err := awsconfig.Load(ctx)
	if err != nil {
		logger.Error("start function", "error", err.Error())
		os.Exit(1)
	}
	h, err := build(ctx, cfg, logger)
	if err != nil {
		logger.Error("start function", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h)
}

// certificateStore returns the store over the certificate table and the
// timers table, and the certificate table's name for the packages that keep
// their own items in it (challenges, ACME account, order budget).
func certificateStore(dynamo certstore.DynamoDB) (*certstore.Store, string, error) {
	table, err := requireEnv(EnvTable, "the name of the certflow table")
	if err != nil {
		return nil, "", err
	}
	timers, err := requireEnv(EnvTimerTable, "the name of the renewal timers table")
	if err != nil {
		return nil, "", err
	}
	return certstore.New(dynamo, table, certstore.WithTimerTable(timers)), table, nil
}

// stateMachineStarter returns the starter of issuance executions over client,
// for the state machine CERTFLOW_STATE_MACHINE_ARN names.
func stateMachineStarter(client execution.StartExecutionAPI) (*execution.Starter, error) {
	arn := os.Getenv(EnvStateMachineARN)
	if _, err := execution.ExecutionARN(arn, "check"); err != nil {
		return nil, fmt.Errorf("%s = %q: want the ARN of the issuance state machine", EnvStateMachineARN, arn)
	}
	return execution.New(client, arn), nil
}

func requireEnv(name, want string) (string, error) {
	v := os.Getenv(name)
	if v == "" {
		return "", fmt.Errorf("%s is not set: want %s", name, want)
	}
	return v, nil
}

// logFailure logs a failed invocation once: classified failures are
// expected outcomes (warn), anything else is an error.
func logFailure(ctx context.Context, msg string, err error) {
	if f, ok := failure.Find(err); ok {
		logging.From(ctx).Warn(msg, "code", f.Detail().Code, "error", err.Error())
		return
	}
	logging.From(ctx).Error(msg, "error", err.Error())
}
