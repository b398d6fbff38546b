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
	fmt.Print(rep.Table())
	if *report != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*report, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if err := rep.OK(); err != nil {
		return fmt.Errorf("chaos run failed: %w", err)
	}
	fmt.Println("==> chaos run: every invariant holds")
	return nil
}
