package preflight

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"

	"github.com/certflow/certflow/internal/fixtures"
)

const testZone = `
direct.customer.example.      A     127.0.0.1
blog.customer.example.        A     127.0.0.1
www.blog.customer.example.    CNAME edge.platform.example.
elsewhere.customer.example.   A     127.0.0.2
mixed.customer.example.       A     127.0.0.1
mixed.customer.example.       A     127.0.0.2
v6.customer.example.          AAAA  ::1
v6other.customer.example.     A     127.0.0.1
v6other.customer.example.     AAAA  2001:db8::1
alias.customer.example.       CNAME hop.customer.example.
hop.customer.example.         CNAME edge.platform.example.
edge.platform.example.        A     127.0.0.9
wildalias.customer.example.   CNAME x1.cdn.platform.example.
x1.cdn.platform.example.      A     127.0.0.9
notedge.customer.example.     CNAME cdn.platform.example.
cdn.platform.example.         A     127.0.0.2
chainaddr.customer.example.   CNAME target.other.example.
target.other.example.         A     127.0.0.1
loop1.customer.example.       CNAME loop2.customer.example.
loop2.customer.example.       CNAME loop1.customer.example.
long.customer.example.        CNAME c1.customer.example.
c1.customer.example.          CNAME c2.customer.example.
c2.customer.example.          CNAME c3.customer.example.
c3.customer.example.          CNAME c4.customer.example.
c4.customer.example.          CNAME c5.customer.example.
c5.customer.example.          CNAME c6.customer.example.
c6.customer.example.          CNAME c7.customer.example.
c7.customer.example.          CNAME c8.customer.example.
c8.customer.example.          CNAME c9.customer.example.
c9.customer.example.          A     127.0.0.1
dangling.customer.example.    CNAME gone.other.example.
empty.customer.example.       TXT   "no address"
broken.customer.example.      A     127.0.0.1
slow.customer.example.        A     127.0.0.1
big.customer.example.         A     127.0.0.1

caa-allow.customer.example.   A     127.0.0.1
caa-allow.customer.example.   CAA   0 issue "letsencrypt.org"
caa-params.customer.example.  A     127.0.0.1
caa-params.customer.example.  CAA   0 issue "letsencrypt.org; validationmethods=http-01"
caa-case.customer.example.    A     127.0.0.1
caa-case.customer.example.    CAA   0 ISSUE "LetsEncrypt.org"
caa-several.customer.example. A     127.0.0.1
caa-several.customer.example. CAA   0 issue "other-ca.example"
caa-several.customer.example. CAA   0 issue "letsencrypt.org"
caa-deny.customer.example.    A     127.0.0.1
caa-deny.customer.example.    CAA   0 issue "other-ca.example"
caa-none.customer.example.    A     127.0.0.1
caa-none.customer.example.    CAA   0 issue ";"
caa-critical.customer.example. A    127.0.0.1
caa-critical.customer.example. CAA  0 issue "letsencrypt.org"
caa-critical.customer.example. CAA  128 tbs "unknown"
caa-noncrit.customer.example. A     127.0.0.1
caa-noncrit.customer.example. CAA   0 issue "letsencrypt.org"
caa-noncrit.customer.example. CAA   0 tbs "unknown"
caa-iodef.customer.example.   A     127.0.0.1
caa-iodef.customer.example.   CAA   0 iodef "mailto:security@customer.example"
caa-broken.customer.example.  A     127.0.0.1
wild.customer.example.        A     127.0.0.1
wild.customer.example.        CAA   0 issue "letsencrypt.org"
wild.customer.example.        CAA   0 issuewild "other-ca.example"
wild2.customer.example.       A     127.0.0.1
wild2.customer.example.       CAA   0 issue "other-ca.example"
wild2.customer.example.       CAA   0 issuewild "letsencrypt.org"

strict.example.               CAA   0 issue "other-ca.example"
www.strict.example.           A     127.0.0.1
deep.strict.example.          CAA   0 issue "letsencrypt.org"
a.deep.strict.example.        A     127.0.0.1
`

