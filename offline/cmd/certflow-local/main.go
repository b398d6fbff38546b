// Command certflow-local runs certflow offline.
//
//	certflow-local run            the whole system in the foreground (make run)
//	certflow-local demo           the main job end to end, then stop (make demo)
//	certflow-local validate-asl   asl-validator on every state machine of template.yaml
//	certflow-local scale          N new domains at once against a compressed budget (make scale)
//	certflow-local chaos          faults injected under load, invariants checked (make chaos)
//
// Every port can be overridden with a flag (see -h); defaults are the
// documented ones (API 8080, DynamoDB Local 8000, Lambda 3001, Step Functions
// 8083, moto 5000, Pebble 14000/15000, challtestsrv 8053/8055, HTTP-01 5002).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/deploy"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = run(ctx, os.Args[2:])
	case "demo":
		err = demo(ctx, os.Args[2:])
	case "validate-asl":
		err = validateASL(ctx)
	case "scale":
		err = scaleRun(ctx, os.Args[2:])
	case "chaos":
		err = chaosRun(ctx, os.Args[2:])
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "certflow-local:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: certflow-local run|demo|validate-asl|scale|chaos [flags]")
}

// runFlags are the flags of `run` (and of the system the demo starts).
type runFlags struct {
	ports    offline.Ports
	validity time.Duration
	wait     time.Duration
	sweep    time.Duration
	grace    time.Duration
	offboard time.Duration
	logFile  string
	maxFail  string
}

func (f *runFlags) register(fs *flag.FlagSet) {
	p := &f.ports
	*p = offline.DefaultPorts
	fs.IntVar(&p.API, "api-port", p.API, "HTTP API (certificates, /sni, HTTP-01 path)")
	fs.IntVar(&p.DynamoDB, "dynamodb-port", p.DynamoDB, "DynamoDB Local")
	fs.IntVar(&p.Lambda, "lambda-port", p.Lambda, "local Lambda Invoke API")
	fs.IntVar(&p.SFN, "sfn-port", p.SFN, "local Step Functions API")
	fs.IntVar(&p.Moto, "moto-port", p.Moto, "moto_server (KMS, EventBridge, SQS)")
	fs.IntVar(&p.Pebble, "pebble-port", p.Pebble, "Pebble ACME directory")
	fs.IntVar(&p.PebbleManagement, "pebble-management-port", p.PebbleManagement, "Pebble management API")
	fs.IntVar(&p.DNS, "dns-port", p.DNS, "challtestsrv DNS")
	fs.IntVar(&p.ChallSrvManagement, "challtestsrv-port", p.ChallSrvManagement, "challtestsrv management API")
	fs.IntVar(&p.HTTP01, "http01-port", p.HTTP01, "where Pebble validates HTTP-01")
	fs.IntVar(&p.PebbleTLSALPN, "tlsalpn-port", p.PebbleTLSALPN, "Pebble's TLS-ALPN-01 port")
	fs.DurationVar(&f.validity, "validity", 5*time.Minute, "lifetime of offline certificates (short, so renewals happen within minutes)")
	fs.DurationVar(&f.wait, "wait", 2*time.Second, "every Wait state and Retry interval lasts this long offline (0: real waits)")
	fs.DurationVar(&f.sweep, "sweep", time.Minute, "how often the sweeper runs")
	fs.DurationVar(&f.grace, "grace", 30*time.Second, "how long past the time a domain should need attention the reconciler leaves it alone: a renewal to its TTL timer, an execution to act (CERTFLOW_DUE_GRACE)")
	fs.DurationVar(&f.offboard, "offboard-after", 10*time.Minute, "how long a domain that moved away stays quarantined before the sweeper offboards it (CERTFLOW_OFFBOARD_AFTER; 7 days in AWS)")
	fs.StringVar(&f.logFile, "log", "", "write engine and function logs to this file instead of stdout")
	fs.StringVar(&f.maxFail, "max-failures", "", "override MaxConsecutiveFailures of template.yaml")
}

func (f *runFlags) config(logs io.Writer) deploy.Config {
	cfg := deploy.Config{
		Ports:               f.ports,
		CertificateValidity: f.validity,
		WaitOverride:        f.wait,
		SweepEvery:          f.sweep,
		DueGrace:            f.grace,
		OffboardAfter:       f.offboard,
		DynamoDBOnDisk:      true,
		Logs:                logs,
		FunctionLogger:      slog.New(slog.NewJSONHandler(logs, nil)),
	}
	if f.maxFail != "" {
		cfg.Params = map[string]string{"MaxConsecutiveFailures": f.maxFail}
	}
	return cfg
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var f runFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	logs := io.Writer(os.Stdout)
	if f.logFile != "" {
		file, err := os.Create(f.logFile)
		if err != nil {
			return err
		}
		defer file.Close()
		logs = file
	}
	fmt.Println("certflow-local: starting the offline stack ...")
	sys, err := deploy.Start(ctx, f.config(logs))
	if err != nil {
		return err
	}
	defer sys.Close()
	sys.Supervise(ctx, func(name string, err error) {
		fmt.Printf("certflow-local: %s ended (%v); starting it again\n", name, err)
	})
	fmt.Println("certflow-local: ready")
	for _, e := range sys.Endpoints() {
		fmt.Printf("  %-30s %s\n", e.Name, e.URL)
	}
	fmt.Printf("  %-30s %s\n", "state machine", sys.StateMachineARN)
	fmt.Printf("  %-30s %s\n", "table", sys.Table)
	fmt.Printf("  %-30s %s\n", "timers table", sys.TimerTable)
	fmt.Printf("  %-30s %s\n", "events (copy of the bus)", sys.EventsQueueURL)
	fmt.Println("certflow-local: Ctrl-C stops everything")
	<-ctx.Done()
	fmt.Println("certflow-local: stopping ...")
	return nil
}
