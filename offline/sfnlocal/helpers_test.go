package sfnlocal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/record"
	"github.com/certflow/certflow/internal/validation"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/lambdaapi"
	"github.com/certflow/certflow/offline/offlinetest"
	"github.com/certflow/certflow/offline/template"
)

// templatePath is the real template, relative to this package.
const templatePath = "../../template.yaml"

// Function names the tests register: the template's logical IDs, whose
// ARNs its DefinitionSubstitutions give the state machine.
const (
	fnPreflight   = "PreflightFunction"
	fnOrderBudget = "OrderBudgetFunction"
	fnIssue       = "IssueFunction"
	fnRecord      = "RecordFunction"
	fnNotify      = "NotifyFunction"
)

// issuanceMachine is the issuance state machine as the template deploys
// it, with params overriding parameter defaults.
func issuanceMachine(t *testing.T, params map[string]string) template.StateMachine {
	t.Helper()
	tmpl, err := template.Load(templatePath, template.Options{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	sms, err := tmpl.StateMachines()
	if err != nil {
		t.Fatal(err)
	}
	if len(sms) != 1 {
		t.Fatalf("template has %d state machines, want 1", len(sms))
	}
	return sms[0]
}

// parameter is a template parameter's default, as a number.
func parameter(t *testing.T, name string) int {
	t.Helper()
	tmpl, err := template.Load(templatePath, template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, ok := tmpl.ParameterDefault(name)
	if !ok {
		t.Fatalf("template has no default for %s", name)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("parameter %s = %q: %v", name, v, err)
	}
	return n
}

// definitionStates lists the states of a definition.
func definitionStates(t *testing.T, def []byte) map[string]bool {
	t.Helper()
	var d struct {
		States map[string]json.RawMessage `json:"States"`
	}
	if err := json.Unmarshal(def, &d); err != nil {
		t.Fatal(err)
	}
	states := map[string]bool{}
	for name := range d.States {
		states[name] = true
	}
	return states
}

// tools locates node and the node_modules installed by `make tools`, or skips.
type tools struct{ node, modules string }

func findTools(t *testing.T) tools {
	t.Helper()
	offlinetest.Require(t)
	tl, err := offline.FindTools("")
	if err != nil {
		t.Fatal(err)
	}
	if err := tl.NodeReady(); err != nil {
		t.Fatal(err)
	}
	return tools{node: tl.Node, modules: tl.NodeModules}
}

// stack is a local Lambda API with fake functions and a local Step
// Functions endpoint running the real issuance definition.
type stack struct {
	fns      *fakeFunctions
	lambda   *lambdaapi.Server
	sfn      *Server
	client   *sfn.Client
	smARN    string
	def      []byte
	visited  map[string]bool
	visitMu  sync.Mutex
	runCount int
}

func startStack(t *testing.T) *stack {
	t.Helper()
	return startStackWith(t, nil)
}

// startStackWith runs the state machine with template parameters params.
func startStackWith(t *testing.T, params map[string]string) *stack {
	t.Helper()
	tl := findTools(t)
	fns := newFakeFunctions()
	lam, err := lambdaapi.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lam.Close() })
	fns.register(lam)

	sm := issuanceMachine(t, params)
	def := sm.Definition
	var stderr io.Writer = io.Discard
	if testing.Verbose() {
		stderr = os.Stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := Start(ctx, Options{
		NodeBin:        tl.node,
		ModulesDir:     tl.modules,
		LambdaEndpoint: lam.URL(),
		StateMachines:  []StateMachine{{Name: sm.Name, Definition: def}},
		WaitOverride:   2 * time.Millisecond,
		RetryOverride:  2 * time.Millisecond,
		Stderr:         stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return &stack{
		fns:     fns,
		lambda:  lam,
		sfn:     srv,
		client:  newSFNClient(srv.Endpoint()),
		smARN:   sm.ARN,
		def:     def,
		visited: map[string]bool{},
	}
}

func newSFNClient(endpoint string) *sfn.Client {
	cfg := aws.Config{
		Region:      template.Region,
		Credentials: credentials.NewStaticCredentialsProvider("offline", "offline", ""),
	}
	return sfn.NewFromConfig(cfg, func(o *sfn.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// execution is a finished execution with its history.
type execution struct {
	arn      string
	describe *sfn.DescribeExecutionOutput
	events   []types.HistoryEvent
}

// run starts an execution of input, waits for it to end and reads its
// history; the states it entered are added to s.visited.
func (s *stack) run(t *testing.T, input any) *execution {
	t.Helper()
	s.runCount++
	name := executionName(t, s.runCount)
	if m, ok := input.(map[string]any); ok {
		m["execution"] = name // as the reconciler's input names it
	}
	b, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start, err := s.client.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(s.smARN),
		Name:            aws.String(name),
		Input:           aws.String(string(b)),
	})
	if err != nil {
		t.Fatalf("StartExecution: %v", err)
	}
	return s.wait(t, aws.ToString(start.ExecutionArn))
}

// executionName is a valid, unique execution name that shows the test.
func executionName(t *testing.T, n int) string {
	name := strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '-'
	}, t.Name())
	suffix := fmt.Sprintf("-%d", n)
	if len(name) > 80-len(suffix) {
		name = name[len(name)-(80-len(suffix)):]
	}
	return name + suffix
}

func (s *stack) wait(t *testing.T, arn string) *execution {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := s.client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err != nil {
			t.Fatalf("DescribeExecution: %v", err)
		}
		if d.Status != types.ExecutionStatusRunning {
			ex := &execution{arn: arn, describe: d, events: s.history(t, arn)}
			s.visitMu.Lock()
			for _, name := range ex.entered() {
				s.visited[name] = true
			}
			s.visitMu.Unlock()
			return ex
		}
		if time.Now().After(deadline) {
			t.Fatalf("execution %s still RUNNING after 30s", arn)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *stack) history(t *testing.T, arn string) []types.HistoryEvent {
	t.Helper()
	var events []types.HistoryEvent
	p := sfn.NewGetExecutionHistoryPaginator(s.client, &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arn), MaxResults: 50})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("GetExecutionHistory: %v", err)
		}
		events = append(events, page.Events...)
	}
	return events
}

