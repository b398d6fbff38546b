// Command certflow-gateway runs beside an edge proxy and serves it the
// certificate for each TLS handshake from certflow's delivery endpoint,
// cached: Caddy's get_certificate http module, nginx with
// ssl_certificate_by_lua, Prometheus metrics. See internal/gateway and
// docs/edge.md.
//
//	certflow-gateway -backend https://abc.execute-api.eu-west-1.amazonaws.com -listen 127.0.0.1:9180
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/certflow/certflow/internal/gateway"
)

func main() {
	cfg, err := gateway.ParseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "certflow-gateway:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := gateway.Run(ctx, cfg, logger); err != nil {
		logger.Error("certflow-gateway failed", slog.Any("error", err))
		stop()
		os.Exit(1)
	}
}