// Outcome classes of a check.
const (
	ok          = "ok"
	notPointed  = "not pointed"
	caaDenied   = "caa forbidden"
	transient   = "transient"
	invalidName = "invalid"
)

func classify(err error) string {
	var (
		np  *failure.DomainNotPointedError
		caa *failure.CAAForbiddenError
		tr  *failure.TransientError
		inv *failure.InvalidInputError
	)
	switch {
	case err == nil:
		return ok
	case errors.As(err, &np):
		return notPointed
	case errors.As(err, &caa):
		return caaDenied
	case errors.As(err, &tr):
		return transient
	case errors.As(err, &inv):
		return invalidName
	}
	return fmt.Sprintf("unclassified %T", err)
}

func newTestChecker(t *testing.T, z *zoneServer, caa ...string) *Checker {
	t.Helper()
	c, err := New(Config{
		Resolver:      z.addr,
		EdgeCNAMEs:    []string{"edge.platform.example", "*.cdn.platform.example"},
		EdgeAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		CAAIdentities: caa,
		Timeout:       300 * time.Millisecond,
		Attempts:      2,
		Names:         domain.Policy{AllowTestingTLDs: true},
	})
	if err != nil {
		t.Fatalf("New() error: %v", err)
	}
	return c
}

func startZone(t *testing.T, chase bool) *zoneServer {
	return newZoneServer(t, chase, testZone, func(z *zoneServer) {
		z.servfail["broken.customer.example."] = 0
		z.servfail["caa-broken.customer.example."] = dns.TypeCAA
		z.drop["slow.customer.example."] = true
		z.truncate["big.customer.example."] = true
	})
}

