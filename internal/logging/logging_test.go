package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

func TestWithLambda(t *testing.T) {
	lambdaCtx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"})
	tests := []struct {
		name      string
		ctx       context.Context
		execution string
		want      any
	}{
		{"execution name wins", lambdaCtx, "issue-abc", "issue-abc"},
		{"request ID fallback", lambdaCtx, "", "req-1"},
		{"neither", context.Background(), "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			ctx := WithLambda(tt.ctx, New(&buf, slog.LevelInfo), tt.execution)
			ctx = With(ctx, "domain", "a.example")
			From(ctx).Info("hello")
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("log line %q is not JSON: %v", buf.String(), err)
			}
			if line["execution"] != tt.want {
				t.Errorf("execution = %v, want %v", line["execution"], tt.want)
			}
			if line["domain"] != "a.example" || line["msg"] != "hello" {
				t.Errorf("line = %v, want domain a.example and msg hello", line)
			}
		})
	}
}

func TestLevel(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, slog.LevelWarn)
	l.Info("quiet")
	if buf.Len() != 0 {
		t.Errorf("info line written at warn level: %q", buf.String())
	}
}

func TestFromWithoutLogger(t *testing.T) {
	if From(context.Background()) != slog.Default() {
		t.Error("From(empty context) is not slog.Default()")
	}
}
