package offline

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/miekg/dns"

	"github.com/certflow/certflow/offline/proc"
)

// EdgeAddress is where offline custom domains point by default: the
// platform's edge, where the HTTP-01 responder listens.
const EdgeAddress = "127.0.0.1"

// DelegationZone is the offline platform's DNS-01 delegation zone: customers
// delegate "_acme-challenge" into it (validation.Delegation), challtestsrv
// serves it.
const DelegationZone = "acme-delegation.platform.example"

// ElsewhereAddress is the address of a domain "pointed elsewhere".
const ElsewhereAddress = "127.0.0.2"

func (s *Stack) startChallTestSrv(ctx context.Context, ports Ports) error {
	dnsPort := ports.DNS
	if dnsPort == 0 {
		var err error
		if dnsPort, err = proc.FreeUDPAndTCPPort(); err != nil {
			return err
		}
	}
	mgmt, err := proc.PortOrFree(ports.ChallSrvManagement)
	if err != nil {
		return err
	}
	s.DNSAddr = fmt.Sprintf("127.0.0.1:%d", dnsPort)
	mgmtAddr := fmt.Sprintf("127.0.0.1:%d", mgmt)
	p, err := s.start("pebble-challtestsrv", nil, s.Dir, s.Tools.ChallTestSrv,
		"-defaultIPv4", EdgeAddress, "-defaultIPv6", "",
		"-dnsserver", s.DNSAddr, "-management", mgmtAddr,
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	if err != nil {
		return err
	}
	if err := p.WaitReady(ctx, 30*time.Second, dnsAnswers(s.DNSAddr)); err != nil {
		return err
	}
	if err := p.WaitReady(ctx, 30*time.Second, proc.TCPReady(mgmtAddr)); err != nil {
		return err
	}
	// Records published through the management API are lost on a restart.
	s.restarts[p.Name()] = func(ctx context.Context) error {
		return s.startChallTestSrv(ctx, Ports{DNS: Port(s.DNSAddr), ChallSrvManagement: mgmt})
	}
	s.ChallSrvURL = "http://" + mgmtAddr
	return nil
}

func dnsAnswers(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		m := new(dns.Msg)
		m.SetQuestion("ready.certflow.example.", dns.TypeA)
		c := &dns.Client{Timeout: time.Second}
		_, _, err := c.ExchangeContext(ctx, m, addr)
		return err
	}
}

type pebbleConfig struct {
	Pebble struct {
		ListenAddress           string                   `json:"listenAddress"`
		ManagementListenAddress string                   `json:"managementListenAddress"`
		Certificate             string                   `json:"certificate"`
		PrivateKey              string                   `json:"privateKey"`
		HTTPPort                int                      `json:"httpPort"`
		TLSPort                 int                      `json:"tlsPort"`
		OCSPResponderURL        string                   `json:"ocspResponderURL"`
		ExternalAccountBinding  bool                     `json:"externalAccountBindingRequired"`
		DomainBlocklist         []string                 `json:"domainBlocklist"`
		RetryAfter              map[string]int           `json:"retryAfter"`
		KeyAlgorithm            string                   `json:"keyAlgorithm"`
		Profiles                map[string]pebbleProfile `json:"profiles"`
	} `json:"pebble"`
}

type pebbleProfile struct {
	Description    string `json:"description"`
	ValidityPeriod int64  `json:"validityPeriod"`
}

// pebble is one Pebble instance of the stack: the primary CA or the
// fallback.
type pebble struct {
	name       string // its process name
	directory  string // https://127.0.0.1:PORT/dir
	management string // https://127.0.0.1:PORT
	rootsFile  string // the root of the certificates it issues
	run        func() (*proc.Process, error)
	proc       *proc.Process
}

