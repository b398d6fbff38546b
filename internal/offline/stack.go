// Package offline runs certflow's offline stack: the real engines certflow
// talks to in AWS, started on loopback. DynamoDB Local stands in for
// DynamoDB, moto_server for KMS, EventBridge, SQS and Route 53, Pebble for
// the ACME CA and pebble-challtestsrv for DNS. Tests start a Stack from
// TestMain; `make run` and `make demo` start one with fixed ports.
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
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// KMSKeyAlias names the offline KMS key.
const KMSKeyAlias = "alias/certflow-offline"

// Region is the region every offline client uses.
const Region = "us-east-1"

// AccountID is the account ID of offline ARNs.
const AccountID = "000000000000"

// Ports fixes the listening ports; zero picks a free one.
type Ports struct {
	DynamoDB           int
	Moto               int
	Pebble             int
	PebbleManagement   int
	DNS                int // pebble-challtestsrv's DNS server (UDP and TCP)
	ChallSrvManagement int
	HTTP01             int // where Pebble validates HTTP-01 challenges
	PebbleTLSALPN      int
}

// Options says which parts to start and how.
type Options struct {
	DynamoDB bool
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
	// Cache is the tools folder; empty uses FindTools' default.
	Cache string
}

// BlockedDomain is on Pebble's blocklist by default: orders for it are
// rejected (rejectedIdentifier).
const BlockedDomain = "blocked.customer.example"

// Stack is a running offline stack. Its fields are the endpoints of the parts
// that were started.
type Stack struct {
	Tools *Tools
	Dir   string // scratch folder, removed by Close

	DynamoDBEndpoint string // http://127.0.0.1:PORT
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
	ChallSrvURL     string // http://127.0.0.1:PORT, pebble-challtestsrv's management API
	DNSAddr         string // 127.0.0.1:PORT, pebble-challtestsrv's DNS server
	HTTP01Addr      string // 127.0.0.1:PORT, where Pebble sends HTTP-01 validations

	mu        sync.Mutex
	endpoints map[string]string // service ID (as in AWS_ENDPOINT_URL_<ID>) -> URL
	procs     []*process
	logs      io.Writer
}

// Start starts the requested parts and waits until each is ready. On error,
// whatever was started is stopped again.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	tools, err := FindTools(opts.Cache)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "certflow-offline-")
	if err != nil {
		return nil, fmt.Errorf("offline stack: %w", err)
	}
	s := &Stack{Tools: tools, Dir: dir, logs: opts.Logs, endpoints: map[string]string{}}
	if s.logs == nil {
		s.logs = io.Discard
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if opts.DynamoDB {
		if err := s.retry(opts.Ports.DynamoDB == 0, func() error { return s.startDynamoDB(ctx, opts.Ports.DynamoDB) }); err != nil {
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
			last.stop(2 * time.Second)
		} else {
			s.mu.Unlock()
		}
	}
	return err
}

// Close stops every process of the stack and removes its scratch folder.
func (s *Stack) Close() {
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop(5 * time.Second)
	}
	if s.Dir != "" {
		os.RemoveAll(s.Dir)
	}
}

func (s *Stack) track(p *process) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs = append(s.procs, p)
}

