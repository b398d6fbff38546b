package gateway

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/certflow/certflow/certclient"
	"github.com/certflow/certflow/internal/awsconfig"
)

// Config is certflow-gateway's configuration, read once from its flags.
type Config struct {
	// Listen is a loopback host:port, or unix:/path for a unix socket.
	Listen string
	// Backend is the delivery endpoint's base URL (the API's URL, without
	// /sni/).
	Backend string
	// Unsigned skips SigV4 signing, for the offline API, which has no IAM.
	Unsigned bool
	// AllowHTTP accepts an http:// Backend (the offline API on 127.0.0.1).
	AllowHTTP bool
	// Region signs requests; default: the AWS SDK's (AWS_REGION, profile).
	Region string

	MaxEntries           int
	MaxNegativeEntries   int
	MaxConcurrentFetches int
	Timeout              time.Duration
}

// ParseFlags reads the configuration from args (without the program name)
// and checks it.
func ParseFlags(args []string, output io.Writer) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet("certflow-gateway", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9180", "loopback `address` to serve on, or unix:/path/to/socket")
	fs.StringVar(&cfg.Backend, "backend", "", "delivery endpoint `URL` (the certflow API URL, without /sni/); required")
	fs.BoolVar(&cfg.Unsigned, "unsigned", false, "do not sign backend requests with SigV4 (the offline API has no IAM)")
	fs.BoolVar(&cfg.AllowHTTP, "allow-http", false, "accept an http:// backend (the offline API on 127.0.0.1)")
	fs.StringVar(&cfg.Region, "region", "", "AWS `region` to sign for (default: the AWS SDK's, e.g. AWS_REGION)")
	fs.IntVar(&cfg.MaxEntries, "max-entries", certclient.DefaultMaxEntries, "certificates to cache")
	fs.IntVar(&cfg.MaxNegativeEntries, "max-negative-entries", certclient.DefaultMaxNegativeEntries, "unknown names to remember")
	fs.IntVar(&cfg.MaxConcurrentFetches, "max-fetches", certclient.DefaultMaxConcurrentFetches, "backend requests under way at once")
	fs.DurationVar(&cfg.Timeout, "timeout", certclient.DefaultTimeout, "bound on each backend request")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.Backend == "" {
		return Config{}, errors.New("-backend is required: the certflow API URL, e.g. https://abc.execute-api.eu-west-1.amazonaws.com")
	}
	if _, err := listener(cfg.Listen, true); err != nil {
		return Config{}, err
	}
	if cfg.MaxEntries <= 0 || cfg.MaxNegativeEntries <= 0 || cfg.MaxConcurrentFetches <= 0 || cfg.Timeout <= 0 {
		return Config{}, errors.New("-max-entries, -max-negative-entries, -max-fetches and -timeout must be positive")
	}
	return cfg, nil
}

// Run listens on cfg.Listen and serves until ctx ends, then shuts down
// gracefully. logger receives the start, failures and the stop.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	l, err := listener(cfg.Listen, false)
	if err != nil {
		return err
	}
	return Serve(ctx, l, cfg, logger)
}

// Serve serves on l, which it closes, until ctx ends; cfg.Listen is not
// used.
func Serve(ctx context.Context, l net.Listener, cfg Config, logger *slog.Logger) error {
	defer l.Close()
	metrics := NewMetrics()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = cfg.MaxConcurrentFetches // keep a connection for every fetch slot
	clientCfg := certclient.Config{
		BaseURL:              cfg.Backend,
		AllowInsecureHTTP:    cfg.AllowHTTP,
		HTTPClient:           &http.Client{Transport: transport},
		MaxEntries:           cfg.MaxEntries,
		MaxNegativeEntries:   cfg.MaxNegativeEntries,
		MaxConcurrentFetches: cfg.MaxConcurrentFetches,
		Timeout:              cfg.Timeout,
		Hooks:                metrics.Hooks(),
	}
	onError := clientCfg.Hooks.OnError
	clientCfg.Hooks.OnError = func(name string, err error) {
		onError(name, err)
		logger.Warn("certificate fetch failed", slog.String("domain", name), slog.Any("error", err))
	}
	if !cfg.Unsigned {
		awsCfg, err := awsconfig.Load(ctx)
		if err != nil {
			return err
		}
		if cfg.Region != "" {
			awsCfg.Region = cfg.Region
		}
		if awsCfg.Region == "" {
			return errors.New("no AWS region to sign for: set AWS_REGION or -region")
		}
		clientCfg.RequestSigner = Signer(awsCfg.Credentials, awsCfg.Region, time.Now)
	}
	client, err := certclient.New(clientCfg)
	if err != nil {
		return err
	}
	h, err := NewHandler(HandlerConfig{Certificates: client, MaxEntries: cfg.MaxEntries, Timeout: cfg.Timeout + time.Second, Metrics: metrics, Logger: logger})
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("certflow-gateway serving", slog.String("listen", l.Addr().String()), slog.String("backend", cfg.Backend), slog.Bool("signed", !cfg.Unsigned))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	logger.Info("certflow-gateway stopped")
	return nil
}

// listener opens addr: a loopback host:port, or unix:/path. With checkOnly
// it validates addr without opening anything. The gateway hands out private
// keys without authentication, so it refuses any other address.
func listener(addr string, checkOnly bool) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if path == "" {
			return nil, errors.New("-listen unix: needs a socket path")
		}
		if checkOnly {
			return nil, nil
		}
		// A socket left by a previous run would make Listen fail; remove
		// it, but nothing else.
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(path)
		}
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		return l, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-listen %q: want a loopback host:port or unix:/path: %w", addr, err)
	}
	if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("-listen %q: the gateway serves private keys without authentication, so it listens on loopback addresses (127.0.0.1, ::1) or unix sockets only", addr)
	}
	if checkOnly {
		return nil, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return l, nil
}

// emptyPayloadHash is the SHA-256 of an empty body: delivery requests are
// GETs.
const emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Signer returns a certclient.Config.RequestSigner that signs requests with
// SigV4 for API Gateway ("execute-api") in region, with credentials from
// creds (the SDK's default chain: environment, instance or task role).
// creds should be an aws.CredentialsCache, as the SDK's configuration
// provides, so that signing does not fetch credentials every time.
func Signer(creds aws.CredentialsProvider, region string, now func() time.Time) func(*http.Request) error {
	signer := v4.NewSigner()
	return func(req *http.Request) error {
		c, err := creds.Retrieve(req.Context())
		if err != nil {
			return fmt.Errorf("retrieve AWS credentials: %w", err)
		}
		if err := signer.SignHTTP(req.Context(), c, req, emptyPayloadHash, "execute-api", region, now()); err != nil {
			return fmt.Errorf("sign with SigV4: %w", err)
		}
		return nil
	}
}
