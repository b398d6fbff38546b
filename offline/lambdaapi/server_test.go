package lambdaapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/certflow/certflow/internal/failure"
)

type valueError struct{}

func (valueError) Error() string { return "value error" }

type pointerError struct{ msg string }

func (e *pointerError) Error() string { return e.msg }

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func invoke(t *testing.T, s *Server, name, body string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL()+"/2015-03-31/functions/"+url.PathEscape(name)+"/invocations", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestInvoke(t *testing.T) {
	s := start(t)
	type in struct {
		Name string `json:"name"`
	}
	type out struct {
		Greeting  string `json:"greeting"`
		RequestID string `json:"requestId"`
		ARN       string `json:"arn"`
	}
	s.Register("greeter", lambda.NewHandler(func(ctx context.Context, e in) (out, error) {
		lc, ok := lambdacontext.FromContext(ctx)
		if !ok {
			return out{}, errors.New("no lambda context")
		}
		return out{Greeting: "hello " + e.Name, RequestID: lc.AwsRequestID, ARN: lc.InvokedFunctionArn}, nil
	}))
	for _, name := range []string{"greeter", FunctionARN("greeter"), FunctionARN("greeter") + ":$LATEST", "000000000000:function:greeter"} {
		t.Run(name, func(t *testing.T) {
			resp, body := invoke(t, s, name, `{"name":"certflow"}`, nil)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "" {
				t.Fatalf("invoke %s = %d %q, want 200 without a function error", name, resp.StatusCode, body)
			}
			var o out
			if err := json.Unmarshal([]byte(body), &o); err != nil {
				t.Fatal(err)
			}
			if o.Greeting != "hello certflow" || o.ARN != FunctionARN("greeter") || o.RequestID == "" || o.RequestID != resp.Header.Get("X-Amzn-Requestid") {
				t.Errorf("invoke %s = %+v (request ID header %q), want the greeting, the function ARN and the request ID", name, o, resp.Header.Get("X-Amzn-Requestid"))
			}
		})
	}
}

func TestInvokeErrors(t *testing.T) {
	s := start(t)
	rateLimited := &failure.RateLimitedError{Message: "slow down", RetryAfter: time.Minute}
	tests := []struct {
		name        string
		fn          func() error
		wantType    string
		wantMessage string
	}{
		{"pointer type", func() error { return &pointerError{"boom"} }, "pointerError", "boom"},
		{"value type", func() error { return valueError{} }, "valueError", "value error"},
		{"not unwrapped", func() error { return fmt.Errorf("issue: %w", &pointerError{"boom"}) }, "wrapError", "issue: boom"},
		{"InvokeResponse_Error as is", func() error { return messages.InvokeResponse_Error{Type: "Custom", Message: "m"} }, "Custom", "m"},
		{"failure.ForLambda", func() error { return failure.ForLambda(fmt.Errorf("issue: %w", rateLimited)) }, "RateLimitedError", `{"code":"rate_limited","message":"slow down","retryAfterSeconds":60}`},
		{"panic", func() error { panic("kaputt") }, "string", "kaputt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Register("f", lambda.NewHandler(func(context.Context) error { return tt.fn() }))
			resp, body := invoke(t, s, "f", `{}`, nil)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "Unhandled" {
				t.Fatalf("status %d, X-Amz-Function-Error %q, want 200 Unhandled", resp.StatusCode, resp.Header.Get("X-Amz-Function-Error"))
			}
			var got messages.InvokeResponse_Error
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if got.Type != tt.wantType || got.Message != tt.wantMessage {
				t.Errorf("error = %s / %q, want %s / %q", got.Type, got.Message, tt.wantType, tt.wantMessage)
			}
		})
	}
}

func TestInvokeAsync(t *testing.T) {
	s := start(t)
	done := make(chan string, 1)
	s.Register("async", lambda.NewHandler(func(ctx context.Context, e map[string]string) error {
		done <- e["v"]
		return nil
	}))
	resp, _ := invoke(t, s, "async", `{"v":"x"}`, map[string]string{"X-Amz-Invocation-Type": "Event"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status = %d, want 202", resp.StatusCode)
	}
	select {
	case v := <-done:
		if v != "x" {
			t.Errorf("payload v = %q, want x", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("asynchronous invocation did not run")
	}
}

func TestInvokeUnknownFunction(t *testing.T) {
	s := start(t)
	resp, body := invoke(t, s, "nope", `{}`, nil)
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("X-Amzn-Errortype") != "ResourceNotFoundException" {
		t.Errorf("unknown function = %d %s %q, want 404 ResourceNotFoundException", resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), body)
	}
}

func TestStartLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "localhost:0"} {
		if s, err := Start(addr); err == nil {
			_ = s.Close()
			t.Errorf("Start(%q) succeeded, want an error: only loopback IPs", addr)
		}
	}
}

func TestFunctionName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"issue", "issue"},
		{"arn:aws:lambda:us-east-1:000000000000:function:issue", "issue"},
		{"arn:aws:lambda:us-east-1:000000000000:function:issue:live", "issue"},
		{"000000000000:function:issue", "issue"},
	}
	for _, tt := range tests {
		if got := FunctionName(tt.in); got != tt.want {
			t.Errorf("FunctionName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestAWSCLI checks compatibility with `aws lambda invoke --endpoint-url`.
func TestAWSCLI(t *testing.T) {
	cli, err := exec.LookPath("aws")
	if err != nil {
		t.Skip("aws CLI not installed")
	}
	s := start(t)
	s.Register("echo", lambda.NewHandler(func(ctx context.Context, e map[string]any) (map[string]any, error) { return e, nil }))
	dir := t.TempDir()
	outFile := filepath.Join(dir, "out.json")
	cmd := exec.Command(cli, "lambda", "invoke", "--endpoint-url", s.URL(), "--region", Region, "--output", "json",
		"--function-name", FunctionARN("echo"), "--payload", `{"a":1}`, outFile)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=offline", "AWS_SECRET_ACCESS_KEY=offline", "AWS_SESSION_TOKEN=",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"), "AWS_PAGER=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("aws lambda invoke: %v: %s", err, out)
	}
	got, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(got)) != `{"a":1}` {
		t.Errorf("aws lambda invoke payload = %s, want {\"a\":1}", got)
	}
}
