// Package logging sets up certflow's structured JSON logs and carries the
// logger in the context: the one convention of the code base. The Lambda
// adapter (package wiring) puts a logger with the invocation's attributes
// (function, request ID, domain, execution) into every invocation's
// context, and code that logs takes it from there with From.
package logging

import (
	"context"
	"io"
	"log/slog"
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
