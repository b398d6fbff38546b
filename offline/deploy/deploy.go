// Package deploy runs the whole of certflow offline, driven by template.yaml:
// the offline stack (DynamoDB Local, moto_server, Pebble, challtestsrv), every
// function of the template behind a local Lambda Invoke API, the state
// machine under aws-local-stepfunctions, the stream event source mapping,
// the sweeper's schedule, and the HTTP API routes of the template on a local
// API Gateway. It is the offline stand-in for one deployed stack; `make run`
// and `make demo` use it.
package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/wiring"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/apigw"
	"github.com/certflow/certflow/offline/caproxy"
	"github.com/certflow/certflow/offline/lambdaapi"
	"github.com/certflow/certflow/offline/proc"
	"github.com/certflow/certflow/offline/sfnlocal"
	"github.com/certflow/certflow/offline/streamrunner"
	"github.com/certflow/certflow/offline/template"
)

// The principals of the offline system (see apigw's identity): requests
// that name none act as apigw.DefaultPrincipal, a tenant that may also
// fetch keys (so curl and the demo work as they are); EdgePrincipal may
// fetch keys and is no tenant of anything; OperatorPrincipal may act for
// tenants. Any other principal a request names is a tenant of its own.
const (
	EdgePrincipal     = "arn:aws:sts::000000000000:assumed-role/certflow-edge/offline"
	OperatorPrincipal = "arn:aws:sts::000000000000:assumed-role/certflow-operator/offline"
)

// Names of the offline stack's resources.
const (
	StateMachine      = "IssuanceStateMachine"
	EventBus          = "certflow-events"
	EventsQueue       = "certflow-events-tap" // a rule copies every certflow event here
	OnFailureQueue    = "certflow-renewal-failures"
	renewalTriggerID  = "RenewalTriggerFunction"
	sweeperID         = "SweeperFunction"
	challengeFunction = "ChallengeFunction"
)

// Config configures a Deployment.
type Config struct {
	// Ports of every server; zero picks a free one (offline.DefaultPorts
	// are those of `make run`).
	Ports offline.Ports
	// CertificateValidity is the lifetime of offline certificates: short, so
	// renewals happen within minutes.
	CertificateValidity time.Duration
	// WaitOverride replaces the duration of every Wait state and Retry
	// interval of the state machine (zero: real waits). The computed
	// durations stay visible in the execution history.
	WaitOverride time.Duration
	// SweepEvery is how often the sweeper runs (the template says hourly).
	SweepEvery time.Duration
	// DueGrace is how long past the time a domain should need attention
	// the reconciler leaves it alone (CERTFLOW_DUE_GRACE: default 30s
	// offline, 1h in AWS).
	DueGrace time.Duration
	// OffboardAfter is how long a domain that moved away stays
	// quarantined before the sweeper offboards it (CERTFLOW_OFFBOARD_AFTER;
	// zero keeps the template's 7 days).
	OffboardAfter time.Duration
	// RequestCooldown is how long after a domain's issuance started it
	// may be requested again (CERTFLOW_REQUEST_COOLDOWN: default 30s
	// offline, FailureBackoffBaseSeconds in AWS).
	RequestCooldown time.Duration
	// Params overrides template parameters (e.g. MaxConsecutiveFailures).
	Params map[string]string
	// OrderBudget is the new-order budget (CERTFLOW_ORDER_BUDGET, "limit/
	// window"); empty means Let's Encrypt's "300/3h". A scale run
	// compresses it (say "30/30s").
	OrderBudget string
	// DynamoDBOnDisk keeps DynamoDB Local's data on disk, so that a
	// restart by the supervisor keeps the tables (make run, the chaos run).
	DynamoDBOnDisk bool
	// FallbackCA runs a second Pebble as the deployment's fallback CA,
	// with its own account and order budget.
	FallbackCA bool
	// NoEventsTap leaves out the rule that copies every certflow event to
	// EventsQueue: moto delivers to an SQS target at about 7 events a
	// second, which a scale run would wait on.
	NoEventsTap bool
	// CAProxy puts a recording, fault-injecting proxy (package caproxy) in
	// front of Pebble: the functions talk to the CA through it, and it
	// counts every order the CA sees.
	CAProxy bool
	// Logs receives the offline engines' output; FunctionLogger the functions'.
	Logs           io.Writer
	FunctionLogger *slog.Logger
	// Metrics receives the functions' embedded-metric lines (all functions
	// run in this process); nil keeps stdout.
	Metrics io.Writer
	// ConfigureAWS, if set, adjusts the AWS configuration every function is
	// built with (for example to meter DynamoDB capacity).
	ConfigureAWS func(*aws.Config)
	// OnStreamBatch, if set, sees every batch the stream runner delivers
	// to the renewal trigger (tests redeliver a record from it).
	OnStreamBatch func(events.DynamoDBEvent)
	// Setenv sets the functions' environment (default os.Setenv): the
	// variables template.yaml gives them, pointed at the offline stack.
	Setenv func(key, value string) error
}

