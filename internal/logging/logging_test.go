package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

func TestIntoWith(t *testing.T) {
	var buf bytes.Buffer
	ctx := Into(context.Background(), New(&buf, slog.LevelInfo))
	ctx = With(ctx, "domain", "a.example")
	From(ctx).Info("hello")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log line %q is not JSON: %v", buf.String(), err)
	}
	if line["domain"] != "a.example" || line["msg"] != "hello" {
		t.Errorf("line = %v, want domain a.example and msg hello", line)
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
