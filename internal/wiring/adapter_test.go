package wiring

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/logging"
)

// TestHandler: every line a handler logs carries the request ID, the
// domain and the execution; a failure is logged once and reaches the state
// machine as its class.
func TestHandler(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantType  string // errorType; "" = success
		wantLevel string
	}{
		{"success", nil, "", ""},
		{"classified", &failure.ChallengeFailedError{Message: "404"}, "ChallengeFailedError", "WARN"},
		{"wrapped classified", errors.Join(errors.New("context"), &failure.TransientError{Message: "throttled"}), "TransientError", "WARN"},
		{"unclassified", errors.New("boom"), failure.ErrorTypeInternal, "ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&buf, nil)).With("function", "issue")
			h := handler(logger, func(ctx context.Context, in flow.Input) (flow.Issued, error) {
				logging.From(ctx).Info("working")
				return flow.Issued{Domain: in.Domain}, tt.err
			})
			ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"})
			out, err := h.Invoke(ctx, []byte(`{"domain":"a.example","sans":[],"reason":"request","execution":"issue-abc"}`))
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			for _, l := range lines {
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("log line %q: %v", l, err)
				}
				if m["domain"] != "a.example" || m["execution"] != "issue-abc" || m["requestId"] != "req-1" || m["function"] != "issue" {
					t.Errorf("log line %s lacks the invocation's attributes", l)
				}
			}
			if tt.wantType == "" {
				if err != nil || !strings.Contains(string(out), `"domain":"a.example"`) {
					t.Errorf("Invoke = %s, %v; want the output", out, err)
				}
				if len(lines) != 1 {
					t.Errorf("logged %d lines, want 1", len(lines))
				}
				return
			}
			var ive messages.InvokeResponse_Error
			if !errors.As(err, &ive) || ive.Type != tt.wantType {
				t.Fatalf("Invoke error = %#v, want errorType %s", err, tt.wantType)
			}
			if len(lines) != 2 || !strings.Contains(lines[1], `"level":"`+tt.wantLevel+`"`) {
				t.Errorf("logs = %q, want the failure logged once at %s", lines, tt.wantLevel)
			}
		})
	}
}