// Deployment is a running offline certflow.
type Deployment struct {
	Stack             *offline.Stack
	CAProxy           *caproxy.Proxy // nil unless Config.CAProxy
	Table             string         // the certificate table
	TimerTable        string         // the renewal timers table, whose stream triggers renewals
	APIURL            string
	LambdaURL         string
	SFNURL            string
	StateMachineARN   string
	EventsQueueURL    string
	OnFailureQueueURL string

	handlers        map[string]lambda.Handler
	lambdaSrv       *lambdaapi.Server
	streamFaults    streamFaults
	stopSupervising func() // set by Supervise: stops it before Close stops the processes
	sfnMu           sync.Mutex
	sfnSrv          *sfnlocal.Server
	sfnOpts         sfnlocal.Options
	streams         *streamrunner.Runner
	servers         []*http.Server
	cancel          context.CancelFunc
	done            chan struct{}
}

// Start starts everything and returns once every part is ready.
func Start(ctx context.Context, cfg Config) (_ *Deployment, err error) {
	if cfg.Setenv == nil {
		cfg.Setenv = os.Setenv
	}
	if cfg.Metrics != nil {
		wiring.MetricsOutput = cfg.Metrics
	}
	logger := cfg.FunctionLogger
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(os.Stdout, nil))
	}
	stack, err := offline.Start(ctx, offline.Options{
		DynamoDB: true, Moto: true, Pebble: true,
		DynamoDBOnDisk:      cfg.DynamoDBOnDisk,
		FallbackPebble:      cfg.FallbackCA,
		Ports:               cfg.Ports,
		CertificateValidity: cfg.CertificateValidity,
		Logs:                cfg.Logs,
	})
	if err != nil {
		return nil, err
	}
	s := &Deployment{Stack: stack, handlers: map[string]lambda.Handler{}, done: make(chan struct{})}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := stack.Tools.NodeReady(); err != nil {
		return nil, err
	}
	s.Table, s.TimerTable = stack.Tables.Certificates, stack.Tables.Timers

	// The local Lambda and Step Functions endpoints, known before any
	// function is built, since functions build their clients once.
	if s.lambdaSrv, err = lambdaapi.Start(addr(cfg.Ports.Lambda)); err != nil {
		return nil, err
	}
	s.LambdaURL = s.lambdaSrv.URL()
	sfnPort, err := proc.PortOrFree(cfg.Ports.SFN)
	if err != nil {
		return nil, err
	}
	s.SFNURL = fmt.Sprintf("http://127.0.0.1:%d", sfnPort)
	if err := stack.SetEndpoint(ctx, "LAMBDA", s.LambdaURL); err != nil {
		return nil, err
	}
	if err := stack.SetEndpoint(ctx, "SFN", s.SFNURL); err != nil {
		return nil, err
	}
	s.StateMachineARN = template.StateMachineARN(StateMachine)
	awsCfg := stack.AWS
	if err := s.createMessaging(ctx, awsCfg, !cfg.NoEventsTap); err != nil {
		return nil, err
	}
	fnCfg := awsCfg.Copy()
	if cfg.ConfigureAWS != nil {
		cfg.ConfigureAWS(&fnCfg)
	}
	if cfg.DueGrace <= 0 {
		cfg.DueGrace = 30 * time.Second
	}
	if cfg.RequestCooldown <= 0 {
		cfg.RequestCooldown = 30 * time.Second
	}
	directory := stack.PebbleDirectoryURL
	if cfg.CAProxy {
		if s.CAProxy, err = caproxy.Start(ctx, caproxy.Options{Upstream: stack.PebbleDirectoryURL, UpstreamCAFile: stack.PebbleTLSCAFile}); err != nil {
			return nil, err
		}
		directory = s.CAProxy.DirectoryURL()
	}
	if cfg.OrderBudget == "" {
		cfg.OrderBudget = "300/3h"
	}
	if err := s.setEnv(cfg.Setenv, cfg, directory); err != nil {
		return nil, err
	}

	// Every function of the template, built as in AWS.
	tmpl := stack.Template
	if len(cfg.Params) > 0 {
		if tmpl, err = template.Load(stack.Tools.TemplatePath(), template.Options{Params: cfg.Params}); err != nil {
			return nil, err
		}
	}
	fns, err := tmpl.Functions()
	if err != nil {
		return nil, err
	}
	builders := wiring.Functions()
	for id := range fns {
		build, ok := builders[id]
		if !ok {
			return nil, fmt.Errorf("template function %s has no builder in internal/wiring", id)
		}
		h, err := build(ctx, fnCfg, logger.With("function", id))
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", id, err)
		}
		s.handlers[id] = h
		s.lambdaSrv.Register(id, s.handlers[id])
		if fn := fns[id]; fn.Timeout > 0 {
			s.lambdaSrv.SetTimeout(id, time.Duration(fn.Timeout)*time.Second)
		}
	}

	templateMachines, err := tmpl.StateMachines()
	if err != nil {
		return nil, err
	}
	var machines []sfnlocal.StateMachine
	for _, m := range templateMachines {
		machines = append(machines, sfnlocal.StateMachine{Name: m.Name, ARN: m.ARN, Definition: m.Definition})
	}
	s.sfnOpts = sfnlocal.Options{
		NodeBin: stack.Tools.Node, ModulesDir: stack.Tools.NodeModules,
		Addr: addr(sfnPort), LambdaEndpoint: s.LambdaURL, StateMachines: machines,
		WaitOverride: cfg.WaitOverride, RetryOverride: cfg.WaitOverride,
		Stdout: cfg.Logs, Stderr: cfg.Logs,
	}
	if s.sfnSrv, err = sfnlocal.Start(ctx, s.sfnOpts); err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if err := s.startStreams(runCtx, tmpl, awsCfg, cfg.OnStreamBatch, logger); err != nil {
		return nil, err
	}
	if err := s.startHTTP(fns, cfg.Ports.API, logger); err != nil {
		return nil, err
	}
	go s.sweep(runCtx, cfg.SweepEvery, logger)
	return s, nil
}

