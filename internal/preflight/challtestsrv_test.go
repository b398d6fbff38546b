package preflight

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/offlinetest"
)

// startChallTestSrv starts the offline stack's CA side (Pebble and
// pebble-challtestsrv, its DNS) and returns the DNS address and the
// challtestsrv management URL.
func startChallTestSrv(t *testing.T) (dnsAddr, mgmtURL string) {
	t.Helper()
	env := offlinetest.Start(t, offline.Options{Pebble: true})
	return env.DNSAddr, env.ChallSrvURL
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
// every A query with 127.0.0.1 and no AAAA query unless told otherwise, and
// the offline edge addresses are 127.0.0.1 and ::1.
func TestChallTestSrv(t *testing.T) {
	dnsAddr, mgmt := startChallTestSrv(t)
	challSrvPost(t, mgmt, "/add-a", `{"host":"elsewhere.customer.example","addresses":["127.0.0.2"]}`)
	challSrvPost(t, mgmt, "/add-caa", `{"host":"deny.customer.example","policies":[{"tag":"issue","value":"other-ca.example"}]}`)
	challSrvPost(t, mgmt, "/add-caa", `{"host":"allow.customer.example","policies":[{"tag":"issue","value":"pebble.letsencrypt.org"}]}`)

	c, err := New(Config{
		Resolver:      dnsAddr,
		EdgeAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		CAAIdentities: []string{"pebble.letsencrypt.org"},
		Timeout:       time.Second,
		Names:         domain.Policy{AllowTestingTLDs: true},
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
	// The ownership record as the offline stack serves it.
	challSrvPost(t, mgmt, "/set-txt", `{"host":"_certflow-challenge.owned.customer.example.","value":"tok-1"}`)
	for name, want := range map[string]bool{"_certflow-challenge.owned.customer.example": true, "_certflow-challenge.blog.customer.example": false} {
		if got, err := c.hasTXT(context.Background(), name, "tok-1"); err != nil || got != want {
			t.Errorf("hasTXT(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Check(context.Background(), tt.name)
			if got := classify(err); got != tt.want {
				t.Errorf("Check(%q) = %v (%s), want %s", tt.name, err, got, tt.want)
			}
			if tt.want == notPointed {
				want := "elsewhere.customer.example resolves to 127.0.0.2, not the edge (127.0.0.1, ::1)"
				if msg := fmt.Sprint(err); !strings.Contains(msg, want) {
					t.Errorf("Check(%q) = %q, want it to contain %q", tt.name, msg, want)
				}
			}
		})
	}
}
