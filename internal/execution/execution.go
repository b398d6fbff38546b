// Package execution starts executions of the issuance state machine under
// the deterministic names of package flow, so that a request or a renewal
// triggered twice (an API retry, a timer event delivered again, the sweeper
// catching up) starts one execution: Step Functions refuses the second
// name, and Start reports that as success.
package execution

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/certflow/certflow/internal/failure"
)

// StartExecutionAPI is the part of the Step Functions client a Starter uses.
type StartExecutionAPI interface {
	StartExecution(ctx context.Context, in *sfn.StartExecutionInput, optFns ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
}

// Starter starts executions of one state machine.
type Starter struct {
	client          StartExecutionAPI
	stateMachineARN string
}

// New returns a Starter for the state machine stateMachineARN
// (arn:PARTITION:states:REGION:ACCOUNT:stateMachine:NAME).
func New(client StartExecutionAPI, stateMachineARN string) *Starter {
	return &Starter{client: client, stateMachineARN: stateMachineARN}
}

// Start starts the execution name with input marshalled to JSON and returns
// its ARN. If an execution of that name already exists (running or closed),
// Start succeeds with alreadyStarted true and the ARN derived from the state
// machine's. Throttling and other retryable AWS errors, left after the SDK's
// own retries, are returned as *failure.TransientError.
func (s *Starter) Start(ctx context.Context, name string, input any) (arn string, alreadyStarted bool, err error) {
	b, err := json.Marshal(input)
	if err != nil {
		return "", false, fmt.Errorf("start execution %q: marshal input: %w", name, err)
	}
	out, err := s.client.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(s.stateMachineARN),
		Name:            aws.String(name),
		Input:           aws.String(string(b)),
	})
	if err != nil {
		var exists *types.ExecutionAlreadyExists
		if errors.As(err, &exists) {
			arn, derr := ExecutionARN(s.stateMachineARN, name)
			if derr != nil {
				return "", true, fmt.Errorf("start execution %q: %w", name, derr)
			}
			return arn, true, nil
		}
		if retryable(err) {
			return "", false, fmt.Errorf("start execution %q: %w", name, &failure.TransientError{Message: "Step Functions is throttling or unavailable", Err: err})
		}
		return "", false, fmt.Errorf("start execution %q: %w", name, err)
	}
	return aws.ToString(out.ExecutionArn), false, nil
}

// ExecutionARN returns the ARN of execution name of the state machine
// stateMachineARN: arn:PARTITION:states:REGION:ACCOUNT:execution:SM:NAME.
func ExecutionARN(stateMachineARN, name string) (string, error) {
	parts := strings.Split(stateMachineARN, ":")
	if len(parts) != 7 || parts[0] != "arn" || parts[2] != "states" || parts[5] != "stateMachine" || parts[6] == "" {
		return "", fmt.Errorf("derive execution ARN: %q is not a state machine ARN", stateMachineARN)
	}
	parts[5] = "execution"
	return strings.Join(parts, ":") + ":" + name, nil
}

func retryable(err error) bool {
	if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary {
		return true
	}
	return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
}