func (s *Deployment) setEnv(setenv func(k, v string) error, cfg Config, directory string) error {
	st := s.Stack
	env := map[string]string{
		wiring.EnvTable:           s.Table,
		wiring.EnvTimerTable:      s.TimerTable,
		wiring.EnvKMSKeyID:        st.KMSKeyID,
		wiring.EnvStateMachineARN: s.StateMachineARN,
		wiring.EnvEventBus:        EventBus,
		"CERTFLOW_ACME_DIRECTORY": directory,
		"CERTFLOW_ACME_CA_ROOTS":  st.PebbleTLSCAFile,
		"CERTFLOW_KEY_TYPE":       "ec256",
		// Pebble picks a random profile for an order that names none.
		"CERTFLOW_ACME_PROFILE":      "default",
		wiring.EnvACMEProfiles:       "default,shortlived",
		wiring.EnvDelegationZone:     offline.DelegationZone,
		"CERTFLOW_DNS01_PROVIDER":    "challtestsrv",
		"CERTFLOW_CHALLTESTSRV_URL":  st.ChallSrvURL,
		"CERTFLOW_DNS_RESOLVER":      st.DNSAddr,
		"CERTFLOW_EDGE_ADDRESSES":    offline.EdgeAddress + ",::1",
		"CERTFLOW_CAA_IDENTITIES":    "",
		"CERTFLOW_ORDER_BUDGET":      cfg.OrderBudget,
		domain.EnvAllowTestingTLDs:   "true", // names under .example, Pebble as the CA
		wiring.EnvDueGrace:           cfg.DueGrace.String(),
		wiring.EnvRequestCooldown:    cfg.RequestCooldown.String(),
		wiring.EnvDeliveryPrincipals: apigw.DefaultPrincipal + "," + EdgePrincipal,
		wiring.EnvTenantOperators:    OperatorPrincipal,
	}
	if cfg.OffboardAfter > 0 {
		env[wiring.EnvOffboardAfter] = cfg.OffboardAfter.String()
	}
	if st.FallbackDirectoryURL != "" {
		env["CERTFLOW_FALLBACK_ACME_DIRECTORY"] = st.FallbackDirectoryURL
		env["CERTFLOW_FALLBACK_ACME_CA_ROOTS"] = st.PebbleTLSCAFile
		env["CERTFLOW_FALLBACK_ORDER_BUDGET"] = cfg.OrderBudget
	}
	for _, kv := range st.Env() {
		k, v, _ := cut(kv)
		env[k] = v
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := setenv(k, env[k]); err != nil {
			return fmt.Errorf("set %s: %w", k, err)
		}
	}
	return nil
}