// name is the execution's name.
func (e *execution) name() string { return e.arn[strings.LastIndex(e.arn, ":")+1:] }

// entered lists the states the execution entered, in order.
func (e *execution) entered() []string {
	var names []string
	for _, ev := range e.events {
		if ev.StateEnteredEventDetails != nil {
			names = append(names, aws.ToString(ev.StateEnteredEventDetails.Name))
		}
	}
	return names
}

// inputsOf returns the inputs the state called name was entered with.
func (e *execution) inputsOf(t *testing.T, name string) []map[string]any {
	t.Helper()
	var inputs []map[string]any
	for _, ev := range e.events {
		if d := ev.StateEnteredEventDetails; d != nil && aws.ToString(d.Name) == name {
			var in map[string]any
			if err := json.Unmarshal([]byte(aws.ToString(d.Input)), &in); err != nil {
				t.Fatalf("state %s input %q: %v", name, aws.ToString(d.Input), err)
			}
			inputs = append(inputs, in)
		}
	}
	return inputs
}

func (e *execution) output(t *testing.T) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal([]byte(aws.ToString(e.describe.Output)), &out); err != nil {
		t.Fatalf("execution output %q: %v", aws.ToString(e.describe.Output), err)
	}
	return out
}

// Function payloads: the real functions' types where they are plain
// (flow.Input, flow.OrderSlot, flow.Issued, record.Input, record.Result).

type preflightInput struct {
	Domain     string              `json:"domain"`
	Sans       []string            `json:"sans"`
	CA         string              `json:"ca"`
	Validation string              `json:"validation"`
	Records    []validation.Record `json:"records"`
	Execution  string              `json:"execution"`
}

type preflightOutput struct {
	Domain  string `json:"domain"`
	Checked string `json:"checked"`
}

// invocation is one call of a fake function.
type invocation struct {
	fn    string
	input json.RawMessage
}

