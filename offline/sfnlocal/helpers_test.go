package sfnlocal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
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
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/lambdaapi"
	"github.com/certflow/certflow/offline/offlinetest"
	"github.com/certflow/certflow/offline/template"
)

// definitionPath is the real definition, relative to this package.
const definitionPath = "../../statemachine/issuance.asl.json"

// Default values of the template's policy parameters.
var policyDefaults = map[string]string{
	"MaxConsecutiveFailures":    "6",
	"MaxFailureAgeSeconds":      "259200",
	"FailureBackoffBaseSeconds": "1200",
	"FailureBackoffMaxSeconds":  "86400",
}

// Function names the tests register; the definition's ARNs point at them.
const (
	fnPreflight   = "PreflightFunction"
	fnOrderBudget = "OrderBudgetFunction"
	fnIssue       = "IssueFunction"
	fnRecord      = "RecordFunction"
	fnNotify      = "NotifyFunction"
)

func issuanceSubstitutions() map[string]string {
	values := map[string]string{
		"PreflightFunctionArn":   template.FunctionARN(fnPreflight),
		"OrderBudgetFunctionArn": template.FunctionARN(fnOrderBudget),
		"IssueFunctionArn":       template.FunctionARN(fnIssue),
		"RecordFunctionArn":      template.FunctionARN(fnRecord),
		"NotifyFunctionArn":      template.FunctionARN(fnNotify),
	}
	for k, v := range policyDefaults {
		values[k] = v
	}
	return values
}

// issuanceDefinition is the real definition with the default substitutions.
func issuanceDefinition(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(definitionPath)
	if err != nil {
		t.Fatal(err)
	}
	def, err := template.Substitute(raw, issuanceSubstitutions())
	if err != nil {
		t.Fatalf("template.Substitute(%s) error: %v", definitionPath, err)
	}
	return def
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
	tl := findTools(t)
	fns := newFakeFunctions()
	lam, err := lambdaapi.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lam.Close() })
	fns.register(lam)

	def := issuanceDefinition(t)
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
		StateMachines:  []StateMachine{{Name: "IssuanceStateMachine", Definition: def}},
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
		smARN:   template.StateMachineARN("IssuanceStateMachine"),
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
	b, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s.runCount++
	start, err := s.client.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(s.smARN),
		Name:            aws.String(executionName(t, s.runCount)),
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
		if r == ' ' || r == '/' {
			return '-'
		}
		return r
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

// Function payloads, as documented in the report for the real functions.

type preflightInput struct {
	Domain string   `json:"domain"`
	Sans   []string `json:"sans"`
}

type preflightOutput struct {
	Domain  string `json:"domain"`
	Checked string `json:"checked"`
}

type budgetOutput struct {
	Granted     bool  `json:"granted"`
	WaitSeconds int64 `json:"waitSeconds"`
}

type issueInput struct {
	Domain         string   `json:"domain"`
	Sans           []string `json:"sans"`
	Replaces       string   `json:"replaces"`
	ReplacesSerial string   `json:"replacesSerial"`
}

type issueOutput struct {
	Domain    string `json:"domain"`
	Serial    string `json:"serial"`
	NotBefore string `json:"notBefore"`
	NotAfter  string `json:"notAfter"`
	RenewAt   string `json:"renewAt"`
	Renewed   bool   `json:"renewed"`
}

type outcomeInput struct {
	Action string `json:"action"`
	Domain string `json:"domain"`
	Error  *struct {
		Error string          `json:"Error"`
		Cause json.RawMessage `json:"Cause"`
	} `json:"error"`
	Reason      string          `json:"reason"`
	Certificate json.RawMessage `json:"certificate"`
	Policy      *struct {
		BackoffBaseSeconds int64 `json:"backoffBaseSeconds"`
		BackoffMaxSeconds  int64 `json:"backoffMaxSeconds"`
	} `json:"policy"`
}

type failureOutput struct {
	Code              string `json:"code"`
	Message           string `json:"message"`
	FailureCount      int64  `json:"failureCount"`
	FailureAgeSeconds int64  `json:"failureAgeSeconds"`
	WaitSeconds       int64  `json:"waitSeconds"`
	RetryAfterSeconds int64  `json:"retryAfterSeconds"`
	UnpauseURL        string `json:"unpauseURL"`
}

// invocation is one call of a fake function.
type invocation struct {
	fn    string
	input json.RawMessage
}

