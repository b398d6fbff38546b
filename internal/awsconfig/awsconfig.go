// Package awsconfig loads the AWS SDK configuration shared by every certflow
// function. Endpoints of local stand-ins (DynamoDB Local, moto) come from the
// standard AWS_ENDPOINT_URL_<SERVICE> variables, which the SDK honours; an
// empty one means unset (template.yaml declares them empty, so that
// `sam local invoke --env-vars env.json` may override them).
package awsconfig

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
)

// MaxAttempts is how many times the SDK tries a call (with standard
// exponential backoff and jitter) before reporting its error.
const MaxAttempts = 5

// Load returns the default configuration (environment, shared files, the
// Lambda role) with the standard retryer at MaxAttempts. Call it once in
// main and build every client from the result. optFns are applied last.
func Load(ctx context.Context, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
	opts := append([]func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = MaxAttempts })
		}),
	}, optFns...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg, nil
}
