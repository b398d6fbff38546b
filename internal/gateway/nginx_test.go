package gateway

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// nginxConf is the configuration the nginx test runs, the one docs/edge.md
// shows with the test's paths and ports: %[1]s the temporary directory,
// %[2]d nginx's port, %[3]d the gateway's, %[4]s the folder of
// certflow_gateway.lua.
const nginxConf = `load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
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

// TestNginx serves HTTPS with a real nginx and Debian's lua module (`make
// edge-tools`), certificates set per handshake by certflow_gateway.lua from
// the gateway's GET /cert/{name}.
func TestNginx(t *testing.T) {
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
	// nginx's workers run as nobody and read nothing here; the master
	// reads the fallback certificate and writes the logs.
	writeFallback(t, filepath.Join(dir, "fallback.pem"))
	port := freePort(t)
	var gwp int
	fmt.Sscan(gwPort, &gwp)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, port, gwp, luaDir), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(nginx, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt) // by PID: nginx's master stops its workers
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out.String(), log)
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
				t.Fatalf("TLS handshake with nginx for %s: %v", name, err)
			}
			took = append(took, time.Since(start))
			if leaf.Subject.CommonName != name {
				t.Fatalf("nginx served a certificate for %q, want %q", leaf.Subject.CommonName, name)
			}
		}
		cached := slices.Clone(took[1:])
		slices.Sort(cached)
		t.Logf("nginx handshake for %s: uncached %s, cached p50 %s (max %s of %d)", name,
			took[0].Round(10*time.Microsecond), cached[len(cached)/2].Round(10*time.Microsecond), cached[len(cached)-1].Round(10*time.Microsecond), len(cached))
	}
	if _, err := handshake(addr, "unknown.example.test", ca); err == nil {
		t.Error("TLS handshake with nginx for an unknown name succeeded, want it refused")
	}
	if n := d.count("a.example.test"); n != 1 {
		t.Errorf("backend requests for a.example.test = %d, want 1", n)
	}
}

// writeFallback writes a self-signed certificate and its key, which nginx
// requires in a server block; certflow_gateway.lua replaces it per
// handshake.
func writeFallback(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fallback.invalid"}, DNSNames: []string{"fallback.invalid"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
