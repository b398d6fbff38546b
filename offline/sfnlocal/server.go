// Package sfnlocal runs a local Step Functions endpoint for the offline
// stack: a Node process (sfnlocal.mjs, embedded here) serves the Step
// Functions API (AWS JSON 1.0: StartExecution, DescribeExecution,
// ListExecutions, ListStateMachines, DescribeStateMachine, StopExecution,
// GetExecutionHistory) on a loopback address and runs executions of the real
// definitions with aws-local-stepfunctions. Task states invoke their Lambda
// functions through a Lambda Invoke API endpoint, such as the one package
// lambdaapi serves.
package sfnlocal

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/certflow/certflow/offline/proc"
	"github.com/certflow/certflow/offline/template"
)

// readyPrefix starts the line the script prints once it accepts requests.
const readyPrefix = "certflow-sfnlocal listening "

// startTimeout bounds how long Start waits for the endpoint to be ready.
const startTimeout = 30 * time.Second

//go:embed sfnlocal.mjs
var script []byte

// StateMachine is a state machine the local endpoint serves.
type StateMachine struct {
	// Name is the state machine's name; executions are named
	// arn:aws:states:<region>:<account>:execution:<Name>:<execution name>.
	Name string
	// ARN is the state machine's ARN; empty means
	// template.StateMachineARN(Name).
	ARN string
	// Definition is the Amazon States Language definition with every
	// DefinitionSubstitution already applied (template.StateMachines).
	Definition []byte
}

// Options configure Start.
type Options struct {
	// NodeBin is the node executable (Node 22 or later).
	NodeBin string
	// ModulesDir is the node_modules directory that holds
	// aws-local-stepfunctions (and its dependency @aws-sdk/client-lambda).
	ModulesDir string
	// Addr is the loopback address to listen on; empty means
	// "127.0.0.1:0" (a free port).
	Addr string
	// LambdaEndpoint is the URL of the Lambda Invoke API that Task states
	// call, such as lambdaapi's Server.URL().
	LambdaEndpoint string
	// StateMachines are served from the start; there is no
	// CreateStateMachine.
	StateMachines []StateMachine
	// WaitOverride, when positive, replaces the duration of every Wait
	// state that waits a number of seconds; a Wait until a timestamp (an
	// order slot of the budget) names a real time and is kept. The
	// seconds the definition computed stay visible in the history: they
	// are in the Wait state's input.
	WaitOverride time.Duration
	// RetryOverride, when positive, replaces every Retry interval.
	RetryOverride time.Duration
	// Stdout and Stderr receive the process's output; nil discards it.
	Stdout, Stderr io.Writer
}

// Server is a running local Step Functions endpoint.
type Server struct {
	endpoint string
	proc     *proc.Process
	stdin    io.Closer
	dir      string
	close    sync.Once
	closeErr error
}

// config is what the script reads from CERTFLOW_SFN_CONFIG.
type config struct {
	Host            string          `json:"host"`
	Port            int             `json:"port"`
	Region          string          `json:"region"`
	AccountID       string          `json:"accountId"`
	LambdaEndpoint  string          `json:"lambdaEndpoint"`
	WaitOverrideMS  *int64          `json:"waitOverrideMs"`
	RetryOverrideMS *int64          `json:"retryOverrideMs"`
	StateMachines   []configMachine `json:"stateMachines"`
}

type configMachine struct {
	Name       string `json:"name"`
	ARN        string `json:"arn"`
	Definition string `json:"definition"`
}

// Start starts the endpoint and returns once it answers requests, or with an
// error that includes the process's last output. ctx bounds only the start;
// the endpoint runs until Close.
func Start(ctx context.Context, opts Options) (*Server, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("start local step functions: %w", err)
	}
	for _, f := range []struct{ path, what string }{
		{opts.NodeBin, "node"},
		{filepath.Join(opts.ModulesDir, "aws-local-stepfunctions", "package.json"), "aws-local-stepfunctions"},
	} {
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("start local step functions: %s not found at %s (run make tools)", f.what, f.path)
		}
	}
	dir, err := os.MkdirTemp("", "certflow-sfnlocal-")
	if err != nil {
		return nil, fmt.Errorf("start local step functions: %w", err)
	}
	s, err := start(ctx, opts, cfg, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start local step functions: %w", err)
	}
	return s, nil
}

