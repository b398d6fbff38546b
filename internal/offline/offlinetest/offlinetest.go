// Package offlinetest starts the offline stack for integration tests, once
// per test (Start) or once per package (Main).
package offlinetest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/certflow/certflow/internal/offline"
)

// startTimeout bounds starting the stack and creating its tables.
const startTimeout = 3 * time.Minute

// Start starts an offline.Env for one test and stops it when the test
// ends. The test is skipped with -short or when the tools are not
// installed (make tools), and fails when the stack does not start.
func Start(t testing.TB, opts offline.Options) *offline.Env {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts the offline stack")
	}
	if _, err := offline.FindTools(""); err != nil {
		t.Skipf("offline tools missing (make tools): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	env, err := offline.StartEnv(ctx, opts)
	if err != nil {
		t.Fatalf("offline stack: %v", err)
	}
	t.Cleanup(env.Close)
	return env
}

// Main is a package's TestMain body: unless -short, it starts one
// offline.Env with opts for the whole package and hands it to setup before
// the tests run; the tests find it nil with -short and skip. It returns the
// exit code for os.Exit.
func Main(m *testing.M, opts offline.Options, setup func(*offline.Env)) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	env, err := offline.StartEnv(ctx, opts)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "offline stack:", err)
		return 1
	}
	defer env.Close()
	setup(env)
	return m.Run()
}
