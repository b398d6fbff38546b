// Package offline runs the engines certflow talks to in AWS, on loopback:
// DynamoDB Local stands in for DynamoDB, moto_server for KMS, EventBridge,
// SQS and Route 53, Pebble for the ACME CA and pebble-challtestsrv for DNS.
// Integration tests start a Stack (through offlinetest); package deploy
// adds the functions, the state machine and the API on top of one.
//
// Every server listens on 127.0.0.1 (DynamoDB Local has no bind option and
// listens on all interfaces; nothing is ever sent to it but over loopback).
package offline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/logging"

	"github.com/certflow/certflow/offline/proc"
	"github.com/certflow/certflow/offline/template"
)

// The account and region of every offline ARN and client.
const (
	Region    = template.Region
	AccountID = template.AccountID
)

// KMSKeyAlias names the offline KMS key.
const KMSKeyAlias = "alias/certflow-offline"

// Ports fixes the listening ports of the offline system; zero picks a free
// one. The engines use the first eight; package deploy the last three.
type Ports struct {
	DynamoDB           int
	Moto               int
	Pebble             int
	PebbleManagement   int
	DNS                int // pebble-challtestsrv's DNS server (UDP and TCP)
	ChallSrvManagement int
	HTTP01             int // where Pebble validates HTTP-01 challenges
	PebbleTLSALPN      int

	API    int // the HTTP API (certificates, /sni, the HTTP-01 path)
	Lambda int // the local Lambda Invoke API
	SFN    int // the local Step Functions API
}

// DefaultPorts are the documented ports of `make run`.
var DefaultPorts = Ports{
	DynamoDB: 8000, Moto: 5000, Pebble: 14000, PebbleManagement: 15000,
	DNS: 8053, ChallSrvManagement: 8055, HTTP01: 5002, PebbleTLSALPN: 5001,
	API: 8080, Lambda: 3001, SFN: 8083,
}

// Options says which engines to start and how.
type Options struct {
	DynamoDB bool // DynamoDB Local, with the tables of template.yaml
	Moto     bool
	Pebble   bool // Pebble and pebble-challtestsrv

	Ports Ports
	// PebbleEnv adds environment for Pebble, e.g. PEBBLE_WFE_NONCEREJECT=30.
	PebbleEnv map[string]string
	// CertificateValidity is the lifetime of certificates Pebble issues by
	// default; zero keeps Pebble's 90 days.
	CertificateValidity time.Duration
	// Blocklist is Pebble's domainBlocklist; nil means BlockedDomain.
	Blocklist []string
	// Logs receives every process's output; nil discards it.
	Logs io.Writer
	// FallbackPebble starts a second Pebble, with a root of its own, as
	// the fallback CA (Stack.FallbackDirectoryURL).
	FallbackPebble bool
	// DynamoDBOnDisk keeps DynamoDB Local's data in a folder of the stack
	// instead of in memory, so that a restarted DynamoDB Local (see
	// Supervise) still has its tables and items. `make run` and the chaos
	// run use it; tests keep the faster in-memory store.
	DynamoDBOnDisk bool
	// Cache is the tools folder; empty uses FindTools' default.
	Cache string
}

// BlockedDomain is on Pebble's blocklist by default: orders for it are
// rejected (rejectedIdentifier).
const BlockedDomain = "blocked.customer.example"

// Tables names the tables created from template.yaml.
type Tables struct {
	Certificates string
	Timers       string
}

