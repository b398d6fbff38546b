// Package scale is the scale run of `make scale`: the whole offline system
// (package deploy) with a compressed clock, N new domains requested at
// once (a share of them pointed elsewhere) while a batch of existing
// certificates comes due for renewal, judged from the table, the engine's
// executions and the orders the CA saw (package audit).
//
// The clock is compressed three ways: the new-order budget is scaled down
// (say 40 per 10 s instead of 300 per 3 h), waits of a number of seconds
// (backoff) last a fraction of a second, and Pebble validates at once.
// Waits until an order slot's time are real: they are the budget.
package scale

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/sync/errgroup"

	"github.com/certflow/certflow/internal/budget"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/audit"
	"github.com/certflow/certflow/offline/capacity"
	"github.com/certflow/certflow/offline/caproxy"
	"github.com/certflow/certflow/offline/deploy"
)

// Config sizes a run. The zero value of a field means its default.
type Config struct {
	// N is the number of new domains requested at once; default 500.
	N int
	// Renewals is the number of existing certificates that come due for
	// renewal while the new domains are issued; default N/10.
	Renewals int
	// Elsewhere is the share of new domains pointed elsewhere (they must
	// end quarantined, with no order); default 0.05.
	Elsewhere float64
	// Budget is the compressed new-order budget, "limit/window"; default
	// DefaultBudget.
	Budget string
	// Timeout bounds the whole run; default 15 minutes plus the time the
	// budget needs for N.
	Timeout time.Duration
	// Progress receives a line every few seconds; nil discards them.
	Progress io.Writer
	// Logs receives the engines' and functions' output; nil discards it.
	Logs io.Writer
}

// dueGrace is the reconciler's grace in a run (CERTFLOW_DUE_GRACE).
const dueGrace = 30 * time.Second

// DefaultBudget is the compressed budget of a run: what this 2-core
// machine issues with room to spare (about 4 orders a second), so that the
// budget, not the machine, sets the pace.
const DefaultBudget = "40/10s"

// Report is the outcome of a run; its JSON is what SCALE_REPORT receives.
type Report struct {
	Requested          int            `json:"requested"`
	Active             int            `json:"active"`
	Quarantined        int            `json:"quarantined"`
	QuarantinedBy      map[string]int `json:"quarantinedByReason"`
	Stuck              int            `json:"stuck"`
	FailedExecutions   int            `json:"failedExecutions"`
	MaxOrdersPerDomain int            `json:"maxOrdersPerDomain"`
	MaxOrdersInWindow  int            `json:"maxOrdersInWindow"`
	BudgetPerWindow    int            `json:"budgetPerWindow"`
	BudgetWindow       string         `json:"budgetWindow"`
	TransitionsMean    float64        `json:"transitionsMean"`
	TransitionsMax     int            `json:"transitionsMax"`
	WallOverIdeal      float64        `json:"wallOverIdeal"`

	// Renewals due during the run, and how many were renewed.
	Renewals int `json:"renewals"`
	Renewed  int `json:"renewed"`
	// Executions of the run, and the mean transitions of those that
	// issued a new certificate and of those that renewed one.
	Executions             int     `json:"executions"`
	TransitionsPerIssuance float64 `json:"transitionsPerIssuance"`
	TransitionsPerRenewal  float64 `json:"transitionsPerRenewal"`
	OrdersPlaced           int     `json:"ordersPlaced"`
	WallSeconds            float64 `json:"wallSeconds"`
	// RenewalSeconds is when the last renewal due at the burst was done.
	RenewalSeconds      float64  `json:"renewalSeconds"`
	IdealSeconds        float64  `json:"idealSeconds"`
	ReadUnitsPerDomain  float64  `json:"readUnitsPerDomain"`
	WriteUnitsPerDomain float64  `json:"writeUnitsPerDomain"`
	StuckDomains        []string `json:"stuckDomains,omitempty"`
	// OrderedTwice describes each certificate (audit.Orders) the CA saw
	// more than one order for: every order's time, profile and state.
	OrderedTwice []string `json:"orderedTwice,omitempty"`
}

