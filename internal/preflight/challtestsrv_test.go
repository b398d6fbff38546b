package preflight

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startChallTestSrv starts pebble-challtestsrv (the offline stack's DNS) with
// only its DNS and management servers, on loopback, and returns their
// addresses. The test is skipped when the binary is not found.
// TODO(lead): use offline.Start's DNSAddr and ChallSrvURL once it builds.
func startChallTestSrv(t *testing.T) (dnsAddr, mgmtURL string) {
	t.Helper()
	bin, err := exec.LookPath("pebble-challtestsrv")
	if err != nil {
		bin = filepath.Join("..", "..", ".cache", "bin", "pebble-challtestsrv")
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip("pebble-challtestsrv not installed")
		}
	}
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	dnsAddr, mgmt := free(), free()
	cmd := exec.Command(bin, "-dnsserver", dnsAddr, "-management", mgmt, "-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pebble-challtestsrv: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	mgmtURL = "http://" + mgmt
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", mgmt); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pebble-challtestsrv did not start")
		}
	}
	return dnsAddr, mgmtURL
}

func challSrvPost(t *testing.T, mgmtURL, path, body string) {
	t.Helper()
	resp, err := http.Post(mgmtURL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s = %s", path, resp.Status)
	}
}

// TestChallTestSrv checks the resolver the offline stack uses: it answers
// every A query with 127.0.0.1 and every AAAA query with ::1 unless told
// otherwise, so offline edge addresses are 127.0.0.1 and ::1.
func TestChallTestSrv(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	dnsAddr, mgmt := startChallTestSrv(t)
	challSrvPost(t, mgmt, "/add-a", `{"host":"elsewhere.customer.example","addresses":["127.0.0.2"]}`)
	challSrvPost(t, mgmt, "/add-caa", `{"host":"deny.customer.example","policies":[{"tag":"issue","value":"other-ca.example"}]}`)
	challSrvPost(t, mgmt, "/add-caa", `{"host":"allow.customer.example","policies":[{"tag":"issue","value":"pebble.letsencrypt.org"}]}`)

	c, err := New(Config{
		Resolver:      dnsAddr,
		EdgeAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		CAAIdentities: []string{"pebble.letsencrypt.org"},
		Timeout:       time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want string
	}{
		{"blog.customer.example", ok},
		{"*.blog.customer.example", ok},
		{"allow.customer.example", ok},
		{"elsewhere.customer.example", notPointed},
		{"deny.customer.example", caaDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Check(context.Background(), tt.name)
			if got := classify(err); got != tt.want {
				t.Errorf("Check(%q) = %v (%s), want %s", tt.name, err, got, tt.want)
			}
			if tt.want == notPointed {
				want := "elsewhere.customer.example resolves to 127.0.0.2, ::1, not the edge (127.0.0.1, ::1)"
				if msg := fmt.Sprint(err); !strings.Contains(msg, want) {
					t.Errorf("Check(%q) = %q, want it to contain %q", tt.name, msg, want)
				}
			}
		})
	}
}