// Stack is a running set of engines. Its fields are the endpoints of the
// parts that were started.
type Stack struct {
	Tools    *Tools
	Template *template.Template
	Dir      string // scratch folder, removed by Close

	DynamoDBEndpoint string // http://127.0.0.1:PORT
	Tables           Tables // created when DynamoDB Local runs
	MotoEndpoint     string // http://127.0.0.1:PORT (KMS, EventBridge, SQS, Route 53)
	KMSKeyID         string // a symmetric key created in moto

	PebbleDirectoryURL  string // https://127.0.0.1:PORT/dir
	PebbleManagementURL string // https://127.0.0.1:PORT
	// PebbleTLSCAFile is the CA of Pebble's own HTTPS listener: the extra
	// root an ACME client needs (CERTFLOW_ACME_CA_ROOTS).
	PebbleTLSCAFile string
	// PebbleRootsFile holds the root of the certificates Pebble issues, to
	// verify issued chains against.
	PebbleRootsFile string
	// The fallback CA's, with Options.FallbackPebble (it shares the TLS CA
	// file, the DNS and the HTTP-01 port with the primary).
	FallbackDirectoryURL  string
	FallbackManagementURL string
	FallbackRootsFile     string
	ChallSrvURL           string // http://127.0.0.1:PORT, pebble-challtestsrv's management API
	DNSAddr               string // 127.0.0.1:PORT, pebble-challtestsrv's DNS server
	HTTP01Addr            string // 127.0.0.1:PORT, where Pebble sends HTTP-01 validations

	// AWS reaches every service of the stack with dummy credentials; it
	// is reloaded by SetEndpoint.
	AWS aws.Config

	mu        sync.Mutex
	endpoints map[string]string // service ID (as in AWS_ENDPOINT_URL_<ID>) -> URL
	procs     []*proc.Process
	logs      io.Writer

	pebble   *pebble // the primary CA
	fallback *pebble // the fallback CA, with Options.FallbackPebble

	// restarts start each engine again on its ports, by process name;
	// closing stops the supervisor from restarting anything.
	restarts        map[string]func(context.Context) error
	closing         bool
	stopSupervising func() // set by Supervise
}

// Start starts the requested engines and waits until each is ready; with
// DynamoDB it creates the tables of template.yaml. On error, whatever was
// started is stopped again.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	tools, err := FindTools(opts.Cache)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.Load(tools.TemplatePath(), template.Options{})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "certflow-offline-")
	if err != nil {
		return nil, fmt.Errorf("offline stack: %w", err)
	}
	s := &Stack{Tools: tools, Template: tmpl, Dir: dir, logs: opts.Logs, endpoints: map[string]string{}, restarts: map[string]func(context.Context) error{}}
	if s.logs == nil {
		s.logs = io.Discard
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.loadAWS(ctx); err != nil {
		return nil, err
	}
	if opts.DynamoDB {
		if err := s.retry(opts.Ports.DynamoDB == 0, func() error { return s.startDynamoDB(ctx, opts.Ports.DynamoDB, opts.DynamoDBOnDisk) }); err != nil {
			return nil, err
		}
		if s.Tables, err = s.createTables(ctx); err != nil {
			return nil, err
		}
	}
	if opts.Moto {
		if err := s.retry(opts.Ports.Moto == 0, func() error { return s.startMoto(ctx, opts.Ports.Moto) }); err != nil {
			return nil, err
		}
	}
	if opts.Pebble {
		if err := s.retry(opts.Ports.DNS == 0, func() error { return s.startChallTestSrv(ctx, opts.Ports) }); err != nil {
			return nil, err
		}
		if err := s.retry(opts.Ports.Pebble == 0, func() error { return s.startPebble(ctx, opts) }); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// retry starts a part again when its free port was taken between being
// found and being bound (tests of several packages start stacks at once).
func (s *Stack) retry(freePorts bool, start func() error) error {
	attempts := 1
	if freePorts {
		attempts = 3
	}
	var err error
	for range attempts {
		if err = start(); err == nil {
			return nil
		}
		s.mu.Lock()
		if n := len(s.procs); n > 0 {
			last := s.procs[n-1]
			s.procs = s.procs[:n-1]
			s.mu.Unlock()
			last.Stop(2 * time.Second)
		} else {
			s.mu.Unlock()
		}
	}
	return err
}

// Close stops every process of the stack and removes its scratch folder.
func (s *Stack) Close() {
	s.mu.Lock()
	stop := s.stopSupervising
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.mu.Lock()
	s.closing = true
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop(5 * time.Second)
	}
	if s.Dir != "" {
		os.RemoveAll(s.Dir)
	}
}

func (s *Stack) track(p *proc.Process) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs = append(s.procs, p)
}

