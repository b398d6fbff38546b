// Package logging sets up certflow's structured JSON logs and carries a
// logger with per-invocation attributes (execution, domain) in a context.
package logging

import (
	"context"
	"io"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// New returns a logger writing JSON lines to w at level and above.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

type loggerKey struct{}

// From returns the logger carried by ctx, or slog.Default() if there is none.
func From(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// Into returns a copy of ctx carrying logger.
func Into(ctx context.Context, logger *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, logger)
}

// With returns a copy of ctx whose logger adds args (slog key-value pairs)
// to every line, for example With(ctx, "domain", name).
func With(ctx context.Context, args ...any) context.Context {
	return Into(ctx, From(ctx).With(args...))
}

// WithLambda returns a copy of ctx carrying logger with an "execution"
// attribute: execution (the Step Functions execution name, when the state
// machine passes it in the input) or else the Lambda request ID from ctx.
// Without either, logger is stored unchanged.
func WithLambda(ctx context.Context, logger *slog.Logger, execution string) context.Context {
	if execution == "" {
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			execution = lc.AwsRequestID
		}
	}
	if execution != "" {
		logger = logger.With("execution", execution)
	}
	return Into(ctx, logger)
}