func TestCheck(t *testing.T) {
	const edge = "edge.platform.example, *.cdn.platform.example, 127.0.0.1, ::1"
	tests := []struct {
		name    string
		check   string
		want    string
		message string // exact error message, if set
		contain string // substring of the error message, if set
	}{
		{"direct A to edge", "direct.customer.example", ok, "", ""},
		{"name is normalised", "Direct.Customer.Example.", ok, "", ""},
		{"A elsewhere", "elsewhere.customer.example", notPointed,
			"elsewhere.customer.example resolves to 127.0.0.2, not the edge (" + edge + ")", ""},
		{"one address elsewhere", "mixed.customer.example", notPointed, "", "127.0.0.2 is not an edge address"},
		{"AAAA to edge", "v6.customer.example", ok, "", ""},
		{"AAAA elsewhere", "v6other.customer.example", notPointed, "", "2001:db8::1 is not an edge address"},
		{"CNAME chain to edge target", "alias.customer.example", ok, "", ""},
		{"CNAME to wildcard edge target", "wildalias.customer.example", ok, "", ""},
		{"wildcard edge pattern excludes its base", "notedge.customer.example", notPointed, "", "via CNAME cdn.platform.example to 127.0.0.2"},
		{"CNAME to edge address", "chainaddr.customer.example", ok, "", ""},
		{"CNAME loop", "loop1.customer.example", notPointed, "", "CNAME loop"},
		{"CNAME chain too long", "long.customer.example", notPointed, "", "longer than 8"},
		{"NXDOMAIN", "missing.customer.example", notPointed, "missing.customer.example does not exist in DNS (NXDOMAIN)", ""},
		{"CNAME to NXDOMAIN", "dangling.customer.example", notPointed, "", "alias of gone.other.example, which does not exist"},
		{"no address records", "empty.customer.example", notPointed, "", "no A or AAAA records"},
		{"SERVFAIL", "broken.customer.example", transient, "", "SERVFAIL"},
		{"timeout", "slow.customer.example", transient, "", "did not answer in time"},
		{"truncated UDP answer retried over TCP", "big.customer.example", ok, "", ""},
		{"wildcard checks its base name", "*.direct.customer.example", ok, "", ""},
		{"wildcard base elsewhere", "*.elsewhere.customer.example", notPointed, "", "elsewhere.customer.example resolves to 127.0.0.2"},
		{"invalid name", "a..b", invalidName, "", ""},

		{"CAA allows", "caa-allow.customer.example", ok, "", ""},
		{"CAA allows with parameters", "caa-params.customer.example", ok, "", ""},
		{"CAA tag and value case", "caa-case.customer.example", ok, "", ""},
		{"CAA allows one of several", "caa-several.customer.example", ok, "", ""},
		{"CAA denies", "caa-deny.customer.example", caaDenied,
			"CAA issue records of caa-deny.customer.example allow only other-ca.example to issue for caa-deny.customer.example, not letsencrypt.org", ""},
		{"CAA issue ; forbids all", "caa-none.customer.example", caaDenied, "", "forbid every CA"},
		{"CAA critical unknown tag", "caa-critical.customer.example", caaDenied, "", `critical property "tbs"`},
		{"CAA non-critical unknown tag", "caa-noncrit.customer.example", ok, "", ""},
		{"CAA iodef only", "caa-iodef.customer.example", ok, "", ""},
		{"CAA lookup SERVFAIL", "caa-broken.customer.example", transient, "", "CAA"},
		{"issuewild does not restrict the base", "wild.customer.example", ok, "", ""},
		{"issuewild denies wildcard", "*.wild.customer.example", caaDenied, "", "CAA issuewild records of wild.customer.example"},
		{"issuewild allows wildcard", "*.wild2.customer.example", ok, "", ""},
		{"issue denies when issuewild allows", "wild2.customer.example", caaDenied, "", ""},
		{"wildcard falls back to issue", "*.caa-deny.customer.example", caaDenied, "", "CAA issue records"},
		{"CAA on parent denies", "www.strict.example", caaDenied, "", "records of strict.example"},
		{"closest CAA set wins", "a.deep.strict.example", ok, "", ""},
		{"no CAA anywhere", "direct.customer.example", ok, "", ""},
	}
	for _, chase := range []bool{true, false} {
		z := startZone(t, chase)
		c := newTestChecker(t, z, "letsencrypt.org")
		for _, tt := range tests {
			t.Run(fmt.Sprintf("recursive=%v/%s", chase, tt.name), func(t *testing.T) {
				err := c.Check(context.Background(), tt.check)
				if got := classify(err); got != tt.want {
					t.Fatalf("Check(%q) = %v (%s), want %s", tt.check, err, got, tt.want)
				}
				if err == nil {
					return
				}
				f, _ := failure.Find(err)
				msg := f.Detail().Message
				if tt.message != "" && msg != tt.message {
					t.Errorf("Check(%q) message = %q, want %q", tt.check, msg, tt.message)
				}
				if tt.contain != "" && !strings.Contains(msg, tt.contain) {
					t.Errorf("Check(%q) message = %q, want it to contain %q", tt.check, msg, tt.contain)
				}
			})
		}
	}
}

func TestCheckTruncationUsesTCP(t *testing.T) {
	z := startZone(t, true)
	if err := newTestChecker(t, z).Check(context.Background(), "big.customer.example"); err != nil {
		t.Fatalf("Check() error: %v", err)
	}
	if !z.sawQuery("big.customer.example. A tcp") {
		t.Errorf("no TCP query after a truncated answer; queries: %v", z.queries)
	}
}

func TestCheckWithoutCAAIdentitiesSkipsCAA(t *testing.T) {
	z := startZone(t, true)
	c := newTestChecker(t, z)
	if err := c.Check(context.Background(), "caa-deny.customer.example"); err != nil {
		t.Errorf("Check(%q) = %v, want nil without CAA identities", "caa-deny.customer.example", err)
	}
	if z.sawQuery("caa-deny.customer.example. CAA udp") {
		t.Error("CAA queried although no CAA identities are configured")
	}
}

