// Package wiring is the composition root of certflow's Lambda functions:
// it builds each function's handler from the configuration template.yaml
// gives it, with one file per function named like its folder under
// functions/ (issue.go builds functions/issue). Every functions/<name>/main.go
// only calls Run with its builder, and the offline runtime (offline/deploy)
// calls the same builders, so what runs locally is what runs in AWS.
//
// Every handler goes through one adapter (adapter.go): typed input and
// output, a logger carried in the context with the function, the request
// ID, the domain and the execution name, one log per failure, and the
// failure classified at the Lambda boundary (failure.ForLambda).
//
// Configuration comes from environment variables, read once per cold start;
// a missing or malformed variable is reported by name.
package wiring

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/certflow/certflow/internal/awsconfig"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/execution"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/metrics"
	"github.com/certflow/certflow/internal/reconcile"
)

// Environment variables shared by several functions. Variables one
// function reads are declared beside its builder or in the package that
// parses them.
const (
	EnvTable           = "CERTFLOW_TABLE"
	EnvTimerTable      = "CERTFLOW_TIMER_TABLE"
	EnvKMSKeyID        = "CERTFLOW_KMS_KEY_ID"
	EnvStateMachineARN = "CERTFLOW_STATE_MACHINE_ARN"
	EnvEventBus        = "CERTFLOW_EVENT_BUS"
	// EnvDueGrace is how long past the time a domain was expected to need
	// attention the reconciler leaves it alone (a Go duration, default
	// certstore.DefaultGrace): a renewal is left to its TTL timer that
	// long, an execution that should have acted is checked that long
	// after. Every function that writes a domain's dueAt reads it.
	EnvDueGrace = "CERTFLOW_DUE_GRACE"
	// EnvOffboardAfter is how long a domain quarantined because it moved
	// away stays so before the sweeper offboards it (a Go duration,
	// default certstore.DefaultOffboardAfter). The record function, which
	// quarantines, reads it.
	EnvOffboardAfter = "CERTFLOW_OFFBOARD_AFTER"
)

// MetricsOutput is where functions write their CloudWatch embedded-metric
// lines: the Lambda's stdout, which CloudWatch reads. The offline
// deployment, which runs every function in one process, points it at its
// log.
var MetricsOutput io.Writer = os.Stdout

// metricsEmitter is the EMF emitter of a function.
func metricsEmitter() *metrics.Emitter { return metrics.New(MetricsOutput, metrics.Namespace, nil) }

// Builder builds a function's handler once per execution environment, with
// SDK clients made from cfg; logger is the function's logger, which the
// adapter carries into every invocation.
type Builder func(ctx context.Context, cfg aws.Config, logger *slog.Logger) (lambda.Handler, error)

// Functions maps each function's logical ID in template.yaml to its builder.
func Functions() map[string]Builder {
	return map[string]Builder{
		"IssueFunction":          Issue,
		"ChallengeFunction":      Challenge,
		"PreflightFunction":      Preflight,
		"OrderBudgetFunction":    OrderBudget,
		"RecordFunction":         Record,
		"NotifyFunction":         Notify,
		"ApiFunction":            API,
		"DeliveryFunction":       Delivery,
		"RenewalTriggerFunction": RenewalTrigger,
		"SweeperFunction":        Sweeper,
	}
}

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
	grace, err := durationEnv(EnvDueGrace, certstore.DefaultGrace)
	if err != nil {
		return nil, "", err
	}
	offboard, err := durationEnv(EnvOffboardAfter, certstore.DefaultOffboardAfter)
	if err != nil {
		return nil, "", err
	}
	return certstore.New(dynamo, table, certstore.WithTimerTable(timers), certstore.WithGrace(grace), certstore.WithOffboardAfter(offboard)), table, nil
}

// starting is what the functions that start executions (api,
// renewal-trigger, sweeper) share: the store, the certificate table's name,
// the Step Functions client and the reconciler starting executions of the
// state machine CERTFLOW_STATE_MACHINE_ARN names.
type starting struct {
	store      *certstore.Store
	table      string
	sfn        *sfn.Client
	arn        string
	reconciler *reconcile.Reconciler
}

func newStarting(cfg aws.Config) (starting, error) {
	store, table, err := certificateStore(dynamodb.NewFromConfig(cfg))
	if err != nil {
		return starting{}, err
	}
	arn := os.Getenv(EnvStateMachineARN)
	if _, err := execution.ExecutionARN(arn, "check"); err != nil {
		return starting{}, fmt.Errorf("%s = %q: want the ARN of the issuance state machine", EnvStateMachineARN, arn)
	}
	client := sfn.NewFromConfig(cfg)
	r := &reconcile.Reconciler{Store: store, Starter: execution.New(client, arn), Executions: client, StateMachineARN: arn}
	return starting{store: store, table: table, sfn: client, arn: arn, reconciler: r}, nil
}

// namePolicy reads which domain names the deployment accepts from
// CERTFLOW_ALLOW_TESTING_TLDS; unset means the strict zero value.
func namePolicy() (domain.Policy, error) {
	v := os.Getenv(domain.EnvAllowTestingTLDs)
	if v == "" {
		return domain.Policy{}, nil
	}
	allow, err := strconv.ParseBool(v)
	if err != nil {
		return domain.Policy{}, fmt.Errorf("%s = %q: want true or false", domain.EnvAllowTestingTLDs, v)
	}
	return domain.Policy{AllowTestingTLDs: allow}, nil
}

func requireEnv(name, want string) (string, error) {
	v := os.Getenv(name)
	if v == "" {
		return "", fmt.Errorf("%s is not set: want %s", name, want)
	}
	return v, nil
}

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