// fakeFunctions stand in for the five functions. Each subtest sets the
// behaviour of preflight, budget, issue, record and notify with set after
// reset; record keeps counters per domain like the real one.
type fakeFunctions struct {
	mu        sync.Mutex
	calls     []invocation
	preflight func(n int, in preflightInput) (preflightOutput, error)
	budget    func(n int, in flow.Input) (flow.OrderSlot, error)
	issue     func(n int, in flow.Input) (flow.Issued, error)
	// recordErr, when set, fails every record call.
	recordErr func(in record.Input) error
	notifyErr error
	// ageStep, when positive, is the failure age added by each counted
	// failure instead of the wait before it.
	ageStep int64
	domains map[string]*domainRecord
	// retired domains answer DomainRetiredError to every record call,
	// superseded ones SupersededError.
	retired, superseded map[string]bool
	// fallback makes record say the deployment has a fallback CA.
	fallback bool
}

// domainRecord is what the fake record function keeps per domain.
type domainRecord struct {
	failures, outages, waits int
	age                      int64
	lastWait                 int64
}

func newFakeFunctions() *fakeFunctions {
	f := &fakeFunctions{}
	f.reset()
	return f
}

// reset restores the fakes' default behaviour: everything succeeds.
func (f *fakeFunctions) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
	f.preflight = func(_ int, in preflightInput) (preflightOutput, error) {
		return preflightOutput{Domain: in.Domain, Checked: "2026-11-21T16:00:00Z"}, nil
	}
	f.budget = func(n int, in flow.Input) (flow.OrderSlot, error) {
		return flow.OrderSlot{Seq: int64(n), At: time.Now().UTC().Truncate(time.Second), CA: in.CA}, nil
	}
	f.issue = func(_ int, in flow.Input) (flow.Issued, error) {
		return flow.Issued{Domain: in.Domain, Serial: "0a1b2c", NotBefore: time.Date(2026, 11, 21, 16, 0, 0, 0, time.UTC),
			NotAfter: time.Date(2027, 2, 19, 16, 0, 0, 0, time.UTC), RenewAt: time.Date(2027, 1, 20, 16, 0, 0, 0, time.UTC), Renewed: in.Replaces != ""}, nil
	}
	f.recordErr, f.notifyErr = nil, nil
	f.ageStep = 0
	f.domains = map[string]*domainRecord{}
	f.retired, f.superseded = map[string]bool{}, map[string]bool{}
	f.fallback = false
}

func (f *fakeFunctions) set(fn func(f *fakeFunctions)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// record notes a call and returns how many calls fn has had, this one
// included.
func (f *fakeFunctions) record(fn string, in any) int {
	b, _ := json.Marshal(in)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, invocation{fn: fn, input: b})
	n := 0
	for _, c := range f.calls {
		if c.fn == fn {
			n++
		}
	}
	return n
}

// callsOf returns the raw payloads fn received, in order.
func (f *fakeFunctions) callsOf(fn string) []json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []json.RawMessage
	for _, c := range f.calls {
		if c.fn == fn {
			out = append(out, c.input)
		}
	}
	return out
}

// sequence returns the function names in call order.
func (f *fakeFunctions) sequence() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.fn)
	}
	return out
}

// handler registers a fake function that decodes its payload, records the
// call and answers with h. Every step but Issue gets Parameters naming its
// fields, and its payload is decoded strictly; Issue gets the execution
// state, whose other members (preflight, error, failure) it ignores.
func handler[In, Out any](f *fakeFunctions, fn string, h func(n int, in In) (Out, error)) lambda.Handler {
	return lambda.NewHandler(func(ctx context.Context, raw json.RawMessage) (Out, error) {
		var in In
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		if fn != fnIssue {
			dec.DisallowUnknownFields()
		}
		if err := dec.Decode(&in); err != nil {
			var zero Out
			return zero, failure.ForLambda(&failure.InvalidInputError{Message: fn + ": " + err.Error()})
		}
		n := f.record(fn, raw)
		out, err := h(n, in)
		return out, failure.ForLambda(err)
	})
}