func newConfig(opts Options) (*config, error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("address %q is not a loopback IP", addr)
	}
	port, err := net.LookupPort("tcp", portText)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", addr, err)
	}
	if opts.LambdaEndpoint == "" {
		return nil, errors.New("no Lambda endpoint")
	}
	if len(opts.StateMachines) == 0 {
		return nil, errors.New("no state machines")
	}
	cfg := &config{Host: host, Port: port, Region: template.Region, AccountID: template.AccountID, LambdaEndpoint: opts.LambdaEndpoint}
	if opts.WaitOverride > 0 {
		ms := opts.WaitOverride.Milliseconds()
		cfg.WaitOverrideMS = &ms
	}
	if opts.RetryOverride > 0 {
		ms := opts.RetryOverride.Milliseconds()
		cfg.RetryOverrideMS = &ms
	}
	for _, sm := range opts.StateMachines {
		if sm.Name == "" {
			return nil, errors.New("state machine without a name")
		}
		if !json.Valid(sm.Definition) {
			return nil, fmt.Errorf("state machine %q: definition is not JSON (are all substitutions applied?)", sm.Name)
		}
		arn := sm.ARN
		if arn == "" {
			arn = template.StateMachineARN(sm.Name)
		}
		cfg.StateMachines = append(cfg.StateMachines, configMachine{Name: sm.Name, ARN: arn, Definition: string(sm.Definition)})
	}
	return cfg, nil
}

func start(ctx context.Context, opts Options, cfg *config, dir string) (*Server, error) {
	scriptPath := filepath.Join(dir, "sfnlocal.mjs")
	if err := os.WriteFile(scriptPath, script, 0o600); err != nil {
		return nil, err
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, cfgJSON, 0o600); err != nil {
		return nil, err
	}

	cmd := exec.Command(opts.NodeBin, scriptPath)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"CERTFLOW_SFN_CONFIG="+cfgPath,
		"CERTFLOW_SFN_MODULES="+opts.ModulesDir,
		"AWS_ENDPOINT_URL_LAMBDA="+opts.LambdaEndpoint,
		"AWS_REGION="+template.Region,
		"AWS_ACCESS_KEY_ID=offline",
		"AWS_SECRET_ACCESS_KEY=offline",
	)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr := &tail{w: opts.Stderr}
	cmd.Stderr = stderr
	p, err := proc.Start("Step Functions host (node)", cmd)
	if err != nil {
		return nil, err
	}
	s := &Server{proc: p, stdin: stdin, dir: dir}

	ready := make(chan string, 1)
	go func() {
		out := opts.Stdout
		if out == nil {
			out = io.Discard
		}
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if url, ok := strings.CutPrefix(strings.TrimSpace(line), readyPrefix); ok {
				ready <- url
				_, _ = io.Copy(out, r)
				return
			}
			_, _ = io.WriteString(out, line)
			if err != nil {
				return
			}
		}
	}()

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case url := <-ready:
		s.endpoint = url
		return s, nil
	case <-p.Done():
		_, waitErr := p.Exited()
		return nil, fmt.Errorf("node exited before it was ready: %v: %s", waitErr, stderr.String())
	case <-timer.C:
		_ = s.Close()
		return nil, fmt.Errorf("not ready after %s: %s", startTimeout, stderr.String())
	case <-ctx.Done():
		_ = s.Close()
		return nil, ctx.Err()
	}
}

// Endpoint is the URL to give AWS_ENDPOINT_URL_SFN or an sfn client's
// BaseEndpoint, such as "http://127.0.0.1:41235".
func (s *Server) Endpoint() string {
	return s.endpoint
}

// Process is the node process serving the endpoint.
func (s *Server) Process() *proc.Process { return s.proc }

// Close stops the process it started (proc.Process.Stop), waits for it and
// removes its temporary files. Running executions end with it.
func (s *Server) Close() error {
	s.close.Do(func() {
		_ = s.stdin.Close()
		s.proc.Stop(5 * time.Second)
		if err := os.RemoveAll(s.dir); err != nil {
			s.closeErr = fmt.Errorf("close local step functions: %w", err)
		}
	})
	return s.closeErr
}

// tail forwards writes to w (if any) and keeps the last output for error
// messages.
type tail struct {
	mu  sync.Mutex
	w   io.Writer
	buf bytes.Buffer
}

const tailSize = 4096

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w != nil {
		_, _ = t.w.Write(p)
	}
	t.buf.Write(p)
	if t.buf.Len() > 2*tailSize {
		b := t.buf.Bytes()[t.buf.Len()-tailSize:]
		t.buf.Reset()
		t.buf.Write(b)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf.Bytes()
	if len(b) > tailSize {
		b = b[len(b)-tailSize:]
	}
	return strings.TrimSpace(string(b))
}
