package wiring

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/logging"
)

// logAttrs is implemented by inputs that name what the invocation is about
// (flow.Input and the step inputs: domain and execution).
type logAttrs interface{ LogAttrs() []any }

// handler is the one Lambda adapter every function goes through. The
// handler's types are checked at compile time; per invocation it:
//
//   - carries logger in ctx (logging.From), with the Lambda request ID and,
//     when the input names them, the domain and the execution name, so
//     every line the handler logs says what it is about;
//   - logs a returned error once: a classified failure (package failure)
//     as a warning, since the state machine decides on it, anything else
//     as an error;
//   - converts the error with failure.ForLambda, so its errorType is the
//     failure class the state machine's Retry and Catch match.
//
// Handlers themselves never log the error they return.
func handler[In, Out any](logger *slog.Logger, h func(context.Context, In) (Out, error)) lambda.Handler {
	return lambda.NewHandler(func(ctx context.Context, in In) (Out, error) {
		l := logger
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			l = l.With("requestId", lc.AwsRequestID)
		}
		if a, ok := any(in).(logAttrs); ok {
			l = l.With(a.LogAttrs()...)
		}
		ctx = logging.Into(ctx, l)
		out, err := h(ctx, in)
		if err != nil {
			logFailure(ctx, err)
			return out, failure.ForLambda(err)
		}
		return out, nil
	})
}

// logFailure logs a failed invocation once: classified failures are
// expected outcomes (warn), anything else is an error.
func logFailure(ctx context.Context, err error) {
	if f, ok := failure.Find(err); ok {
		logging.From(ctx).Warn("invocation failed", "code", f.Detail().Code, "error", err.Error())
		return
	}
	logging.From(ctx).Error("invocation failed", "error", err.Error())
}
