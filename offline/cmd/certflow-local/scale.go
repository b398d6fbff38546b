package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/certflow/certflow/offline/scale"
)

// scaleRun is `certflow-local scale`: the scale run, its table on stdout
// and, with -report (or SCALE_REPORT), its JSON in a file. It fails when an
// invariant does not hold.
func scaleRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	var cfg scale.Config
	fs.IntVar(&cfg.N, "n", 500, "new domains requested at once")
	fs.IntVar(&cfg.Renewals, "renewals", 0, "certificates due for renewal meanwhile (0: n/10)")
	fs.StringVar(&cfg.Budget, "budget", scale.DefaultBudget, "compressed new-order budget, limit/window")
	report := fs.String("report", os.Getenv("SCALE_REPORT"), "write the report as JSON to this file")
	logFile := fs.String("log", ".cache/scale.log", "the offline system's output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logs, err := os.Create(*logFile)
	if err != nil {
		return err
	}
	defer logs.Close()
	cfg.Logs, cfg.Progress = logs, os.Stdout
	fmt.Printf("==> scale run: %d new domains, budget %s (log: %s)\n", cfg.N, cfg.Budget, *logFile)
	rep, err := scale.Run(ctx, cfg)
	if err != nil {
		return err
	}
	return finish("scale", rep, *report)
}