func cut(kv string) (string, string, bool) {
	for i := range kv {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

// createMessaging creates the event bus, a rule copying certflow events to a
// queue one can read, and the stream mapping's on-failure queue.
func (s *Deployment) createMessaging(ctx context.Context, cfg aws.Config, tap bool) error {
	eb := eventbridge.NewFromConfig(cfg)
	q := sqs.NewFromConfig(cfg)
	if _, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(EventBus)}); err != nil {
		return fmt.Errorf("create event bus: %w", err)
	}
	for _, name := range []string{EventsQueue, OnFailureQueue} {
		out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("create queue %s: %w", name, err)
		}
		if name == EventsQueue {
			s.EventsQueueURL = aws.ToString(out.QueueUrl)
		} else {
			s.OnFailureQueueURL = aws.ToString(out.QueueUrl)
		}
	}
	if !tap {
		return nil
	}
	queueARN := fmt.Sprintf("arn:aws:sqs:%s:%s:%s", offline.Region, offline.AccountID, EventsQueue)
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{
		Name: aws.String("certflow-events-tap"), EventBusName: aws.String(EventBus),
		EventPattern: aws.String(`{"source": ["certflow"]}`),
	}); err != nil {
		return fmt.Errorf("create event rule: %w", err)
	}
	_, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{
		Rule: aws.String("certflow-events-tap"), EventBusName: aws.String(EventBus),
		Targets: []ebtypes.Target{{Id: aws.String("tap"), Arn: aws.String(queueARN)}},
	})
	if err != nil {
		return fmt.Errorf("create event target: %w", err)
	}
	return nil
}

func (s *Deployment) startStreams(ctx context.Context, tmpl *template.Template, cfg aws.Config, observe func(events.DynamoDBEvent), logger *slog.Logger) error {
	m, err := streamrunner.FromTemplate(tmpl, renewalTriggerID)
	if err != nil {
		return err
	}
	h := s.handlers[renewalTriggerID]
	deliver := func(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		if observe != nil {
			observe(ev)
		}
		var resp events.DynamoDBEventResponse
		err := invokeJSON(ctx, h, ev, &resp)
		return resp, err
	}
	invoke := func(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		ev = s.streamFaults.apply(ctx, ev, deliver)
		return deliver(ctx, ev)
	}
	// The mapping's stream is the one template.yaml names.
	table, ok := map[string]string{offline.TableLogicalID: s.Table, offline.TimersLogicalID: s.TimerTable}[m.StreamResource]
	if !ok {
		return fmt.Errorf("%s reads the stream of %q, which is not a table of the offline stack", renewalTriggerID, m.StreamResource)
	}
	s.streams = streamrunner.New(dynamodbstreams.NewFromConfig(cfg), table, m, invoke, streamrunner.Options{
		StartingPosition: streamrunner.TrimHorizon,
		FunctionARN:      lambdaapi.FunctionARN(renewalTriggerID),
		Sink:             streamrunner.NewSQSSink(sqs.NewFromConfig(cfg), s.OnFailureQueueURL),
		Logger:           logger.With("component", "stream-runner"),
	})
	return s.streams.Start(ctx)
}

// startHTTP serves the template's HTTP API routes and the HTTP-01
// responder where Pebble validates challenges. Routes with the API's
// default authorizer (AWS_IAM) carry the caller the request names in
// apigw.PrincipalHeader, without checking any signature.
func (s *Deployment) startHTTP(fns map[string]template.Function, apiPort int, logger *slog.Logger) error {
	var routes, challenge []apigw.Route
	for _, id := range slices.Sorted(maps.Keys(fns)) {
		for _, ev := range fns[id].Events {
			key, ok := ev.RouteKey()
			if !ok {
				continue
			}
			route := apigw.Route{Key: key, Handler: apiHandler(s.handlers[id]), IAM: ev.Authorizer() != "NONE"}
			routes = append(routes, route)
			if id == challengeFunction {
				challenge = append(challenge, route)
			}
		}
	}
	if len(challenge) == 0 {
		return errors.New("template has no HttpApi route for " + challengeFunction)
	}
	apiAddr := addr(apiPort)
	if apiPort == 0 {
		p, err := proc.FreePort()
		if err != nil {
			return err
		}
		apiAddr = addr(p)
	}
	for _, srv := range []struct {
		addr   string
		routes []apigw.Route
	}{{apiAddr, routes}, {s.Stack.HTTP01Addr, challenge}} {
		l, err := net.Listen("tcp", srv.addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", srv.addr, err)
		}
		hs := &http.Server{Handler: apigw.New(logger, srv.routes...), ReadHeaderTimeout: 10 * time.Second}
		s.servers = append(s.servers, hs)
		go hs.Serve(l)
	}
	s.APIURL = "http://" + apiAddr
	return nil
}