// SetEndpoint points a service at url in the AWSConfig and Env of the stack;
// id is the service ID of AWS_ENDPOINT_URL_<ID> (e.g. "SFN", "LAMBDA").
func (s *Stack) SetEndpoint(id, url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints[strings.ToUpper(id)] = url
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

// AWSConfig returns an aws.Config with dummy credentials whose clients reach
// the stack's services (the same per-service endpoint mechanism as the
// AWS_ENDPOINT_URL_<SERVICE> variables, through a shared config file).
func (s *Stack) AWSConfig(ctx context.Context) (aws.Config, error) {
	s.mu.Lock()
	var b strings.Builder
	b.WriteString("[profile certflow-offline]\nservices = certflow-offline\n\n[services certflow-offline]\n")
	for id, url := range s.endpoints {
		fmt.Fprintf(&b, "%s =\n  endpoint_url = %s\n", strings.ToLower(id), url)
	}
	s.mu.Unlock()
	f, err := os.CreateTemp(s.Dir, "aws-config-")
	if err != nil {
		return aws.Config{}, fmt.Errorf("offline aws config: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return aws.Config{}, fmt.Errorf("offline aws config: %w", err)
	}
	f.Close()
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("offline", "offline", "")),
		config.WithSharedConfigFiles([]string{f.Name()}),
		config.WithSharedCredentialsFiles([]string{}),
		config.WithSharedConfigProfile("certflow-offline"),
		config.WithEC2IMDSClientEnableState(1), // imds.ClientDisabled
	)
	if err != nil {
		return aws.Config{}, fmt.Errorf("offline aws config: %w", err)
	}
	return cfg, nil
}

func (s *Stack) startDynamoDB(ctx context.Context, port int) error {
	port, err := portOrFree(port)
	if err != nil {
		return err
	}
	dbDir := filepath.Join(s.Dir, "dynamodb")
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		return err
	}
	p, err := startProcess("DynamoDB Local", s.logs, nil, s.Tools.DynamoDBDir, s.Tools.Java,
		"-Djava.library.path="+filepath.Join(s.Tools.DynamoDBDir, "DynamoDBLocal_lib"),
		"-Xmx512m",
		"-jar", filepath.Join(s.Tools.DynamoDBDir, "DynamoDBLocal.jar"),
		"-inMemory", "-sharedDb", "-disableTelemetry", "-port", strconv.Itoa(port))
	if err != nil {
		return err
	}
	s.track(p)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := p.waitReady(ctx, 60*time.Second, httpAnswers(url)); err != nil {
		return err
	}
	s.DynamoDBEndpoint = url
	s.SetEndpoint("DYNAMODB", url)
	s.SetEndpoint("DYNAMODB_STREAMS", url)
	return nil
}

func (s *Stack) startMoto(ctx context.Context, port int) error {
	port, err := portOrFree(port)
	if err != nil {
		return err
	}
	// Dummy credentials and no instance metadata: moto must never look for
	// credentials off this machine.
	env := []string{"AWS_EC2_METADATA_DISABLED=true", "AWS_ACCESS_KEY_ID=offline", "AWS_SECRET_ACCESS_KEY=offline", "AWS_DEFAULT_REGION=" + Region}
	p, err := startProcess("moto_server", s.logs, env, s.Dir, s.Tools.MotoServer, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	if err != nil {
		return err
	}
	s.track(p)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := p.waitReady(ctx, 60*time.Second, httpAnswers(url+"/moto-api/")); err != nil {
		return err
	}
	s.MotoEndpoint = url
	for _, id := range []string{"KMS", "EVENTBRIDGE", "SQS", "ROUTE_53", "CLOUDWATCH", "STS"} {
		s.SetEndpoint(id, url)
	}
	cfg, err := s.AWSConfig(ctx)
	if err != nil {
		return err
	}
	out, err := kms.NewFromConfig(cfg).CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("certflow offline key")})
	if err != nil {
		return fmt.Errorf("create the offline KMS key in moto: %w", err)
	}
	s.KMSKeyID = aws.ToString(out.KeyMetadata.KeyId)
	// A stable name for env.json and `sam local invoke`.
	if _, err := kms.NewFromConfig(cfg).CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(KMSKeyAlias), TargetKeyId: out.KeyMetadata.KeyId}); err != nil {
		return fmt.Errorf("alias the offline KMS key: %w", err)
	}
	return nil
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

func portOrFree(port int) (int, error) {
	if port != 0 {
		return port, nil
	}
	return FreePort()
}

var errNotStarted = errors.New("offline: that part of the stack was not started")
