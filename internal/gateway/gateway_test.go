package gateway

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/certflow/certflow/certclient/certclienttest"
)

// startGateway serves the gateway for backend on a loopback port until the
// test ends and returns its base URL.
func startGateway(t *testing.T, backend string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, backend)
	return "http://" + l.Addr().String()
}

func serve(t *testing.T, l net.Listener, backend string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := Config{Backend: backend, Unsigned: true, AllowHTTP: true, MaxEntries: 100, MaxNegativeEntries: 100, MaxConcurrentFetches: 8, Timeout: 5 * time.Second}
	go func() { done <- Serve(ctx, l, cfg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve() error = %v", err)
		}
	})
}

func httpGet(t *testing.T, c *http.Client, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, resp.Header, b
}

// checkPEM checks that body is a private key followed by a chain for name
// that ca signed.
func checkPEM(t *testing.T, ca *certclienttest.CA, name string, body []byte) {
	t.Helper()
	first, _ := pem.Decode(body)
	if first == nil || first.Type != "PRIVATE KEY" {
		t.Fatalf("PEM answer for %q does not start with a PRIVATE KEY block", name)
	}
	cert, err := tls.X509KeyPair(body, body)
	if err != nil {
		t.Fatalf("PEM answer for %q: %v", name, err)
	}
	if len(cert.Certificate) != 2 {
		t.Errorf("PEM answer for %q has %d certificates, want the leaf and the CA", name, len(cert.Certificate))
	}
	if err := cert.Leaf.VerifyHostname(name); err != nil {
		t.Errorf("PEM answer for %q: %v", name, err)
	}
}

func TestRoutes(t *testing.T) {
	ca := certclienttest.NewCA(t)
	d, backend := newDelivery(t, ca)
	d.Set("www.example.com", issue(t, ca, "www.example.com", 1))
	gw := startGateway(t, backend.URL)
	c := &http.Client{Timeout: 10 * time.Second}

	tests := []struct {
		path       string
		wantStatus int
		wantCert   string
	}{
		{"/cert/www.example.com", 200, "www.example.com"},
		{"/cert/WWW.Example.com.", 200, "www.example.com"},
		{"/cert/unknown.example.com", 404, ""},
		{"/cert/a..b", 404, ""},
		{"/caddy?server_name=www.example.com&signature_schemes=403,804&cipher_suites=1301,c02b", 200, "www.example.com"},
		{"/caddy?server_name=unknown.example.com", 204, ""},
		{"/caddy", 204, ""},
		{"/healthz", 200, ""},
		{"/nothing", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, header, body := httpGet(t, c, gw+tt.path)
			if status != tt.wantStatus {
				t.Fatalf("GET %s status = %d, want %d", tt.path, status, tt.wantStatus)
			}
			if tt.wantCert != "" {
				if ct, cc := header.Get("Content-Type"), header.Get("Cache-Control"); ct != MediaTypePEM || cc != "no-store" {
					t.Errorf("GET %s Content-Type, Cache-Control = %q, %q, want %q, %q", tt.path, ct, cc, MediaTypePEM, "no-store")
				}
				checkPEM(t, ca, tt.wantCert, body)
			}
		})
	}
	if n := d.Requests("www.example.com"); n != 1 {
		t.Errorf("backend requests for www.example.com = %d, want 1 (the rest from the cache)", n)
	}
	if n := d.Requests("unknown.example.com"); n != 1 {
		t.Errorf("backend requests for unknown.example.com = %d, want 1 (the 404 is cached)", n)
	}
}

