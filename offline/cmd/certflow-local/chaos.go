package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/certflow/certflow/offline/chaos"
)

// chaosRun is `certflow-local chaos`: the fault-injection run, its table on
// stdout and, with -report (or CHAOS_REPORT), its JSON in a file. It fails
// when an invariant does not hold.
func chaosRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	short := fs.Bool("short", false, "the short version .ci/run runs")
	report := fs.String("report", os.Getenv("CHAOS_REPORT"), "write the report as JSON to this file")
	logFile := fs.String("log", ".cache/chaos.log", "the offline system's output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logs, err := os.Create(*logFile)
	if err != nil {
		return err
	}
	defer logs.Close()
	var cfg chaos.Config
	if *short {
		cfg = chaos.Short()
	}
	cfg.Logs, cfg.Progress = logs, os.Stdout
	fmt.Printf("==> chaos run (log: %s)\n", *logFile)
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		return err
	}
	return finish("chaos", rep, *report)
}

// runReport is what the scale and chaos runs report.
type runReport interface {
	Table() string
	OK() error
}

// finish prints a run's table, writes its JSON to path (when set) and
// fails when an invariant broke.
func finish(name string, rep runReport, path string) error {
	fmt.Print(rep.Table())
	if path != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if err := rep.OK(); err != nil {
		return fmt.Errorf("%s run failed: %w", name, err)
	}
	fmt.Printf("==> %s run: every invariant holds\n", name)
	return nil
}
