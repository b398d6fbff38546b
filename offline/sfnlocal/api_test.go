package sfnlocal

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/certflow/certflow/offline/template"
)

// blockPreflight makes preflight calls wait until the returned release is
// called (or 20 s pass), so executions stay RUNNING meanwhile.
func blockPreflight(t *testing.T, s *stack) (release func()) {
	t.Helper()
	gate := make(chan struct{})
	s.fns.set(func(f *fakeFunctions) {
		next := f.preflight
		f.preflight = func(n int, in preflightInput) (preflightOutput, error) {
			select {
			case <-gate:
			case <-time.After(20 * time.Second):
			}
			return next(n, in)
		}
	})
	released := false
	release = func() {
		if !released {
			released = true
			close(gate)
		}
	}
	t.Cleanup(release)
	return release
}

func TestStartExecutionNames(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	release := blockPreflight(t, s)
	input := `{"domain":"dup.example","sans":["dup.example"],"reason":"request"}`
	start := func(name, input string) (*sfn.StartExecutionOutput, error) {
		return s.client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(s.smARN), Name: aws.String(name), Input: aws.String(input)})
	}

	first, err := start("issue-0123456789abcdef", input)
	if err != nil {
		t.Fatalf("StartExecution: %v", err)
	}
	wantARN := "arn:aws:states:us-east-1:000000000000:execution:IssuanceStateMachine:issue-0123456789abcdef"
	if got := aws.ToString(first.ExecutionArn); got != wantARN {
		t.Errorf("executionArn = %s, want %s", got, wantARN)
	}
	again, err := start("issue-0123456789abcdef", input)
	if err != nil {
		t.Fatalf("StartExecution with the same name and input while running: %v, want the running execution", err)
	}
	if aws.ToString(again.ExecutionArn) != wantARN || !aws.ToTime(again.StartDate).Equal(aws.ToTime(first.StartDate)) {
		t.Errorf("repeated StartExecution = %s at %v, want %s at %v", aws.ToString(again.ExecutionArn), again.StartDate, wantARN, first.StartDate)
	}
	if _, err := start("issue-0123456789abcdef", `{"domain":"other.example","sans":[],"reason":"request"}`); !isAlreadyExists(err) {
		t.Errorf("StartExecution with the same name and other input: error %v, want ExecutionAlreadyExists", err)
	}

	running, err := s.client.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(s.smARN), StatusFilter: types.ExecutionStatusRunning})
	if err != nil {
		t.Fatalf("ListExecutions: %v", err)
	}
	if len(running.Executions) != 1 || aws.ToString(running.Executions[0].ExecutionArn) != wantARN {
		t.Errorf("running executions = %+v, want only %s", running.Executions, wantARN)
	}

	release()
	ex := s.wait(t, wantARN)
	assertStatus(t, ex, types.ExecutionStatusSucceeded)
	if _, err := start("issue-0123456789abcdef", input); !isAlreadyExists(err) {
		t.Errorf("StartExecution with the name of a finished execution: error %v, want ExecutionAlreadyExists", err)
	}

	for _, name := range []string{"", strings.Repeat("a", 81), "has space", "a:b", "a/b", "a*b", "tab\there", "brace{"} {
		_, err := start(name, input)
		var invalid *types.InvalidName
		if !errors.As(err, &invalid) {
			t.Errorf("StartExecution(name %q) error = %v, want InvalidName", name, err)
		}
	}
	if _, err := start("ok", `{not json`); !errors.As(err, new(*types.InvalidExecutionInput)) {
		t.Errorf("StartExecution(input not JSON) error = %v, want InvalidExecutionInput", err)
	}

	unnamed, err := s.client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(s.smARN), Input: aws.String(input)})
	if err != nil {
		t.Fatalf("StartExecution without a name: %v", err)
	}
	if arn := aws.ToString(unnamed.ExecutionArn); len(arn) != len(wantARN)-len("issue-0123456789abcdef")+36 {
		t.Errorf("executionArn without a name = %s, want a UUID name", arn)
	}
	s.wait(t, aws.ToString(unnamed.ExecutionArn))

	if _, err := s.client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(template.StateMachineARN("Nope")), Input: aws.String(input)}); !errors.As(err, new(*types.StateMachineDoesNotExist)) {
		t.Errorf("StartExecution(unknown state machine) error = %v, want StateMachineDoesNotExist", err)
	}
	if _, err := s.client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(wantARN + "x")}); !errors.As(err, new(*types.ExecutionDoesNotExist)) {
		t.Errorf("DescribeExecution(unknown) error = %v, want ExecutionDoesNotExist", err)
	}
}