// untrack forgets p, which its caller stops.
func (s *Stack) untrack(p *proc.Process) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs = slices.DeleteFunc(s.procs, func(q *proc.Process) bool { return q == p })
}

// start starts one engine process with its output going to the stack's logs.
func (s *Stack) start(name string, env []string, dir, bin string, args ...string) (*proc.Process, error) {
	cmd := command(bin, args...)
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	p, err := proc.Start(name, cmd)
	if err != nil {
		return nil, err
	}
	s.track(p)
	return p, nil
}

// SetEndpoint points a service at url in AWS and Env; id is the service ID
// of AWS_ENDPOINT_URL_<ID> (e.g. "SFN", "LAMBDA").
func (s *Stack) SetEndpoint(ctx context.Context, id, url string) error {
	s.mu.Lock()
	s.endpoints[strings.ToUpper(id)] = url
	s.mu.Unlock()
	return s.loadAWS(ctx)
}

// Env returns the environment a function (or the AWS CLI) needs to reach the
// stack: dummy credentials, the region and AWS_ENDPOINT_URL_<SERVICE> for
// every service of the stack.
func (s *Stack) Env() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	env := []string{
		"AWS_ACCESS_KEY_ID=offline",
		"AWS_SECRET_ACCESS_KEY=offline",
		"AWS_REGION=" + Region,
		"AWS_DEFAULT_REGION=" + Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
	for id, url := range s.endpoints {
		env = append(env, "AWS_ENDPOINT_URL_"+id+"="+url)
	}
	return env
}

// loadAWS loads s.AWS: dummy credentials, and clients that reach the
// stack's services (the per-service endpoint mechanism of the
// AWS_ENDPOINT_URL_<SERVICE> variables, through a shared config file).
func (s *Stack) loadAWS(ctx context.Context) error {
	s.mu.Lock()
	var b strings.Builder
	b.WriteString("[profile certflow-offline]\nservices = certflow-offline\n\n[services certflow-offline]\n")
	for id, url := range s.endpoints {
		fmt.Fprintf(&b, "%s =\n  endpoint_url = %s\n", strings.ToLower(id), url)
	}
	s.mu.Unlock()
	f, err := os.CreateTemp(s.Dir, "aws-config-")
	if err != nil {
		return fmt.Errorf("offline aws config: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("offline aws config: %w", err)
	}
	f.Close()
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("offline", "offline", "")),
		config.WithSharedConfigFiles([]string{f.Name()}),
		config.WithSharedCredentialsFiles([]string{}),
		config.WithSharedConfigProfile("certflow-offline"),
		config.WithEC2IMDSClientEnableState(1), // imds.ClientDisabled
		config.WithLogger(crcQuiet{logging.NewStandardLogger(os.Stderr)}),
	)
	if err != nil {
		return fmt.Errorf("offline aws config: %w", err)
	}
	s.mu.Lock()
	s.AWS = cfg
	s.mu.Unlock()
	return nil
}

// crcQuiet drops the SDK's warning about a response checksum: DynamoDB
// Local answers errors (every failed condition) with an X-Amz-Crc32 header
// of 0, which the SDK would warn about each time. Other messages pass.
type crcQuiet struct{ next logging.Logger }

func (q crcQuiet) Logf(c logging.Classification, format string, v ...any) {
	if c == logging.Warn && strings.Contains(fmt.Sprintf(format, v...), "did not match expected checksum") {
		return
	}
	q.next.Logf(c, format, v...)
}

// httpAnswers succeeds once url answers any HTTP status.
func httpAnswers(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
}

var errNotStarted = errors.New("offline: that part of the stack was not started")