// fakeFunctions stand in for the four functions. Each subtest sets the
// behaviour of preflight, budget and issue with reset; outcome keeps a
// failure record per domain like the real one.
type fakeFunctions struct {
	mu        sync.Mutex
	calls     []invocation
	preflight func(n int, in preflightInput) (preflightOutput, error)
	budget    func(n int) (budgetOutput, error)
	issue     func(n int, in issueInput) (issueOutput, error)
	// ageStep, when positive, is the failure age added by each counted
	// failure instead of the wait before it.
	ageStep  int64
	failures map[string]*failureOutput
	details  []failure.Detail
	// retired domains answer DomainRetiredError to failure and quarantine.
	retired map[string]bool
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
	f.budget = func(int) (budgetOutput, error) { return budgetOutput{Granted: true}, nil }
	f.issue = func(_ int, in issueInput) (issueOutput, error) {
		return issueOutput{Domain: in.Domain, Serial: "0a1b2c", NotBefore: "2026-11-21T16:00:00Z", NotAfter: "2027-02-19T16:00:00Z", RenewAt: "2027-01-20T16:00:00Z", Renewed: in.Replaces != ""}, nil
	}
	f.ageStep = 0
	f.failures = map[string]*failureOutput{}
	f.retired = map[string]bool{}
	f.details = nil
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

func (f *fakeFunctions) register(s *lambdaapi.Server) {
	s.Register(fnPreflight, lambda.NewHandler(func(ctx context.Context, raw json.RawMessage) (preflightOutput, error) {
		var in preflightInput
		if err := json.Unmarshal(raw, &in); err != nil {
			return preflightOutput{}, failure.ForLambda(&failure.InvalidInputError{Message: err.Error()})
		}
		n := f.record(fnPreflight, raw)
		f.mu.Lock()
		h := f.preflight
		f.mu.Unlock()
		out, err := h(n, in)
		return out, failure.ForLambda(err)
	}))
	s.Register(fnOrderBudget, lambda.NewHandler(func(ctx context.Context, raw json.RawMessage) (budgetOutput, error) {
		n := f.record(fnOrderBudget, raw)
		f.mu.Lock()
		h := f.budget
		f.mu.Unlock()
		out, err := h(n)
		return out, failure.ForLambda(err)
	}))
	s.Register(fnIssue, lambda.NewHandler(func(ctx context.Context, raw json.RawMessage) (issueOutput, error) {
		var in issueInput
		if err := json.Unmarshal(raw, &in); err != nil {
			return issueOutput{}, failure.ForLambda(&failure.InvalidInputError{Message: err.Error()})
		}
		n := f.record(fnIssue, raw)
		f.mu.Lock()
		h := f.issue
		f.mu.Unlock()
		out, err := h(n, in)
		return out, failure.ForLambda(err)
	}))
	s.Register(fnRecord, lambda.NewHandler(func(ctx context.Context, raw json.RawMessage) (any, error) {
		var in outcomeInput
		if err := json.Unmarshal(raw, &in); err != nil {
			return nil, failure.ForLambda(&failure.InvalidInputError{Message: err.Error()})
		}
		f.record(fnRecord, raw)
		out, err := f.outcome(in)
		return out, failure.ForLambda(err)
	}))
	s.Register(fnNotify, lambda.NewHandler(func(ctx context.Context, raw json.RawMessage) (any, error) {
		var in outcomeInput
		if err := json.Unmarshal(raw, &in); err != nil {
			return nil, failure.ForLambda(&failure.InvalidInputError{Message: err.Error()})
		}
		f.record(fnNotify, raw)
		in.Action = "issued"
		out, err := f.outcome(in)
		return out, failure.ForLambda(err)
	}))
}

// outcome imitates the record and notify functions' contract: "failure" reads the
// failure.Detail from the Cause, counts it (rate limits are not counted)
// and computes the backoff from the policy it was given.
func (f *fakeFunctions) outcome(in outcomeInput) (any, error) {
	f.mu.Lock()
	retired := f.retired[in.Domain]
	f.mu.Unlock()
	if retired && (in.Action == "failure" || in.Action == "quarantine") {
		return nil, &failure.DomainRetiredError{Message: in.Domain}
	}
	switch in.Action {
	case "failure":
		if in.Error == nil || in.Policy == nil {
			return nil, &failure.InvalidInputError{Message: "failure without error or policy"}
		}
		d := failure.ParseCause(in.Error.Error, in.Error.Cause)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.details = append(f.details, d)
		rec := f.failures[in.Domain]
		if rec == nil {
			rec = &failureOutput{}
			f.failures[in.Domain] = rec
		}
		rec.Code, rec.Message, rec.UnpauseURL, rec.RetryAfterSeconds = d.Code, d.Message, d.UnpauseURL, d.RetryAfterSeconds
		if d.Code == failure.CodeRateLimited {
			if rec.RetryAfterSeconds <= 0 {
				rec.RetryAfterSeconds = in.Policy.BackoffBaseSeconds
			}
			return *rec, nil
		}
		if rec.FailureCount > 0 {
			if f.ageStep > 0 {
				rec.FailureAgeSeconds += f.ageStep
			} else {
				rec.FailureAgeSeconds += rec.WaitSeconds
			}
		}
		rec.FailureCount++
		wait := in.Policy.BackoffBaseSeconds
		for i := int64(1); i < rec.FailureCount && wait < in.Policy.BackoffMaxSeconds; i++ {
			wait *= 2
		}
		rec.WaitSeconds = min(wait, in.Policy.BackoffMaxSeconds)
		return *rec, nil
	case "quarantine":
		if in.Reason == "" || in.Error == nil {
			return nil, &failure.InvalidInputError{Message: "quarantine without reason or error"}
		}
		return map[string]string{"domain": in.Domain, "status": "quarantined"}, nil
	case "issued":
		if len(in.Certificate) == 0 {
			return nil, &failure.InvalidInputError{Message: "issued without certificate"}
		}
		f.mu.Lock()
		delete(f.failures, in.Domain)
		f.mu.Unlock()
		return map[string]string{"domain": in.Domain, "status": "active"}, nil
	}
	return nil, &failure.InvalidInputError{Message: fmt.Sprintf("unknown action %q", in.Action)}
}

// isAlreadyExists reports whether err is the API's ExecutionAlreadyExists.
func isAlreadyExists(err error) bool {
	var e *types.ExecutionAlreadyExists
	return errors.As(err, &e)
}
