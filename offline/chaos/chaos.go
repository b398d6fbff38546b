// Package chaos is the fault-injection run of `make chaos`: the whole
// offline system (package deploy, supervised) with active certificates
// being renewed and new domains being issued, while every fault an
// operator meets is injected at least once: the CA answering 429, 5xx,
// badNonce, resetting connections and dropping the finalize answer after
// it issued (caproxy), the CA frozen, the CA killed (it forgets every
// account and order), DynamoDB Local paused, the Step Functions host
// killed, Lambda invocations throttled, failing or timing out after their
// work, stream records duplicated, dropped and late. The run ends with the
// invariants, each read from the table, the engine and the CA (package
// audit), never from our own logs.
//
// Everything runs on loopback and every phase is bounded in time.
package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"golang.org/x/sync/errgroup"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/audit"
	"github.com/certflow/certflow/offline/caproxy"
	"github.com/certflow/certflow/offline/deploy"
	"github.com/certflow/certflow/offline/lambdaapi"
)

// Config sizes a run. The zero value of a field means its default.
type Config struct {
	// Active is the number of domains with a certificate before the
	// faults begin; their certificates live Validity, so they are renewed
	// during the run. Default 60.
	Active int
	// New is the number of domains requested when the faults begin, a
	// twentieth of them pointed elsewhere. Default 60.
	New int
	// Phase is how long each fault lasts; default 20 seconds.
	Phase time.Duration
	// Validity is the lifetime of the CA's certificates; default 3
	// minutes.
	Validity time.Duration
	// Settle bounds the wait for everything to settle once the faults
	// end; default 5 minutes.
	Settle time.Duration
	// Progress receives a line per phase; nil discards them.
	Progress io.Writer
	// Logs receives the system's output (it is also searched for keys);
	// nil discards it.
	Logs io.Writer
}

// Short is the version `.ci/run` runs: fewer domains, shorter phases.
func Short() Config {
	return Config{Active: 24, New: 24, Phase: 10 * time.Second, Validity: 2 * time.Minute}
}