func apiHandler(h lambda.Handler) apigw.Handler {
	return func(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		var resp events.APIGatewayV2HTTPResponse
		err := invokeJSON(ctx, h, req, &resp)
		return resp, err
	}
}

// invokeJSON invokes h the way the Lambda service does: JSON in, JSON out.
func invokeJSON(ctx context.Context, h lambda.Handler, in, out any) error {
	payload, err := json.Marshal(in)
	if err != nil {
		return err
	}
	b, err := h.Invoke(ctx, payload)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// sweep runs the sweeper on its schedule, as EventBridge Scheduler would.
func (s *Deployment) sweep(ctx context.Context, every time.Duration, logger *slog.Logger) {
	defer close(s.done)
	if every <= 0 {
		return
	}
	h := s.handlers[sweeperID]
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			ev := events.EventBridgeEvent{
				Version: "0", ID: fmt.Sprintf("offline-%d", now.UnixNano()), DetailType: "Scheduled Event",
				Source: "aws.events", AccountID: offline.AccountID, Time: now.UTC(), Region: offline.Region,
				Detail: json.RawMessage(`{}`),
			}
			var summary json.RawMessage
			if err := invokeJSON(ctx, h, ev, &summary); err != nil && ctx.Err() == nil {
				logger.Error("scheduled sweep failed", "error", err.Error())
			}
		}
	}
}

// Close stops everything, newest first.
func (s *Deployment) Close() {
	if s.stopSupervising != nil {
		s.stopSupervising()
	}
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	for _, hs := range s.servers {
		hs.Close()
	}
	if s.streams != nil {
		s.streams.Close()
	}
	s.sfnMu.Lock()
	if s.sfnSrv != nil {
		s.sfnSrv.Close()
	}
	s.sfnMu.Unlock()
	if s.lambdaSrv != nil {
		s.lambdaSrv.Close()
	}
	if s.CAProxy != nil {
		s.CAProxy.Close()
	}
	if s.Stack != nil {
		s.Stack.Close()
	}
}

// Supervise watches every process of the deployment until ctx ends (see
// offline.Stack.Supervise): one that dies is reported by name and started
// again on its ports. The Step Functions host comes back without the
// executions it ran, as an engine that lost them; the reconciler (the
// sweeper) restarts their domains once they are due.
func (s *Deployment) Supervise(ctx context.Context, report func(name string, err error)) {
	ctx, cancel := context.WithCancel(ctx)
	supervising := make(chan struct{})
	s.stopSupervising = func() {
		cancel()
		<-supervising
	}
	s.Stack.Supervise(ctx, report)
	go func() {
		defer close(supervising)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		down := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			s.sfnMu.Lock()
			srv := s.sfnSrv
			s.sfnMu.Unlock()
			if exited, err := srv.Process().Exited(); exited && !down {
				report(srv.Process().Name(), err)
				_ = srv.Close()
				down = true
			}
			if !down {
				continue
			}
			next, err := sfnlocal.Start(ctx, s.sfnOpts)
			if err != nil {
				report(srv.Process().Name()+" (restart failed)", err)
				continue
			}
			s.sfnMu.Lock()
			s.sfnSrv = next
			s.sfnMu.Unlock()
			down = false
		}
	}()
}

// StepFunctionsHost is the process running the state machine, for fault
// injection.
func (s *Deployment) StepFunctionsHost() *proc.Process {
	s.sfnMu.Lock()
	defer s.sfnMu.Unlock()
	return s.sfnSrv.Process()
}

// Lambda is the local Lambda Invoke API, for fault injection.
func (s *Deployment) Lambda() *lambdaapi.Server { return s.lambdaSrv }

// Endpoint is one thing a person can point a client at.
type Endpoint struct{ Name, URL string }

// Endpoints lists every endpoint of the running system.
func (s *Deployment) Endpoints() []Endpoint {
	st := s.Stack
	return []Endpoint{
		{"HTTP API (certificates, /sni)", s.APIURL},
		{"HTTP-01 responder", "http://" + st.HTTP01Addr},
		{"DynamoDB Local", st.DynamoDBEndpoint},
		{"Lambda (Invoke API)", s.LambdaURL},
		{"Step Functions", s.SFNURL},
		{"moto (KMS, EventBridge, SQS)", st.MotoEndpoint},
		{"Pebble ACME directory", st.PebbleDirectoryURL},
		{"Pebble management", st.PebbleManagementURL},
		{"challtestsrv DNS", st.DNSAddr},
		{"challtestsrv management", st.ChallSrvURL},
	}
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