// OK reports whether the run met every invariant.
func (r Report) OK() error {
	var errs []error
	if r.Stuck != 0 {
		errs = append(errs, fmt.Errorf("%d domains stuck (%v)", r.Stuck, r.StuckDomains))
	}
	if r.FailedExecutions != 0 {
		errs = append(errs, fmt.Errorf("%d executions failed", r.FailedExecutions))
	}
	if r.MaxOrdersPerDomain > 1 {
		errs = append(errs, fmt.Errorf("a certificate was ordered %d times: %s", r.MaxOrdersPerDomain, strings.Join(r.OrderedTwice, "; ")))
	}
	if r.MaxOrdersInWindow > r.BudgetPerWindow {
		errs = append(errs, fmt.Errorf("%d new orders in one window, over the budget of %d", r.MaxOrdersInWindow, r.BudgetPerWindow))
	}
	if r.Renewed != r.Renewals {
		errs = append(errs, fmt.Errorf("%d of %d renewals done", r.Renewed, r.Renewals))
	}
	return errors.Join(errs...)
}

// Table renders the report for a person.
func (r Report) Table() string {
	var b strings.Builder
	row := func(k string, v any) { fmt.Fprintf(&b, "  %-44s %v\n", k, v) }
	row("domains requested", r.Requested)
	row("active", r.Active)
	reasons := make([]string, 0, len(r.QuarantinedBy))
	for k, v := range r.QuarantinedBy {
		reasons = append(reasons, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(reasons)
	row("quarantined (reason)", fmt.Sprintf("%d (%s)", r.Quarantined, strings.Join(reasons, ", ")))
	row("stuck (must be 0)", r.Stuck)
	row("executions failed (must be 0)", r.FailedExecutions)
	row("renewals due / renewed", fmt.Sprintf("%d / %d (all done after %.0fs)", r.Renewals, r.Renewed, r.RenewalSeconds))
	row("orders placed at the CA", r.OrdersPlaced)
	row("orders per certificate, max (must be 1)", r.MaxOrdersPerDomain)
	row("new orders in any budget window, max", fmt.Sprintf("%d (budget %d per %s)", r.MaxOrdersInWindow, r.BudgetPerWindow, r.BudgetWindow))
	row("transitions per execution (mean, max)", fmt.Sprintf("%.1f, %d", r.TransitionsMean, r.TransitionsMax))
	row("transitions per issuance / per renewal", fmt.Sprintf("%.1f / %.1f", r.TransitionsPerIssuance, r.TransitionsPerRenewal))
	row("new domains settled / ideal time", fmt.Sprintf("%.0fs / %.0fs = %.2f", r.WallSeconds, r.IdealSeconds, r.WallOverIdeal))
	row("DynamoDB units per domain (read, write)", fmt.Sprintf("%.1f, %.1f", r.ReadUnitsPerDomain, r.WriteUnitsPerDomain))
	return b.String()
}

func (c *Config) defaults() (limit int, window time.Duration, err error) {
	if c.N <= 0 {
		c.N = 500
	}
	if c.Renewals < 0 {
		c.Renewals = 0
	} else if c.Renewals == 0 {
		c.Renewals = max(1, c.N/10)
	}
	if c.Elsewhere <= 0 {
		c.Elsewhere = 0.05
	}
	if c.Budget == "" {
		c.Budget = DefaultBudget
	}
	limit, window, err = budget.ParseSpec(c.Budget)
	if err != nil {
		return 0, 0, err
	}
	if c.Timeout <= 0 {
		c.Timeout = 15*time.Minute + time.Duration(c.N/limit+1)*(window+budget.DefaultMargin(window))
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return limit, window, nil
}

// Run runs the scale run and returns its report; an error means the run
// could not be carried out (the report's OK says whether it passed).
func Run(ctx context.Context, cfg Config) (Report, error) {
	limit, window, err := cfg.defaults()
	if err != nil {
		return Report{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	logs := cfg.Logs
	if logs == nil {
		logs = io.Discard
	}
	var meter capacity.Meter
	d, err := deploy.Start(ctx, deploy.Config{
		CertificateValidity: 24 * time.Hour,
		WaitOverride:        200 * time.Millisecond,
		SweepEvery:          10 * time.Second,
		DueGrace:            dueGrace,
		OrderBudget:         cfg.Budget,
		CAProxy:             true,
		NoEventsTap:         true,
		ConfigureAWS: func(c *aws.Config) {
			meter.Add(c)
			c.APIOptions = append(c.APIOptions, countCalls)
		},
		Logs:           logs,
		Metrics:        logs,
		FunctionLogger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return Report{}, err
	}
	defer d.Close()
	r := &run{cfg: cfg, d: d, db: dynamodb.NewFromConfig(d.Stack.AWS), sfn: sfn.NewFromConfig(d.Stack.AWS), progress: cfg.Progress}
	return r.run(ctx, limit, window, &meter)
}

type run struct {
	cfg      Config
	d        *deploy.Deployment
	db       *dynamodb.Client
	sfn      *sfn.Client
	progress io.Writer
}

func (r *run) logf(format string, args ...any) { fmt.Fprintf(r.progress, format+"\n", args...) }

func (r *run) run(ctx context.Context, limit int, window time.Duration, meter *capacity.Meter) (Report, error) {
	// Warm-up: the certificates that will come due, issued at the
	// budget's pace; the time one takes is the ideal's unit.
	renewals := names("renew", r.cfg.Renewals)
	r.logf("warm-up: issuing %d certificates to renew later", len(renewals))
	warm := time.Now()
	if err := r.request(ctx, renewals); err != nil {
		return Report{}, err
	}
	before, _, _, err := r.waitSettled(ctx, renewals, nil, nil, warm)
	if err != nil {
		return Report{}, err
	}
	issueTime := time.Since(warm)
	if len(renewals) > limit {
		issueTime = 5 * time.Second
	}
	if err := r.waitBudgetIdle(ctx, window); err != nil {
		return Report{}, err
	}

	// The burst: N new domains at once, and the renewals made due.
	fresh := names("new", r.cfg.N)
	elsewhere := fresh[:int(math.Round(float64(len(fresh))*r.cfg.Elsewhere))]
	for _, n := range elsewhere {
		if err := r.d.Stack.PointAt(ctx, n, offline.ElsewhereAddress); err != nil {
			return Report{}, err
		}
	}
	meter.Reset()
	start := time.Now()
	r.logf("burst: %d new domains requested at once (%d pointed elsewhere), %d renewals due", len(fresh), len(elsewhere), len(renewals))
	if err := r.makeDue(ctx, renewals, before); err != nil {
		return Report{}, err
	}
	if err := r.request(ctx, fresh); err != nil {
		return Report{}, err
	}
	after, wall, renewWall, err := r.waitSettled(ctx, fresh, renewals, before, start)
	if err != nil {
		return Report{}, err
	}
	r.logf("new domains settled in %s, renewals done in %s; auditing", wall.Round(time.Second), renewWall.Round(time.Second))

	// The budget allows the orders of the domains pointed at the edge at
	// one ring of slots per window plus margin.
	orders := len(fresh) - len(elsewhere)
	step := window + budget.DefaultMargin(window)
	ideal := time.Duration(max(0, (orders+limit-1)/limit-1))*step + issueTime
	rep := Report{Requested: len(fresh), QuarantinedBy: map[string]int{}, BudgetPerWindow: limit, BudgetWindow: window.String(),
		Renewals: len(renewals), WallSeconds: wall.Seconds(), RenewalSeconds: renewWall.Seconds(), IdealSeconds: ideal.Seconds(), WallOverIdeal: wall.Seconds() / ideal.Seconds()}
	for _, n := range fresh {
		switch d := after[n]; d.Status {
		case certstore.StatusActive:
			rep.Active++
		case certstore.StatusQuarantined:
			rep.Quarantined++
			rep.QuarantinedBy[d.QuarantineReason]++
		default:
			rep.Stuck++
			rep.StuckDomains = append(rep.StuckDomains, n)
		}
	}
	for _, n := range renewals {
		if after[n].Status == certstore.StatusActive && after[n].Serial != before[n].Serial {
			rep.Renewed++
		}
	}
	if err := r.auditEngine(ctx, &rep, start); err != nil {
		return rep, err
	}
	p := r.d.CAProxy
	rep.MaxOrdersPerDomain = audit.MaxOrdersPerCertificate(p, start)
	rep.MaxOrdersInWindow = p.MaxOrdersInWindow(window)
	states := p.OrderStates()
	for set, os := range audit.Orders(p, start) {
		rep.OrdersPlaced += len(os)
		if len(os) < 2 {
			continue
		}
		parts := make([]string, len(os))
		for i, o := range os {
			parts[i] = fmt.Sprintf("%s replaces=%q profile=%q state=%s", o.At.Format("15:04:05.000"), o.Replaces, o.Profile, states[caproxy.OrderID(o.URL)])
		}
		rep.OrderedTwice = append(rep.OrderedTwice, set+": "+strings.Join(parts, ", "))
	}
	r.logf("AWS calls of the functions, by service and operation:\n%s", callCounts())
	usage := meter.Usage()
	r.logf("DynamoDB capacity of the burst, by table and operation:\n%s", capacity.Format(usage))
	total := capacity.Total(usage)
	if n := len(fresh) + len(renewals); n > 0 {
		rep.ReadUnitsPerDomain, rep.WriteUnitsPerDomain = total.Read/float64(n), total.Write/float64(n)
	}
	return rep, nil
}

// auditEngine counts failed executions and the transitions of the run's
// executions.
func (r *run) auditEngine(ctx context.Context, rep *Report, since time.Time) error {
	all, err := audit.Executions(ctx, r.sfn, r.d.StateMachineARN)
	if err != nil {
		return err
	}
	rep.FailedExecutions = len(all[sfntypes.ExecutionStatusFailed]) + len(all[sfntypes.ExecutionStatusTimedOut]) + len(all[sfntypes.ExecutionStatusAborted])
	var runs []sfntypes.ExecutionListItem
	for _, list := range all {
		for _, e := range list {
			if !e.StartDate.Before(since) {
				runs = append(runs, e)
			}
		}
	}
	histories, err := audit.Runs(ctx, r.sfn, runs)
	if err != nil {
		return err
	}
	rep.Executions = len(runs)
	var sum, issued, renewed, nIssued, nRenewed int
	for name, h := range histories {
		sum += h.Transitions
		rep.TransitionsMax = max(rep.TransitionsMax, h.Transitions)
		if h.Last != "CertificateIssued" {
			continue
		}
		if strings.HasPrefix(name, "renew-") {
			renewed += h.Transitions
			nRenewed++
		} else {
			issued += h.Transitions
			nIssued++
		}
	}
	if len(histories) > 0 {
		rep.TransitionsMean = float64(sum) / float64(len(histories))
	}
	if nIssued > 0 {
		rep.TransitionsPerIssuance = float64(issued) / float64(nIssued)
	}
	if nRenewed > 0 {
		rep.TransitionsPerRenewal = float64(renewed) / float64(nRenewed)
	}
	return nil
}

// names returns n domain names of a kind.
func names(kind string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d.scale.customer.example", kind, i)
	}
	return out
}

// request POSTs each domain to the API, 32 at a time, as a platform would.
func (r *run) request(ctx context.Context, domains []string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	client := &http.Client{Timeout: time.Minute}
	for _, n := range domains {
		g.Go(func() error {
			body, _ := json.Marshal(map[string]any{"domain": n, "sans": []string{"www." + n}})
			req, err := http.NewRequestWithContext(gctx, http.MethodPost, r.d.APIURL+"/certificates", bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("content-type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("POST %s: %w", n, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
				return fmt.Errorf("POST %s: %s", n, resp.Status)
			}
			return nil
		})
	}
	return g.Wait()
}

// makeDue brings the renewal of each domain to now, the way the sweeper's
// ARI re-check moves one earlier: the timer expires and TTL, the stream
// and the trigger (or the sweeper) start the renewal.
func (r *run) makeDue(ctx context.Context, domains []string, before map[string]audit.Domain) error {
	store := certstore.New(r.db, r.d.Table, certstore.WithTimerTable(r.d.TimerTable), certstore.WithGrace(dueGrace))
	at := time.Now().Add(2 * time.Second).UTC().Truncate(time.Second)
	for _, n := range domains {
		c, err := store.GetConsistent(ctx, n)
		if err != nil {
			return err
		}
		if err := store.MoveTimer(ctx, n, c.Serial, c.ARICertID, at); err != nil {
			return fmt.Errorf("make %s due: %w", n, err)
		}
	}
	return nil
}

// waitBudgetIdle waits until the warm-up's slots are a window old, so the
// burst starts with a full budget.
func (r *run) waitBudgetIdle(ctx context.Context, window time.Duration) error {
	t := time.NewTimer(window + budget.DefaultMargin(window))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// waitSettled polls the table until every domain of fresh is active or
// quarantined and every domain of renewing has a serial other than the one
// in before, and returns the table then, with when the fresh domains
// settled and when the renewals were done.
func (r *run) waitSettled(ctx context.Context, fresh, renewing []string, before map[string]audit.Domain, start time.Time) (map[string]audit.Domain, time.Duration, time.Duration, error) {
	last := int64(-1)
	var freshDone, renewDone time.Duration
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		now, err := audit.Domains(ctx, r.db, r.d.Table)
		if err != nil {
			return nil, 0, 0, err
		}
		var active, quarantined, waiting, renewed int
		for _, n := range fresh {
			switch now[n].Status {
			case certstore.StatusActive:
				active++
			case certstore.StatusQuarantined:
				quarantined++
			default:
				waiting++
			}
		}
		for _, n := range renewing {
			if now[n].Serial != before[n].Serial {
				renewed++
			}
		}
		if waiting == 0 && freshDone == 0 {
			freshDone = time.Since(start)
		}
		if renewed == len(renewing) && renewDone == 0 {
			renewDone = time.Since(start)
		}
		if s := int64(time.Since(start) / (10 * time.Second)); s != last {
			last = s
			r.logf("  %5.0fs: active %d, quarantined %d, waiting %d; renewed %d of %d", time.Since(start).Seconds(), active, quarantined, waiting, renewed, len(renewing))
		}
		if freshDone > 0 && renewDone > 0 {
			return now, freshDone, renewDone, nil
		}
		select {
		case <-ctx.Done():
			r.logf("  deadline reached with %d waiting and %d of %d renewed", waiting, renewed, len(renewing))
			return now, time.Since(start), time.Since(start), nil
		case <-tick.C:
		}
	}
}

var (
	callsMu sync.Mutex
	calls   = map[string]int{}
)

// countCalls counts the functions' AWS calls by service and operation.
func countCalls(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("countCalls", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		callsMu.Lock()
		calls[awsmiddleware.GetServiceID(ctx)+" "+awsmiddleware.GetOperationName(ctx)]++
		callsMu.Unlock()
		return next.HandleInitialize(ctx, in)
	}), middleware.After)
}

func callCounts() string {
	callsMu.Lock()
	defer callsMu.Unlock()
	var lines []string
	for k, v := range calls {
		lines = append(lines, fmt.Sprintf("%8d %s", v, k))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