func (f *fakeFunctions) register(s *lambdaapi.Server) {
	s.Register(fnPreflight, handler(f, fnPreflight, func(n int, in preflightInput) (preflightOutput, error) {
		f.mu.Lock()
		h := f.preflight
		f.mu.Unlock()
		return h(n, in)
	}))
	s.Register(fnOrderBudget, handler(f, fnOrderBudget, func(n int, in flow.Input) (flow.OrderSlot, error) {
		f.mu.Lock()
		h := f.budget
		f.mu.Unlock()
		return h(n, in)
	}))
	s.Register(fnIssue, handler(f, fnIssue, func(n int, in flow.Input) (flow.Issued, error) {
		f.mu.Lock()
		h := f.issue
		f.mu.Unlock()
		return h(n, in)
	}))
	s.Register(fnRecord, handler(f, fnRecord, func(_ int, in record.Input) (record.Result, error) { return f.recordStep(in) }))
	s.Register(fnNotify, handler(f, fnNotify, func(_ int, in notifyInput) (map[string]string, error) {
		f.mu.Lock()
		err := f.notifyErr
		f.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if in.Certificate.Serial == "" {
			return nil, &failure.InvalidInputError{Message: "notify without certificate"}
		}
		return map[string]string{"domain": in.Domain, "event": "Certificate Issued"}, nil
	}))
}

type notifyInput struct {
	Domain      string      `json:"domain"`
	Execution   string      `json:"execution"`
	Certificate flow.Issued `json:"certificate"`
}

// recordStep imitates the record function's contract (package record):
// a failure that counts against the domain is counted with exponential
// backoff; a rate limit waits its Retry-After; an outage (or a failure that
// does not count) waits the outage backoff, without jitter here; every
// wait counts towards the execution's bound.
func (f *fakeFunctions) recordStep(in record.Input) (record.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.recordErr != nil:
		if err := f.recordErr(in); err != nil {
			return record.Result{}, err
		}
	case f.retired[in.Domain]:
		return record.Result{}, &failure.DomainRetiredError{Message: in.Domain}
	case f.superseded[in.Domain]:
		return record.Result{}, &failure.SupersededError{Message: in.Execution}
	case in.Execution == "":
		return record.Result{}, &failure.InvalidInputError{Message: "record without execution"}
	}
	var d failure.Detail
	if in.Error != nil {
		d = failure.ParseCause(in.Error.Error, in.Error.Cause)
	}
	if in.Action == record.ActionQuarantine {
		reason := in.Reason
		if reason == "" {
			reason = d.Code
		}
		return record.Result{Code: reason, Message: d.Message, UnpauseURL: d.UnpauseURL, Quarantined: true}, nil
	}
	if in.Error == nil || in.Policy.BackoffBaseSeconds <= 0 {
		return record.Result{}, &failure.InvalidInputError{Message: "record without error or policy"}
	}
	rec := f.domains[in.Domain]
	if rec == nil {
		rec = &domainRecord{}
		f.domains[in.Domain] = rec
	}
	rec.waits++
	res := record.Result{Code: d.Code, Message: d.Message, RetryAfterSeconds: d.RetryAfterSeconds, UnpauseURL: d.UnpauseURL}
	switch {
	case d.Code == failure.CodeRateLimited:
		res.WaitSeconds = d.RetryAfterSeconds
	case in.Action == record.ActionFailure && failure.CountsAgainstDomain(d.Code):
		if rec.failures > 0 {
			if f.ageStep > 0 {
				rec.age += f.ageStep
			} else {
				rec.age += rec.lastWait
			}
		}
		rec.failures++
		wait := in.Policy.BackoffBaseSeconds
		for i := 1; i < rec.failures && wait < in.Policy.BackoffMaxSeconds; i++ {
			wait *= 2
		}
		res.WaitSeconds = min(wait, in.Policy.BackoffMaxSeconds)
	default:
		rec.outages++
		wait := in.Policy.OutageBaseSeconds
		for i := 1; i < rec.outages && wait < in.Policy.OutageMaxSeconds; i++ {
			wait *= 2
		}
		res.WaitSeconds = min(wait, in.Policy.OutageMaxSeconds)
	}
	rec.lastWait = res.WaitSeconds
	res.FailureCount, res.FailureAgeSeconds = rec.failures, rec.age
	res.Postpone = in.Policy.MaxWaits > 0 && rec.waits >= in.Policy.MaxWaits
	if f.fallback && in.CA == flow.CAPrimary {
		res.FallbackCA = flow.CAFallback
	}
	return res, nil
}

// isAlreadyExists reports whether err is the API's ExecutionAlreadyExists.
func isAlreadyExists(err error) bool {
	var e *types.ExecutionAlreadyExists
	return errors.As(err, &e)
}