func (s *Stack) startPebble(ctx context.Context, opts Options) error {
	httpPort, err := proc.PortOrFree(opts.Ports.HTTP01)
	if err != nil {
		return err
	}
	tlsPort, err := proc.PortOrFree(opts.Ports.PebbleTLSALPN)
	if err != nil {
		return err
	}
	s.PebbleTLSCAFile = filepath.Join(s.Tools.PebbleTestDir, "certs", "pebble.minica.pem")
	s.HTTP01Addr = fmt.Sprintf("127.0.0.1:%d", httpPort)
	p, err := s.newPebble(opts, "pebble", opts.Ports.Pebble, opts.Ports.PebbleManagement, httpPort, tlsPort)
	if err != nil {
		return err
	}
	s.pebble = p
	s.PebbleDirectoryURL, s.PebbleManagementURL, s.PebbleRootsFile = p.directory, p.management, p.rootsFile
	s.restarts[p.name] = s.runPebble
	if err := s.runPebble(ctx); err != nil {
		return err
	}
	if !opts.FallbackPebble {
		return nil
	}
	// A second CA with a root of its own; it validates on the same port
	// and asks the same DNS.
	fb, err := s.newPebble(opts, "pebble-fallback", 0, 0, httpPort, tlsPort)
	if err != nil {
		return err
	}
	s.fallback = fb
	s.FallbackDirectoryURL, s.FallbackManagementURL, s.FallbackRootsFile = fb.directory, fb.management, fb.rootsFile
	s.restarts[fb.name] = func(ctx context.Context) error { return s.runInstance(ctx, fb) }
	return s.runInstance(ctx, fb)
}

// newPebble writes the configuration of a Pebble instance listening on
// listen and mgmt (zero: free ports), validating HTTP-01 on httpPort.
func (s *Stack) newPebble(opts Options, name string, listen, mgmt, httpPort, tlsPort int) (*pebble, error) {
	listen, err := proc.PortOrFree(listen)
	if err != nil {
		return nil, err
	}
	if mgmt, err = proc.PortOrFree(mgmt); err != nil {
		return nil, err
	}
	validity := int64(7776000)
	if opts.CertificateValidity > 0 {
		validity = int64(opts.CertificateValidity / time.Second)
	}
	blocklist := opts.Blocklist
	if blocklist == nil {
		blocklist = []string{BlockedDomain}
	}
	var cfg pebbleConfig
	c := &cfg.Pebble
	c.ListenAddress = fmt.Sprintf("127.0.0.1:%d", listen)
	c.ManagementListenAddress = fmt.Sprintf("127.0.0.1:%d", mgmt)
	c.Certificate = filepath.Join(s.Tools.PebbleTestDir, "certs", "localhost", "cert.pem")
	c.PrivateKey = filepath.Join(s.Tools.PebbleTestDir, "certs", "localhost", "key.pem")
	c.HTTPPort = httpPort
	c.TLSPort = tlsPort
	c.DomainBlocklist = blocklist
	c.RetryAfter = map[string]int{"authz": 1, "order": 1}
	c.KeyAlgorithm = "ecdsa"
	c.Profiles = map[string]pebbleProfile{
		"default": {Description: "certflow offline default", ValidityPeriod: validity},
		// Half the default's lifetime offline (6 days at most, as Let's
		// Encrypt's), so the demo shows renewal following each
		// certificate's own lifetime.
		"shortlived": {Description: "short-lived", ValidityPeriod: min(validity/2, 518400)},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(s.Dir, name+"-config.json")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return nil, err
	}
	env := []string{
		"PEBBLE_VA_NOSLEEP=1",
		"PEBBLE_WFE_NONCEREJECT=0",
		"PEBBLE_AUTHZREUSE=0",
	}
	for k, v := range opts.PebbleEnv {
		env = append(env, k+"="+v)
	}
	return &pebble{
		name:       name,
		directory:  fmt.Sprintf("https://127.0.0.1:%d/dir", listen),
		management: fmt.Sprintf("https://127.0.0.1:%d", mgmt),
		rootsFile:  filepath.Join(s.Dir, name+"-roots.pem"),
		run: func() (*proc.Process, error) {
			return s.start(name, env, s.Dir, s.Tools.Pebble, "-config", cfgPath, "-dnsserver", s.DNSAddr)
		},
	}, nil
}

// runPebble starts the primary Pebble, waits for its directory and saves
// its root.
func (s *Stack) runPebble(ctx context.Context) error { return s.runInstance(ctx, s.pebble) }

// runInstance starts a Pebble instance, waits for its directory and saves
// its root.
func (s *Stack) runInstance(ctx context.Context, p *pebble) error {
	pr, err := p.run()
	if err != nil {
		return err
	}
	p.proc = pr
	client, err := s.PebbleHTTPClient()
	if err != nil {
		return err
	}
	ready := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.directory, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s directory: %s", p.name, resp.Status)
		}
		return nil
	}
	if err := pr.WaitReady(ctx, 30*time.Second, ready); err != nil {
		return err
	}
	roots, err := getFrom(ctx, client, p.management, "/roots/0")
	if err != nil {
		return fmt.Errorf("fetch %s's root: %w", p.name, err)
	}
	return os.WriteFile(p.rootsFile, roots, 0o644)
}