func (c *Config) defaults() {
	if c.Active <= 0 {
		c.Active = 60
	}
	if c.New <= 0 {
		c.New = 60
	}
	if c.Phase <= 0 {
		c.Phase = 20 * time.Second
	}
	if c.Validity <= 0 {
		c.Validity = 3 * time.Minute
	}
	if c.Settle <= 0 {
		c.Settle = 5 * time.Minute
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logs == nil {
		c.Logs = io.Discard
	}
}

// Row is one line of the fault table.
type Row struct {
	Fault    string `json:"fault"`
	Injected int    `json:"injected"`
	// Affected counts the domains an execution was working on when the
	// fault began (or, for faults spread over the run, all of them).
	Affected int    `json:"affected"`
	Outcome  string `json:"outcome"`
}

// Report is the outcome of a run; its JSON is what CHAOS_REPORT receives.
type Report struct {
	FaultsInjected         map[string]int `json:"faultsInjected"`
	ActiveBefore           int            `json:"activeBefore"`
	Expired                int            `json:"expired"`
	QuarantinedForCAFaults int            `json:"quarantinedForCAFaults"`
	Stuck                  int            `json:"stuck"`
	FailedExecutions       int            `json:"failedExecutions"`
	DuplicateOrders        int            `json:"duplicateOrders"`
	PlaintextKeys          int            `json:"plaintextKeys"`

	Faults []Row `json:"faults"`
	// Requested new domains: how many ended active, and quarantined for
	// a reason of the domain's own.
	Requested          int `json:"requested"`
	RequestedActive    int `json:"requestedActive"`
	RequestedElsewhere int `json:"requestedQuarantinedDomainSide"`
	// Renewals completed during the run.
	Renewals int `json:"renewals"`
	// RecoverySeconds runs from the CA coming back (its restart) to every
	// renewal done (no certificate past its renewal time and the grace).
	RecoverySeconds float64 `json:"recoverySeconds"`
	// OrdersPerCertificate is the most orders the CA saw for one set of
	// names per certificate it issued for them.
	OrdersPerCertificate float64 `json:"ordersPerCertificate"`
	// OrdersInFlight are the orders still being worked on as the run
	// ends (renewals keep starting): counted neither above nor as
	// abandoned.
	OrdersInFlight int `json:"ordersInFlight"`
	// OrdersWithoutCertificate are the other orders that gave no
	// certificate, by why: "invalid" (a challenge failed), "lost with the
	// CA" (placed before a restart of it), "abandoned".
	OrdersWithoutCertificate map[string]int `json:"ordersWithoutCertificate"`
	Restarts                 []string       `json:"restarts"`
	Problems                 []string       `json:"problems,omitempty"`
}

// OK reports whether every invariant held.
func (r Report) OK() error {
	var errs []error
	check := func(name string, n int) {
		if n != 0 {
			errs = append(errs, fmt.Errorf("%s: %d", name, n))
		}
	}
	check("expired", r.Expired)
	check("quarantined for CA faults", r.QuarantinedForCAFaults)
	check("stuck", r.Stuck)
	check("failed executions", r.FailedExecutions)
	check("duplicate orders", r.DuplicateOrders)
	check("plaintext keys", r.PlaintextKeys)
	for _, p := range r.Problems {
		errs = append(errs, errors.New(p))
	}
	return errors.Join(errs...)
}

// Table renders the report for a person.
func (r Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-74s %8s %9s  %s\n", "fault", "injected", "affected", "outcome")
	for _, row := range r.Faults {
		fmt.Fprintf(&b, "  %-74s %8d %9d  %s\n", row.Fault, row.Injected, row.Affected, row.Outcome)
	}
	fmt.Fprintf(&b, "\n  invariants (read from the table, the engine and the CA):\n")
	row := func(k string, v any) { fmt.Fprintf(&b, "  %-46s %v\n", k, v) }
	row("certificates active before the faults", r.ActiveBefore)
	row("  expired (must be 0)", r.Expired)
	row("  quarantined for a CA-side fault (must be 0)", r.QuarantinedForCAFaults)
	row("domains requested during the faults", fmt.Sprintf("%d: %d active, %d quarantined for their own reason", r.Requested, r.RequestedActive, r.RequestedElsewhere))
	row("stuck (must be 0)", r.Stuck)
	row("executions failed (must be 0)", r.FailedExecutions)
	row("orders abandoned for a second one (must be 0)", r.DuplicateOrders)
	row("plaintext private keys anywhere (must be 0)", r.PlaintextKeys)
	row("renewals completed", r.Renewals)
	row("CA back to every renewal done", fmt.Sprintf("%.0fs", r.RecoverySeconds))
	row("orders the CA saw per certificate, max", fmt.Sprintf("%.2f", r.OrdersPerCertificate))
	row("orders in flight as the run ends", r.OrdersInFlight)
	row("orders that gave no certificate", counts(r.OrdersWithoutCertificate))
	row("components restarted by the supervisor", strings.Join(r.Restarts, ", "))
	return b.String()
}

// Run runs the chaos run.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg.defaults()
	ctx, cancel := context.WithTimeout(ctx, 15*cfg.Phase+cfg.Settle+10*time.Minute)
	defer cancel()
	logs := &searchable{w: cfg.Logs}
	d, err := deploy.Start(ctx, deploy.Config{
		DynamoDBOnDisk:      true,
		CertificateValidity: cfg.Validity,
		WaitOverride:        200 * time.Millisecond,
		SweepEvery:          5 * time.Second,
		DueGrace:            15 * time.Second,
		OrderBudget:         "60/10s",
		CAProxy:             true,
		NoEventsTap:         true,
		Logs:                logs,
		Metrics:             logs,
		FunctionLogger:      slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		return Report{}, err
	}
	defer d.Close()
	r := &run{cfg: cfg, d: d, db: dynamodb.NewFromConfig(d.Stack.AWS), sfn: sfn.NewFromConfig(d.Stack.AWS), logs: logs,
		rep: Report{FaultsInjected: map[string]int{}}}
	d.Supervise(ctx, func(name string, err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.rep.Restarts = append(r.rep.Restarts, name)
		r.logf("  supervisor: %s ended (%v) and is started again", name, err)
	})
	return r.run(ctx)
}

type run struct {
	cfg  Config
	d    *deploy.Deployment
	db   *dynamodb.Client
	sfn  *sfn.Client
	logs *searchable

	mu         sync.Mutex
	rep        Report
	caRestarts []time.Time
	failed     map[string]bool // failed executions seen, by ARN (the engine forgets them when killed)
}

func (r *run) logf(format string, args ...any) { fmt.Fprintf(r.cfg.Progress, format+"\n", args...) }

func (r *run) run(ctx context.Context) (Report, error) {
	r.failed = map[string]bool{}
	active := names("active", r.cfg.Active)
	fresh := names("new", r.cfg.New)
	elsewhere := fresh[:max(1, len(fresh)/20)]
	r.logf("warm-up: %d domains get certificates that live %s", len(active), r.cfg.Validity)
	if err := r.request(ctx, active); err != nil {
		return Report{}, err
	}
	if _, err := r.waitFor(ctx, 5*time.Minute, func(now map[string]audit.Domain) bool { return countActive(now, active) == len(active) }); err != nil {
		return Report{}, err
	}
	r.rep.ActiveBefore = len(active)
	start := time.Now()

	for _, n := range elsewhere {
		if err := r.d.Stack.PointAt(ctx, n, offline.ElsewhereAddress); err != nil {
			return Report{}, err
		}
	}
	// The last ones are requested right before the Step Functions host is
	// killed, so it dies with Issue steps in flight.
	late := fresh[len(fresh)-max(2, len(fresh)/6):]
	r.logf("faults begin: %d new domains requested (%d pointed elsewhere), %d more just before the Step Functions host is killed; stream and Lambda faults for the whole run",
		len(fresh)-len(late), len(elsewhere), len(late))
	if err := r.request(ctx, fresh[:len(fresh)-len(late)]); err != nil {
		return Report{}, err
	}
	grace := 15 * time.Second
	r.d.SetStreamFaults(deploy.StreamFaults{Duplicate: 0.2, Drop: 0.15, Delay: 0.15, DelayBy: 2 * grace})
	r.d.Lambda().SetFaults(lambdaapi.Faults{Rate: 0.05})
	all := append(append([]string(nil), active...), fresh...)

	phases := []struct {
		name   string
		before func(ctx context.Context) error // sets the phase up
		inject func(ctx context.Context) (int, error)
	}{
		{"CA answers 429, 500/503, badNonce, resets, drops finalize answers (caproxy)", nil, r.caFaults},
		{"CA frozen (every request held)", nil, r.caFrozen},
		{"CA killed and restarted (accounts and orders forgotten)", nil, r.caKilled},
		{"DynamoDB Local paused (SIGSTOP)", nil, r.dynamoPaused},
		{"Step Functions host killed and restarted", func(ctx context.Context) error { return r.issuing(ctx, late) }, r.sfnKilled},
	}
	for _, ph := range phases {
		if ph.before != nil {
			if err := ph.before(ctx); err != nil {
				return Report{}, fmt.Errorf("%s: %w", ph.name, err)
			}
		}
		affected, err := r.working(ctx, all)
		if err != nil {
			return Report{}, err
		}
		r.logf("%6.0fs  %s", time.Since(start).Seconds(), ph.name)
		r.countFailed(ctx)
		n, err := ph.inject(ctx)
		if err != nil {
			return Report{}, fmt.Errorf("%s: %w", ph.name, err)
		}
		r.rep.Faults = append(r.rep.Faults, Row{Fault: ph.name, Injected: n, Affected: affected})
	}
	r.d.SetStreamFaults(deploy.StreamFaults{})
	r.d.Lambda().SetFaults(lambdaapi.Faults{})
	r.logf("%6.0fs  faults end; waiting for everything to settle", time.Since(start).Seconds())

	var caBack time.Time
	if len(r.caRestarts) > 0 {
		caBack = r.caRestarts[len(r.caRestarts)-1]
	}
	settled := func(now map[string]audit.Domain) bool {
		for _, n := range fresh {
			if s := now[n].Status; s != certstore.StatusActive && s != certstore.StatusQuarantined {
				return false
			}
		}
		return countActive(now, active) == len(active) && r.overdue(now, all, grace) == 0
	}
	end, err := r.waitFor(ctx, r.cfg.Settle, settled)
	if err != nil {
		return Report{}, err
	}
	if !caBack.IsZero() {
		r.rep.RecoverySeconds = time.Since(caBack).Seconds()
	}
	r.countFailed(ctx)
	return r.audit(ctx, start, active, fresh, elsewhere, end)
}

// audit fills in the invariants.
func (r *run) audit(ctx context.Context, start time.Time, active, fresh, elsewhere []string, now map[string]audit.Domain) (Report, error) {
	rep := &r.rep
	at := time.Now()
	for _, n := range active {
		d := now[n]
		if d.Status != certstore.StatusActive || !d.NotAfter.After(at) {
			rep.Expired++
		}
	}
	rep.Requested = len(fresh)
	for _, n := range fresh {
		switch d := now[n]; d.Status {
		case certstore.StatusActive:
			rep.RequestedActive++
		case certstore.StatusQuarantined:
			if audit.DomainSide(d.QuarantineReason) {
				rep.RequestedElsewhere++
			}
		default:
			rep.Stuck++
		}
	}
	for _, n := range active {
		if now[n].Status != certstore.StatusActive && now[n].Status != certstore.StatusQuarantined {
			rep.Stuck++
		}
	}
	for _, d := range now {
		if d.Status == certstore.StatusQuarantined && !audit.DomainSide(d.QuarantineReason) {
			rep.QuarantinedForCAFaults++
		}
	}
	for _, n := range elsewhere {
		if now[n].Status != certstore.StatusQuarantined {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s, pointed elsewhere, is %s", n, now[n].Status))
		}
	}
	rep.FailedExecutions = len(r.failed)

	p := r.d.CAProxy
	abandoned := audit.Abandoned(p, start, r.caRestarts)
	rep.DuplicateOrders = len(abandoned)
	for _, o := range abandoned {
		r.logf("  abandoned order %s for %v at %s", o.URL, o.Identifiers, o.At.Format(time.TimeOnly))
	}
	orders, states := p.Orders(), p.OrderStates()
	rep.OrdersWithoutCertificate = map[string]int{}
	inFlight := audit.InFlight(orders, states)
	rep.OrdersInFlight = len(inFlight)
	perSet, certs := map[string]int{}, map[string]int{}
	for _, o := range orders {
		if inFlight[caproxy.OrderID(o.URL)] {
			continue // a renewal started as the run ends: not yet a certificate
		}
		key := o.IdentifierSet()
		perSet[key]++
		switch state := states[caproxy.OrderID(o.URL)]; {
		case state == "valid":
			certs[key]++
		case state == "invalid":
			rep.OrdersWithoutCertificate["invalid"]++
		case audit.LostWithCA(o, r.caRestarts):
			rep.OrdersWithoutCertificate["lost with the CA"]++
		default:
			rep.OrdersWithoutCertificate["abandoned"]++
		}
	}
	for k, n := range perSet {
		if c := certs[k]; c > 0 {
			rep.OrdersPerCertificate = max(rep.OrdersPerCertificate, float64(n)/float64(c))
		}
		rep.Renewals += max(0, certs[k]-1)
	}

	keys, err := audit.PlaintextKeys(ctx, r.db, r.d.Table)
	if err != nil {
		return *rep, err
	}
	rep.PlaintextKeys = keys + r.logs.count("PRIVATE KEY")
	execs, err := audit.Executions(ctx, r.sfn, r.d.StateMachineARN)
	if err != nil {
		return *rep, err
	}
	var list []sfntypes.ExecutionListItem
	for _, l := range execs {
		list = append(list, l...)
	}
	runs, err := audit.Runs(ctx, r.sfn, list)
	if err != nil {
		return *rep, err
	}
	for _, run := range runs {
		rep.PlaintextKeys += run.KeyLeaks
	}

	rep.FaultsInjected = map[string]int{}
	for k, v := range p.Injected() {
		rep.FaultsInjected["ca:"+k] += v
	}
	for k, v := range r.d.Lambda().Injected() {
		rep.FaultsInjected["lambda:"+string(k)] += v
	}
	for k, v := range r.d.StreamFaultsInjected() {
		rep.FaultsInjected["stream:"+k] += v
	}
	for _, row := range rep.Faults {
		switch {
		case strings.HasPrefix(row.Fault, "CA killed"):
			rep.FaultsInjected["ca:killed"] += row.Injected
		case strings.HasPrefix(row.Fault, "DynamoDB"):
			rep.FaultsInjected["dynamodb:paused"] += row.Injected
		case strings.HasPrefix(row.Fault, "Step Functions"):
			rep.FaultsInjected["stepfunctions:killed"] += row.Injected
		}
	}
	outcome := "recovered: every domain settled, no invariant broken"
	if err := rep.OK(); err != nil {
		outcome = "NOT recovered: " + err.Error()
	}
	for i := range rep.Faults {
		rep.Faults[i].Outcome = outcome
	}
	spread := []struct{ name, prefix string }{
		{"Lambda invocations throttled, failing, timing out after their work (5%)", "lambda:"},
		{"stream records duplicated, dropped, delivered past the grace", "stream:"},
	}
	for _, s := range spread {
		n := 0
		for k, v := range rep.FaultsInjected {
			if strings.HasPrefix(k, s.prefix) {
				n += v
			}
		}
		rep.Faults = append(rep.Faults, Row{Fault: s.name, Injected: n, Affected: len(active) + len(fresh), Outcome: outcome})
	}
	return *rep, nil
}

// caFaults injects the CA's own failures through caproxy for a phase.
func (r *run) caFaults(ctx context.Context) (int, error) {
	p := r.d.CAProxy
	before := len(p.Injections())
	err := p.SetFaults(caproxy.Faults{Rules: []caproxy.Rule{
		{Kind: caproxy.RateLimited, Ops: []caproxy.Op{caproxy.OpNewOrder}, Probability: 0.25, RetryAfter: 3 * time.Second},
		{Kind: caproxy.ServerError, Ops: []caproxy.Op{caproxy.OpOrder, caproxy.OpAuthz, caproxy.OpNewOrder}, Probability: 0.1, Status: 503},
		{Kind: caproxy.ServerError, Ops: []caproxy.Op{caproxy.OpChallenge, caproxy.OpCertificate}, Probability: 0.1, Status: 500},
		{Kind: caproxy.BadNonce, Probability: 0.1},
		{Kind: caproxy.Reset, Probability: 0.05},
		{Kind: caproxy.DropResponse, Ops: []caproxy.Op{caproxy.OpFinalize}, Count: 5},
	}})
	if err != nil {
		return 0, err
	}
	sleep(ctx, r.cfg.Phase)
	if err := p.SetFaults(caproxy.Faults{}); err != nil {
		return 0, err
	}
	return len(p.Injections()) - before, nil
}

// caFrozen holds every request to the CA for a phase.
func (r *run) caFrozen(ctx context.Context) (int, error) {
	r.d.CAProxy.Freeze(r.cfg.Phase)
	sleep(ctx, r.cfg.Phase)
	r.d.CAProxy.Thaw()
	return 1, nil
}

// caKilled kills Pebble; the supervisor starts it again, empty.
func (r *run) caKilled(ctx context.Context) (int, error) {
	p := r.d.Stack.Process("pebble")
	if p == nil {
		return 0, errors.New("no Pebble process")
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return 0, err
	}
	for q := r.d.Stack.Process("pebble"); q == nil || q == p; q = r.d.Stack.Process("pebble") {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.mu.Lock()
	r.caRestarts = append(r.caRestarts, time.Now())
	r.mu.Unlock()
	sleep(ctx, r.cfg.Phase)
	return 1, nil
}

// dynamoPaused stops DynamoDB Local for half a phase.
func (r *run) dynamoPaused(ctx context.Context) (int, error) {
	p := r.d.Stack.Process("DynamoDB Local")
	if p == nil {
		return 0, errors.New("no DynamoDB Local process")
	}
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		return 0, err
	}
	sleep(ctx, r.cfg.Phase/2)
	if err := p.Signal(syscall.SIGCONT); err != nil {
		return 0, err
	}
	sleep(ctx, r.cfg.Phase/2)
	return 1, nil
}

// sfnKilled kills the Step Functions host with every execution it runs;
// the supervisor starts it again, empty.
func (r *run) sfnKilled(ctx context.Context) (int, error) {
	p := r.d.StepFunctionsHost()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return 0, err
	}
	for r.d.StepFunctionsHost() == p {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	sleep(ctx, r.cfg.Phase)
	return 1, nil
}

// issuing requests domains and returns once the CA has seen a newOrder for
// one of them (an Issue step is in flight), or after 10 s.
func (r *run) issuing(ctx context.Context, domains []string) error {
	if err := r.request(ctx, domains); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, n := range domains {
		want[n] = true
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		for _, o := range r.d.CAProxy.NewOrders() {
			if slices.ContainsFunc(o.Identifiers, func(id string) bool { return want[id] }) {
				return nil
			}
		}
		if sleep(ctx, 50*time.Millisecond); ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// countFailed remembers the failed executions the engine knows now: a
// killed engine forgets them.
func (r *run) countFailed(ctx context.Context) {
	execs, err := audit.Executions(ctx, r.sfn, r.d.StateMachineARN)
	if err != nil {
		return
	}
	for _, st := range []sfntypes.ExecutionStatus{sfntypes.ExecutionStatusFailed, sfntypes.ExecutionStatusTimedOut, sfntypes.ExecutionStatusAborted} {
		for _, e := range execs[st] {
			r.failed[*e.ExecutionArn] = true
		}
	}
}

// working counts the domains an execution works on now.
func (r *run) working(ctx context.Context, domains []string) (int, error) {
	now, err := audit.Domains(ctx, r.db, r.d.Table)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range domains {
		if now[d].Execution != "" {
			n++
		}
	}
	return n, nil
}

// overdue counts active domains whose renewal should be done by now: past
// their renewal time by the grace and a margin for the renewal itself.
func (r *run) overdue(now map[string]audit.Domain, domains []string, grace time.Duration) int {
	n := 0
	limit := time.Now().Add(-2*grace - 30*time.Second)
	for _, d := range domains {
		if x := now[d]; x.Status == certstore.StatusActive && x.RenewAt.Before(limit) {
			n++
		}
	}
	return n
}

// waitFor polls the table until done or the bound passes, then returns the
// table.
func (r *run) waitFor(ctx context.Context, bound time.Duration, done func(map[string]audit.Domain) bool) (map[string]audit.Domain, error) {
	deadline := time.Now().Add(bound)
	for {
		now, err := audit.Domains(ctx, r.db, r.d.Table)
		if err != nil && ctx.Err() != nil {
			return nil, err
		}
		if err == nil && (done(now) || time.Now().After(deadline)) {
			return now, nil
		}
		sleep(ctx, 2*time.Second)
	}
}

func countActive(now map[string]audit.Domain, domains []string) int {
	n := 0
	for _, d := range domains {
		if now[d].Status == certstore.StatusActive {
			n++
		}
	}
	return n
}

func names(kind string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d.chaos.customer.example", kind, i)
	}
	sort.Strings(out)
	return out
}

// request POSTs each domain to the API, as a platform would, retrying
// what the faults make fail.
func (r *run) request(ctx context.Context, domains []string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	client := &http.Client{Timeout: 30 * time.Second}
	for _, n := range domains {
		g.Go(func() error {
			body, _ := json.Marshal(map[string]any{"domain": n})
			var last error
			for range 10 {
				req, err := http.NewRequestWithContext(gctx, http.MethodPost, r.d.APIURL+"/certificates", bytes.NewReader(body))
				if err != nil {
					return err
				}
				req.Header.Set("content-type", "application/json")
				resp, err := client.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK {
						return nil
					}
					err = fmt.Errorf("POST %s: %s", n, resp.Status)
				}
				last = err
				sleep(gctx, time.Second)
			}
			return last
		})
	}
	return g.Wait()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// searchable passes writes on and counts a string in them.
type searchable struct {
	mu  sync.Mutex
	w   io.Writer
	hit map[string]int
	buf []byte
}

func (s *searchable) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Keep the tail of the last write so a match split across writes is
	// found.
	data := append(s.buf, p...)
	if s.hit == nil {
		s.hit = map[string]int{}
	}
	s.hit["PRIVATE KEY"] += bytes.Count(data, []byte("PRIVATE KEY")) - bytes.Count(s.buf, []byte("PRIVATE KEY"))
	if len(data) > 32 {
		s.buf = append(s.buf[:0], data[len(data)-32:]...)
	} else {
		s.buf = append(s.buf[:0], data...)
	}
	return s.w.Write(p)
}

func (s *searchable) count(what string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hit[what]
}

// counts is a line for the table: "none", or each cause and its count.
func counts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