func TestBackendDown(t *testing.T) {
	ca := certclienttest.NewCA(t)
	d, backend := newDelivery(t, ca)
	d.Set("www.example.com", issue(t, ca, "www.example.com", 1))
	d.Set("new.example.com", issue(t, ca, "new.example.com", 2))
	gw := startGateway(t, backend.URL)
	c := &http.Client{Timeout: 10 * time.Second}

	if status, _, _ := httpGet(t, c, gw+"/cert/www.example.com"); status != 200 {
		t.Fatalf("GET /cert/www.example.com status = %d, want 200", status)
	}
	d.Configure(func(d *certclienttest.Delivery) { d.Status = http.StatusInternalServerError })
	status, _, body := httpGet(t, c, gw+"/cert/www.example.com")
	if status != 200 {
		t.Fatalf("GET /cert/www.example.com with the backend down: status = %d, want 200 from the cache", status)
	}
	checkPEM(t, ca, "www.example.com", body)
	for _, path := range []string{"/cert/new.example.com", "/caddy?server_name=new.example.com"} {
		if status, _, body := httpGet(t, c, gw+path); status != http.StatusBadGateway || strings.Contains(string(body), "down") {
			t.Errorf("GET %s with the backend down: status = %d, body %q, want 502 without the backend's words", path, status, body)
		}
	}

	_, _, metrics := httpGet(t, c, gw+"/metrics")
	for _, want := range []string{
		"certflow_gateway_cache_hits_total 1",
		"certflow_gateway_cache_misses_total 2",
		"certflow_gateway_negative_hits_total 1",
		"certflow_gateway_backend_errors_total 1",
		"certflow_gateway_stale_serves_total 0",
		"certflow_gateway_fetch_duration_seconds_count 2",
		`certflow_gateway_requests_total{code="502",route="cert"} 1`,
	} {
		if !strings.Contains(string(metrics), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestUnixSocket(t *testing.T) {
	ca := certclienttest.NewCA(t)
	d, backend := newDelivery(t, ca)
	d.Set("www.example.com", issue(t, ca, "www.example.com", 1))
	sock := filepath.Join(t.TempDir(), "gw.sock")
	l, err := listener("unix:"+sock, false)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, backend.URL)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	status, _, body := httpGet(t, c, "http://gateway/cert/www.example.com")
	if status != 200 {
		t.Fatalf("GET /cert/www.example.com over %s: status = %d, want 200", sock, status)
	}
	checkPEM(t, ca, "www.example.com", body)
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-backend", "https://api.example"}, ""},
		{[]string{"-backend", "https://api.example", "-listen", "[::1]:9180"}, ""},
		{[]string{"-backend", "https://api.example", "-listen", "localhost:9180"}, ""},
		{[]string{"-backend", "https://api.example", "-listen", "unix:/run/certflow/gw.sock"}, ""},
		{[]string{}, "-backend is required"},
		{[]string{"-backend", "https://api.example", "-listen", "0.0.0.0:9180"}, "loopback"},
		{[]string{"-backend", "https://api.example", "-listen", ":9180"}, "loopback"},
		{[]string{"-backend", "https://api.example", "-listen", "10.0.0.1:9180"}, "loopback"},
		{[]string{"-backend", "https://api.example", "-max-fetches", "0"}, "must be positive"},
		{[]string{"-backend", "https://api.example", "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := ParseFlags(tt.args, io.Discard)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("ParseFlags(%q) error = %v, want %q", tt.args, err, tt.wantErr)
			}
		})
	}
	if _, err := ParseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("ParseFlags(-h) error = %v, want flag.ErrHelp", err)
	}
}

func TestHTTPBackendNeedsAllowHTTP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = Serve(context.Background(), l, Config{Backend: "http://127.0.0.1:8080", Unsigned: true, MaxEntries: 1, MaxNegativeEntries: 1, MaxConcurrentFetches: 1, Timeout: time.Second}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "AllowInsecureHTTP") {
		t.Errorf("Serve with an http:// backend and no -allow-http: error = %v, want a refusal", err)
	}
}

func TestSigner(t *testing.T) {
	creds := aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "token"))
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	sign := Signer(creds, "eu-west-1", func() time.Time { return at })
	req, err := http.NewRequest(http.MethodGet, "https://abc.execute-api.eu-west-1.amazonaws.com/sni/www.example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sign(req); err != nil {
		t.Fatalf("sign() error = %v", err)
	}
	const wantPrefix = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/eu-west-1/execute-api/aws4_request, SignedHeaders="
	if got := req.Header.Get("Authorization"); !strings.HasPrefix(got, wantPrefix) {
		t.Errorf("Authorization = %q, want prefix %q", got, wantPrefix)
	}
	if got := req.Header.Get("X-Amz-Security-Token"); got != "token" {
		t.Errorf("X-Amz-Security-Token = %q, want %q", got, "token")
	}
}

func TestServeSignsWithDefaultCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ca := certclienttest.NewCA(t)
	d, backend := newDelivery(t, ca)
	d.Set("www.example.com", issue(t, ca, "www.example.com", 1))
	var mu sync.Mutex
	var auth []string // Authorization headers the backend saw
	d.Configure(func(d *certclienttest.Delivery) {
		d.Check = func(r *http.Request) error {
			mu.Lock()
			defer mu.Unlock()
			auth = append(auth, r.Header.Get("Authorization"))
			return nil
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := Config{Backend: backend.URL, AllowHTTP: true, MaxEntries: 10, MaxNegativeEntries: 10, MaxConcurrentFetches: 2, Timeout: 5 * time.Second}
	go func() { done <- Serve(ctx, l, cfg, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve() error = %v", err)
		}
	}()
	if status, _, _ := httpGet(t, &http.Client{Timeout: 10 * time.Second}, "http://"+l.Addr().String()+"/cert/www.example.com"); status != 200 {
		t.Fatalf("GET /cert/www.example.com status = %d, want 200", status)
	}
	mu.Lock()
	defer mu.Unlock()
	const wantPrefix = "AWS4-HMAC-SHA256 Credential=AKIDTEST/"
	if len(auth) != 1 || !strings.HasPrefix(auth[0], wantPrefix) || !strings.Contains(auth[0], "/eu-west-1/execute-api/aws4_request") {
		t.Errorf("backend saw Authorization %q, want one SigV4 signature for execute-api in eu-west-1", auth)
	}
}