func TestStopExecution(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	blockPreflight(t, s)
	start, err := s.client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(s.smARN), Name: aws.String("stop-me"),
		Input: aws.String(`{"domain":"stop.example","sans":["stop.example"],"reason":"request"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: start.ExecutionArn, Error: aws.String("Operator"), Cause: aws.String("domain removed")}); err != nil {
		t.Fatalf("StopExecution: %v", err)
	}
	ex := s.wait(t, aws.ToString(start.ExecutionArn))
	assertStatus(t, ex, types.ExecutionStatusAborted)
	last := ex.events[len(ex.events)-1]
	if last.Type != types.HistoryEventTypeExecutionAborted || aws.ToString(last.ExecutionAbortedEventDetails.Cause) != "domain removed" {
		t.Errorf("last event = %s %+v, want ExecutionAborted with the cause", last.Type, last.ExecutionAbortedEventDetails)
	}
}

func TestAPIShapes(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()

	sms, err := s.client.ListStateMachines(ctx, &sfn.ListStateMachinesInput{})
	if err != nil {
		t.Fatalf("ListStateMachines: %v", err)
	}
	if len(sms.StateMachines) != 1 || aws.ToString(sms.StateMachines[0].StateMachineArn) != s.smARN || sms.StateMachines[0].Type != types.StateMachineTypeStandard {
		t.Errorf("state machines = %+v, want the STANDARD %s", sms.StateMachines, s.smARN)
	}
	d, err := s.client.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(s.smARN)})
	if err != nil {
		t.Fatalf("DescribeStateMachine: %v", err)
	}
	if aws.ToString(d.Definition) != string(s.def) || d.Status != types.StateMachineStatusActive {
		t.Errorf("DescribeStateMachine = %s, status %s, want the definition, ACTIVE", aws.ToString(d.Name), d.Status)
	}
	if _, err := s.client.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(template.StateMachineARN("Nope"))}); !errors.As(err, new(*types.StateMachineDoesNotExist)) {
		t.Errorf("DescribeStateMachine(unknown) error = %v, want StateMachineDoesNotExist", err)
	}

	for range 3 {
		s.run(t, map[string]any{"domain": "page.example", "sans": []string{"page.example"}, "reason": "request"})
	}
	var arns []string
	p := sfn.NewListExecutionsPaginator(s.client, &sfn.ListExecutionsInput{StateMachineArn: aws.String(s.smARN), MaxResults: 2})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListExecutions: %v", err)
		}
		if len(page.Executions) > 2 {
			t.Errorf("page of %d executions, want at most 2", len(page.Executions))
		}
		for _, e := range page.Executions {
			arns = append(arns, aws.ToString(e.ExecutionArn))
		}
	}
	if len(arns) != 3 || !strings.HasSuffix(arns[0], "-3") || !strings.HasSuffix(arns[2], "-1") {
		t.Errorf("executions = %v, want 3, newest first", arns)
	}

	ex := s.wait(t, arns[0])
	for i, ev := range ex.events {
		if ev.Id != int64(i+1) || ev.PreviousEventId != int64(i) || ev.Timestamp == nil {
			t.Errorf("event %d: id %d, previous %d, timestamp %v", i, ev.Id, ev.PreviousEventId, ev.Timestamp)
		}
	}
	wantTypes := []types.HistoryEventType{
		types.HistoryEventTypeExecutionStarted,
		types.HistoryEventTypePassStateEntered,
		types.HistoryEventTypePassStateExited,
		types.HistoryEventTypeTaskStateEntered,
		types.HistoryEventTypeLambdaFunctionScheduled,
		types.HistoryEventTypeLambdaFunctionStarted,
		types.HistoryEventTypeLambdaFunctionSucceeded,
		types.HistoryEventTypeTaskStateExited,
		types.HistoryEventTypeChoiceStateEntered,
	}
	for i, want := range wantTypes {
		if ex.events[i].Type != want {
			t.Errorf("event %d type = %s, want %s", i+1, ex.events[i].Type, want)
		}
	}
	if last := ex.events[len(ex.events)-1]; last.Type != types.HistoryEventTypeExecutionSucceeded {
		t.Errorf("last event = %s, want ExecutionSucceeded", last.Type)
	}
	if got := aws.ToString(ex.events[4].LambdaFunctionScheduledEventDetails.Resource); got != template.FunctionARN(fnPreflight) {
		t.Errorf("scheduled resource = %s, want %s", got, template.FunctionARN(fnPreflight))
	}
}

// TestAWSCLI checks that the AWS CLI talks to the endpoint with
// --endpoint-url and dummy credentials.
func TestAWSCLI(t *testing.T) {
	cli, err := exec.LookPath("aws")
	if err != nil {
		t.Skip("aws CLI not installed")
	}
	s := startStack(t)
	dir := t.TempDir()
	awsCLI := func(args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command(cli, append(args, "--endpoint-url", s.sfn.Endpoint(), "--region", "us-east-1", "--output", "json")...)
		cmd.Env = append(os.Environ(),
			"AWS_ACCESS_KEY_ID=offline", "AWS_SECRET_ACCESS_KEY=offline", "AWS_SESSION_TOKEN=",
			"AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
			"AWS_PAGER=")
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("aws %s: %v: %s", strings.Join(args, " "), err, ee.Stderr)
			}
			t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("aws %s output %q: %v", strings.Join(args, " "), out, err)
		}
		return m
	}
	list := awsCLI("stepfunctions", "list-state-machines")
	machines, _ := list["stateMachines"].([]any)
	if len(machines) != 1 || machines[0].(map[string]any)["stateMachineArn"] != s.smARN {
		t.Errorf("list-state-machines = %v, want %s", list, s.smARN)
	}
	start := awsCLI("stepfunctions", "start-execution", "--state-machine-arn", s.smARN, "--name", "cli-1",
		"--input", `{"domain":"cli.example","sans":["cli.example"],"reason":"request"}`)
	arn, _ := start["executionArn"].(string)
	s.wait(t, arn)
	desc := awsCLI("stepfunctions", "describe-execution", "--execution-arn", arn)
	if desc["status"] != "SUCCEEDED" {
		t.Errorf("describe-execution = %v, want SUCCEEDED", desc)
	}
}

func TestContextObject(t *testing.T) {
	tl := findTools(t)
	def := `{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"id.$":"$$.Execution.Id","name.$":"$$.Execution.Name",` +
		`"start.$":"$$.Execution.StartTime","input.$":"$$.Execution.Input","sm.$":"$$.StateMachine.Id","smName.$":"$$.StateMachine.Name"},"End":true}}}`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := Start(ctx, Options{NodeBin: tl.node, ModulesDir: tl.modules, LambdaEndpoint: "http://127.0.0.1:9",
		StateMachines: []StateMachine{{Name: "Context", Definition: []byte(def)}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	s := &stack{client: newSFNClient(srv.Endpoint()), smARN: template.StateMachineARN("Context"), visited: map[string]bool{}}
	ex := s.run(t, map[string]any{"domain": "ctx.example"})
	assertStatus(t, ex, types.ExecutionStatusSucceeded)
	out := ex.output(t)
	input, _ := out["input"].(map[string]any)
	start, _ := out["start"].(string)
	if out["id"] != ex.arn || out["name"] != ex.arn[strings.LastIndex(ex.arn, ":")+1:] || out["sm"] != s.smARN || out["smName"] != "Context" ||
		input["domain"] != "ctx.example" || !strings.HasSuffix(start, "Z") {
		t.Errorf("context object = %v, want the execution's ARN, name, start time, input and the state machine", out)
	}
}

func TestStartRejectsInvalidDefinition(t *testing.T) {
	tl := findTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	def := `{"StartAt":"P","States":{"P":{"Type":"Pass","Next":"Nowhere"}}}`
	srv, err := Start(ctx, Options{NodeBin: tl.node, ModulesDir: tl.modules, LambdaEndpoint: "http://127.0.0.1:9",
		StateMachines: []StateMachine{{Name: "Broken", Definition: []byte(def)}}})
	if err == nil {
		_ = srv.Close()
		t.Fatal("Start() with an invalid definition succeeded")
	}
	if !strings.Contains(err.Error(), "Nowhere") {
		t.Errorf("Start() error = %v, want one naming the missing state", err)
	}
	if _, err := Start(ctx, Options{NodeBin: tl.node, ModulesDir: tl.modules, Addr: "0.0.0.0:0", LambdaEndpoint: "http://127.0.0.1:9",
		StateMachines: []StateMachine{{Name: "X", Definition: []byte(def)}}}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("Start(0.0.0.0) error = %v, want a loopback error", err)
	}
}
