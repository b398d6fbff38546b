// Package offlinetest starts the offline engines for integration tests,
// once per test (Start) or once per package (Main). Without the pinned
// tools (`make tools`), or with -short, integration tests skip with one
// line saying so, and unit tests still run.
package offlinetest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/certflow/certflow/offline"
)

// startTimeout bounds starting the engines and creating their tables.
const startTimeout = 3 * time.Minute

// SkipReason says why integration tests cannot run here, or "" when they
// can: -short, or the tools `make tools` installs are missing.
func SkipReason() string {
	if testing.Short() {
		return "integration test skipped with -short"
	}
	toolsOnce.Do(func() {
		if _, err := offline.FindTools(""); err != nil {
			toolsMissing = "integration test skipped: the offline tools are not installed (run `make tools`)"
		}
	})
	return toolsMissing
}

var (
	toolsOnce    sync.Once
	toolsMissing string
)

// Require skips t unless the offline tools can run.
func Require(t testing.TB) {
	t.Helper()
	if reason := SkipReason(); reason != "" {
		t.Skip(reason)
	}
}

// Start starts a Stack for one test and stops it when the test ends. The
// test is skipped when Require would skip it, and fails when the stack does
// not start.
func Start(t testing.TB, opts offline.Options) *offline.Stack {
	t.Helper()
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := offline.Start(ctx, opts)
	if err != nil {
		t.Fatalf("offline stack: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Main is a package's TestMain body: unless integration tests are skipped
// (SkipReason), it starts one Stack with opts for the whole package and
// hands it to setup before the tests run; otherwise setup is not called and
// the tests find nothing set up (they call Require). It returns the exit
// code for os.Exit.
func Main(m *testing.M, opts offline.Options, setup func(*offline.Stack)) int {
	flag.Parse()
	if reason := SkipReason(); reason != "" {
		if !testing.Short() {
			fmt.Fprintln(os.Stderr, reason)
		}
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	s, err := offline.Start(ctx, opts)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "offline stack:", err)
		return 1
	}
	defer s.Close()
	setup(s)
	return m.Run()
}