// RestartPebble stops Pebble and starts it again on the same ports with the
// same configuration: what clients see when the CA restarts. Pebble keeps
// everything in memory, so every account, order and certificate is
// forgotten, and the new root replaces the old in PebbleRootsFile.
func (s *Stack) RestartPebble(ctx context.Context) error {
	if s.pebble == nil || s.pebble.proc == nil {
		return errNotStarted
	}
	s.untrack(s.pebble.proc)
	s.pebble.proc.Stop(5 * time.Second)
	return s.runPebble(ctx)
}

// PebbleHTTPClient returns an HTTP client that trusts Pebble's HTTPS listener.
func (s *Stack) PebbleHTTPClient() (*http.Client, error) {
	pemBytes, err := os.ReadFile(s.PebbleTLSCAFile)
	if err != nil {
		return nil, fmt.Errorf("read pebble's TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("no certificate in %s", s.PebbleTLSCAFile)
	}
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}, nil
}

func (s *Stack) pebbleGet(ctx context.Context, client *http.Client, path string) ([]byte, error) {
	return getFrom(ctx, client, s.PebbleManagementURL, path)
}

// getFrom GETs path of a Pebble management API at base.
func getFrom(ctx context.Context, client *http.Client, base, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b, nil
}

// PebbleCertStatus asks Pebble's management API what became of the
// certificate with serial (hex): "Valid" or "Revoked".
func (s *Stack) PebbleCertStatus(ctx context.Context, serial string) (string, error) {
	client, err := s.PebbleHTTPClient()
	if err != nil {
		return "", err
	}
	b, err := s.pebbleGet(ctx, client, "/cert-status-by-serial/"+serial)
	if err != nil {
		return "", err
	}
	var st struct{ Status string }
	if err := json.Unmarshal(b, &st); err != nil {
		return "", fmt.Errorf("pebble cert status of %s: %w", serial, err)
	}
	return st.Status, nil
}

// PebbleRoots returns a pool holding the root of Pebble's issued certificates.
func (s *Stack) PebbleRoots() (*x509.CertPool, error) {
	b, err := os.ReadFile(s.PebbleRootsFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("no certificate in %s", s.PebbleRootsFile)
	}
	return pool, nil
}

// ChallSrv calls pebble-challtestsrv's management API, e.g.
// ChallSrv(ctx, "/add-a", map[string]any{"host": "x.example.", "addresses": []string{"127.0.0.2"}}).
func (s *Stack) ChallSrv(ctx context.Context, path string, body any) error {
	if s.ChallSrvURL == "" {
		return errNotStarted
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.ChallSrvURL+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("challtestsrv %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("challtestsrv %s: %s: %s", path, resp.Status, msg)
	}
	return nil
}

// PointAt makes name resolve (A) to addr in the stack's DNS, e.g.
// ElsewhereAddress for a domain whose owner moved it away.
func (s *Stack) PointAt(ctx context.Context, name, addr string) error {
	return s.ChallSrv(ctx, "/add-a", map[string]any{"host": dns.Fqdn(name), "addresses": []string{addr}})
}

// SetCAA publishes CAA records for name, e.g. {Tag: "issue", Value: "ca.example"}.
func (s *Stack) SetCAA(ctx context.Context, name string, policies ...CAAPolicy) error {
	return s.ChallSrv(ctx, "/add-caa", map[string]any{"host": dns.Fqdn(name), "policies": policies})
}

// CAAPolicy is one CAA record for SetCAA.
type CAAPolicy struct {
	Tag   string `json:"tag"`
	Value string `json:"value"`
}

// SetPebbleRenewalInfo overrides the ARI window Pebble suggests for a
// certificate (certPEM: its leaf first), e.g. to simulate a mass revocation.
func (s *Stack) SetPebbleRenewalInfo(ctx context.Context, certPEM string, start, end time.Time) error {
	client, err := s.PebbleHTTPClient()
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{
		"certificate": certPEM,
		"ariResponse": mustJSON(map[string]any{
			"suggestedWindow": map[string]string{"start": start.UTC().Format(time.RFC3339), "end": end.UTC().Format(time.RFC3339)},
		}),
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.PebbleManagementURL+"/set-renewal-info/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("pebble set-renewal-info: %s: %s", resp.Status, msg)
	}
	return nil
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Port returns the port of a 127.0.0.1:PORT address.
func Port(addr string) int {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			p, _ := strconv.Atoi(addr[i+1:])
			return p
		}
	}
	return 0
}
