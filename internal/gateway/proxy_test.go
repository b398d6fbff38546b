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
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certflow/certflow/certclient/certclienttest"
)

// The edge proxies the gateway is proven with: real Caddy and nginx
// processes (Debian's packages, `make edge-tools`) serving HTTPS on
// loopback with the certificates the gateway hands them. Tests skip a
// proxy that is not installed.

// edgeProxy starts a proxy whose certificates come from the gateway on
// gwPort and returns the address it serves HTTPS on.
type edgeProxy struct {
	name  string
	start func(t *testing.T, gwPort int) string
}

var edgeProxies = []edgeProxy{{"caddy", startCaddy}, {"nginx", startNginx}}

// caddyfile is the site the Caddy tests serve: every name on one port,
// certificates from the gateway. docs/edge.md shows the same block.
// %[1]s is the temporary directory, %[2]d Caddy's port, %[3]d the gateway's.
const caddyfile = `{
	admin off
	skip_install_trust
	storage file_system {
		root %[1]s/data
	}
	log {
		output file %[1]s/proxy.log
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

// startCaddy runs Caddy (Debian's caddy 2.6.2).
func startCaddy(t *testing.T, gwPort int) string {
	caddy, err := exec.LookPath("caddy")
	if err != nil {
		t.Skip("caddy not installed (make edge-tools installs it)")
	}
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, fmt.Appendf(nil, caddyfile, dir, port, gwPort), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddy, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir+"/data", "XDG_CONFIG_HOME="+dir+"/config")
	return runProxy(t, cmd, dir, port)
}

// nginxConf is the configuration the nginx tests run, the one docs/edge.md
// shows with the test's paths and ports: %[1]s the temporary directory,
// %[2]d nginx's port, %[3]d the gateway's, %[4]s the folder of
// certflow_gateway.lua.
const nginxConf = `load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
pid %[1]s/nginx.pid;
error_log %[1]s/proxy.log info;
worker_processes 1;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	lua_package_path "%[4]s/?.lua;;";
	server {
		listen 127.0.0.1:%[2]d ssl;
		ssl_certificate %[1]s/fallback.pem;
		ssl_certificate_key %[1]s/fallback.pem;
		ssl_certificate_by_lua_block {
			require("certflow_gateway").serve("127.0.0.1", %[3]d)
		}
		location / {
			return 200 "hello $ssl_server_name\n";
		}
	}
}
`

// startNginx runs nginx with Debian's lua module, certificates set per
// handshake by certflow_gateway.lua from the gateway's GET /cert/{name}.
func startNginx(t *testing.T, gwPort int) string {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed (make edge-tools installs nginx and libnginx-mod-http-lua)")
	}
	if _, err := os.Stat("/usr/lib/nginx/modules/ngx_http_lua_module.so"); err != nil {
		t.Skip("nginx lua module not installed (make edge-tools installs libnginx-mod-http-lua)")
	}
	luaDir, err := filepath.Abs("../../cmd/certflow-gateway/nginx")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// nginx's workers run as nobody and read nothing here; the master
	// reads the fallback certificate and writes the logs.
	writeFallback(t, filepath.Join(dir, "fallback.pem"))
	port := freePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, port, gwPort, luaDir), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "proxy.log"), "-g", "daemon off;")
	return runProxy(t, cmd, dir, port)
}

// runProxy starts cmd, which serves HTTPS on port and logs to
// dir/proxy.log, waits until it listens, and stops it when the test ends:
// SIGTERM by PID (nginx's master stops its workers), then SIGKILL.
func runProxy(t *testing.T, cmd *exec.Cmd, dir string, port int) string {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "proxy.log"))
			t.Logf("%s output:\n%s\nproxy.log:\n%s", cmd.Path, out.String(), log)
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	waitListening(t, addr, exited, 15*time.Second)
	return addr
}

// checkHandshakes makes 21 full TLS handshakes with the proxy at addr for
// each name, each on a new connection, verifying the chain against roots
// and the name, and logs the first (the gateway asks the backend) and the
// median of the others (answered from the gateway's cache). A name in
// refused must get no certificate.
func checkHandshakes(t *testing.T, proxy, addr string, roots *x509.CertPool, names, refused []string) {
	t.Helper()
	for _, name := range names {
		var took []time.Duration
		for range 21 {
			start := time.Now()
			leaf, err := handshake(addr, name, roots)
			if err != nil {
				t.Fatalf("TLS handshake with %s for %s: %v", proxy, name, err)
			}
			took = append(took, time.Since(start))
			if err := leaf.VerifyHostname(name); err != nil {
				t.Fatalf("%s served a certificate that does not cover %s: %v", proxy, name, err)
			}
		}
		cached := slices.Clone(took[1:])
		slices.Sort(cached)
		t.Logf("%s handshake for %s: uncached %s, cached p50 %s (max %s of %d)", proxy, name,
			took[0].Round(10*time.Microsecond), cached[len(cached)/2].Round(10*time.Microsecond), cached[len(cached)-1].Round(10*time.Microsecond), len(cached))
	}
	for _, name := range refused {
		if _, err := handshake(addr, name, roots); err == nil {
			t.Errorf("TLS handshake with %s for %s succeeded, want it refused", proxy, name)
		}
	}
}

// TestEdgeProxies serves HTTPS with each proxy for two names whose
// certificates a fake delivery endpoint holds (answering in 5 ms, as the
// delivery Lambda warm), and refuses an unknown name.
func TestEdgeProxies(t *testing.T) {
	for _, p := range edgeProxies {
		t.Run(p.name, func(t *testing.T) {
			ca := certclienttest.NewCA(t)
			d, backend := newDelivery(t, ca)
			names := []string{"a.example.test", "b.example.test"}
			for i, name := range names {
				d.Set(name, issue(t, ca, name, int64(i+1)))
			}
			d.Configure(func(d *certclienttest.Delivery) { d.Delay = 5 * time.Millisecond })
			addr := p.start(t, gatewayPort(t, startGateway(t, backend.URL)))
			checkHandshakes(t, p.name, addr, ca.Pool, names, []string{"unknown.example.test"})
			if n := d.Requests("a.example.test"); n != 1 {
				t.Errorf("backend requests for a.example.test = %d, want 1", n)
			}
		})
	}
}

// gatewayPort returns the port of a gateway's base URL.
func gatewayPort(t *testing.T, base string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// handshake connects to addr with SNI name, verifies the chain against
// roots and returns the leaf.
func handshake(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{ServerName: name, RootCAs: roots}}
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

// writeFallback writes a certificate and its key, which nginx requires in a
// server block; certflow_gateway.lua replaces it per handshake.
func writeFallback(t *testing.T, path string) {
	t.Helper()
	ca := certclienttest.NewCA(t)
	der := ca.Issue(t, "fallback.invalid", 1, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err := os.WriteFile(path, append(ca.LeafKeyPEM, ca.ChainPEM(der)...), 0o600); err != nil {
		t.Fatal(err)
	}
}