func TestCheckCancelled(t *testing.T) {
	z := startZone(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := classify(newTestChecker(t, z).Check(ctx, "direct.customer.example")); got != transient {
		t.Errorf("Check(cancelled) = %s, want %s", got, transient)
	}
}

func TestCAACandidates(t *testing.T) {
	tests := []struct {
		name string
		want []string
	}{
		{"blog.customer.example", []string{"blog.customer.example", "customer.example"}},
		{"www.shop.example.co.uk", []string{"www.shop.example.co.uk", "shop.example.co.uk", "example.co.uk"}},
		{"example.com", []string{"example.com"}},
		{"com", []string{"com"}},
	}
	for _, tt := range tests {
		if got := caaCandidates(tt.name); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("caaCandidates(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestHandle(t *testing.T) {
	z := startZone(t, true)
	c := newTestChecker(t, z, "letsencrypt.org")
	tests := []struct {
		name    string
		in      flow.Input
		want    Output
		wantErr string
	}{
		{"domain and SANs", flow.Input{Domain: "direct.customer.example", SANs: []string{"alias.customer.example", "DIRECT.customer.example", "*.wild2.customer.example"}},
			Output{Domain: "direct.customer.example", Checked: []string{"direct.customer.example", "*.wild2.customer.example", "alias.customer.example"}}, ok},
		{"failing SAN", flow.Input{Domain: "direct.customer.example", SANs: []string{"elsewhere.customer.example"}}, Output{}, notPointed},
		{"failing CAA SAN", flow.Input{Domain: "direct.customer.example", SANs: []string{"www.strict.example"}}, Output{}, caaDenied},
		{"no domain", flow.Input{}, Output{}, invalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Handle(context.Background(), tt.in)
			if classify(err) != tt.wantErr {
				t.Fatalf("Handle(%+v) error = %v, want %s", tt.in, err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Handle(%+v) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // substring; empty = success
		want    Config
	}{
		{"complete", map[string]string{
			EnvResolver: "127.0.0.1:8053", EnvEdgeCNAMEs: "Edge.Platform.Example., *.cdn.platform.example",
			EnvEdgeAddresses: "127.0.0.1, ::1", EnvCAAIdentities: "letsencrypt.org",
		}, "", Config{
			Resolver: "127.0.0.1:8053", EdgeCNAMEs: []string{"Edge.Platform.Example.", "*.cdn.platform.example"},
			EdgeAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, CAAIdentities: []string{"letsencrypt.org"},
		}},
		{"addresses only", map[string]string{EnvResolver: "127.0.0.1:53", EnvEdgeAddresses: "127.0.0.1"}, "",
			Config{Resolver: "127.0.0.1:53", EdgeAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}},
		{"no edge", map[string]string{EnvResolver: "127.0.0.1:53"}, EnvEdgeCNAMEs, Config{}},
		{"bad address", map[string]string{EnvResolver: "127.0.0.1:53", EnvEdgeAddresses: "127.0.0.1,edge"}, EnvEdgeAddresses, Config{}},
		{"resolver without port", map[string]string{EnvResolver: "127.0.0.1", EnvEdgeAddresses: "127.0.0.1"}, EnvResolver, Config{}},
		{"bad CNAME pattern", map[string]string{EnvResolver: "127.0.0.1:53", EnvEdgeCNAMEs: "a.*.example"}, EnvEdgeCNAMEs, Config{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{EnvResolver, EnvEdgeCNAMEs, EnvEdgeAddresses, EnvCAAIdentities} {
				t.Setenv(k, tt.env[k])
			}
			got, err := ConfigFromEnv()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ConfigFromEnv() error = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ConfigFromEnv() error: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ConfigFromEnv() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestFixture runs events/preflight.json (also used with sam local invoke).
func TestFixture(t *testing.T) {
	in := fixtures.StrictEvent[struct {
		flow.Input
		Reason string `json:"reason"`
	}](t, "preflight.json")
	z := startZone(t, true)
	got, err := newTestChecker(t, z, "letsencrypt.org").Handle(context.Background(), in.Input)
	if err != nil {
		t.Fatalf("Handle(fixture) error: %v", err)
	}
	want := Output{Domain: "blog.customer.example", Checked: []string{"blog.customer.example", "www.blog.customer.example"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Handle(fixture) = %+v, want %+v", got, want)
	}
}
