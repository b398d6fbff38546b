package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// caddyfile is the site the Caddy test serves: every name on one port,
// certificates from the gateway. docs/edge.md shows the same block.
const caddyfile = `{
	admin off
	skip_install_trust
	storage file_system {
		root %[1]s/data
	}
	log {
		output file %[1]s/caddy.log
		level DEBUG
	}
}

https://:%[2]d {
	tls {
		get_certificate http http://127.0.0.1:%[3]d/caddy
	}
	respond "hello {http.request.host}"
}
`

// TestCaddy serves HTTPS with a real Caddy (Debian's caddy 2.6.2, `make
// edge-tools`) whose certificates come from the gateway, and checks the
// chain served for two names and that an unknown name gets none.
func TestCaddy(t *testing.T) {
	caddy, err := exec.LookPath("caddy")
	if err != nil {
		t.Skip("caddy not installed (make edge-tools installs it)")
	}
	ca := newTestCA(t)
	d, backend := newDelivery(t)
	names := []string{"a.example.test", "b.example.test"}
	for i, name := range names {
		d.set(name, ca.issue(t, name, int64(i+1)))
	}
	d.delay = 5 * time.Millisecond
	gw := startGateway(t, backend.URL)
	_, gwPort, _ := net.SplitHostPort(strings.TrimPrefix(gw, "http://"))

	dir := t.TempDir()
	port := freePort(t)
	var gwp int
	fmt.Sscan(gwPort, &gwp)
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, fmt.Appendf(nil, caddyfile, dir, port, gwp), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(caddy, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir+"/data", "XDG_CONFIG_HOME="+dir+"/config")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // by PID: only the process this test started
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "caddy.log"))
			t.Logf("caddy output:\n%s\ncaddy.log:\n%s", out.String(), log)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr, exited, 15*time.Second)

	for _, name := range names {
		// The first handshake fetches from the backend (5 ms, as the
		// delivery Lambda warm); the next ones are answered from the
		// gateway's cache. Each is a new connection and a full handshake.
		var took []time.Duration
		for range 21 {
			start := time.Now()
			leaf, err := handshake(addr, name, ca)
			if err != nil {
				t.Fatalf("TLS handshake with Caddy for %s: %v", name, err)
			}
			took = append(took, time.Since(start))
			if leaf.Subject.CommonName != name {
				t.Fatalf("Caddy served a certificate for %q, want %q", leaf.Subject.CommonName, name)
			}
		}
		cached := slices.Clone(took[1:])
		slices.Sort(cached)
		t.Logf("Caddy handshake for %s: uncached %s, cached p50 %s (max %s of %d)", name,
			took[0].Round(10*time.Microsecond), cached[len(cached)/2].Round(10*time.Microsecond), cached[len(cached)-1].Round(10*time.Microsecond), len(cached))
	}
	if _, err := handshake(addr, "unknown.example.test", ca); err == nil {
		t.Error("TLS handshake with Caddy for an unknown name succeeded, want it refused")
	}
	if n := d.count("a.example.test"); n != 1 {
		t.Errorf("backend requests for a.example.test = %d, want 1", n)
	}
}

// handshake connects to addr with SNI name, verifies the chain against ca
// and returns the leaf.
func handshake(addr, name string, ca *testCA) (*x509.Certificate, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{ServerName: name, RootCAs: ca.pool}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// waitListening waits until addr accepts connections, or fails the test
// when the server exits or limit passes.
func waitListening(t *testing.T, addr string, exited chan error, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("the server for %s exited: %v", addr, err)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("nothing listening on %s after %s", addr, limit)
}
