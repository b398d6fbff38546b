package dns01

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/miekg/dns"

	"github.com/certflow/certflow/internal/validation"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/offlinetest"
)

const (
	testToken   = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
	testKeyAuth = testToken + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
)

// resolver is a loopback DNS server standing in for lego's recursive
// resolvers. It is authoritative for customer.example. (SOA only) and
// records every question, so tests see that lego asked it and nothing else.
type resolver struct {
	addr string
	mu   sync.Mutex
	seen []string
}

var testResolver *resolver

// The platform's delegation zone and a customer domain delegating its
// DNS-01 validation to it.
const delegationZone = "acme.platform.example"

var delegated = validation.Delegation("shop.customer.example", delegationZone)

func TestMain(m *testing.M) {
	r, stop, err := startResolver()
	if err != nil {
		panic(err)
	}
	testResolver = r
	// Before any provider runs: lego's default resolvers come from
	// /etc/resolv.conf, which is not loopback on test machines.
	UseResolvers([]string{r.addr})
	code := m.Run()
	stop()
	os.Exit(code)
}

func startResolver() (*resolver, func(), error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	r := &resolver{addr: pc.LocalAddr().String()}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := q.Question[0].Name
		r.mu.Lock()
		r.seen = append(r.seen, dns.TypeToString[q.Question[0].Qtype]+" "+name)
		r.mu.Unlock()
		switch {
		case strings.EqualFold(name, "customer.example.") && q.Question[0].Qtype == dns.TypeSOA:
			soa, _ := dns.NewRR("customer.example. 60 IN SOA ns.customer.example. hostmaster.customer.example. 1 60 60 60 60")
			m.Answer = append(m.Answer, soa)
		case strings.EqualFold(name, delegationZone+".") && q.Question[0].Qtype == dns.TypeSOA:
			soa, _ := dns.NewRR(delegationZone + ". 60 IN SOA ns.platform.example. hostmaster.platform.example. 1 60 60 60 60")
			m.Answer = append(m.Answer, soa)
		case strings.EqualFold(name, delegated.Name+"."):
			// The customer's delegation: every query of the name answers
			// its CNAME into the platform's delegation zone.
			cname, _ := dns.NewRR(delegated.Name + ". 60 IN CNAME " + delegated.Value + ".")
			m.Answer = append(m.Answer, cname)
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	return r, func() { _ = srv.Shutdown() }, nil
}

func (r *resolver) questions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func dns01Value(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name     string
		provider string
		url      string
		wantKind string
		wantErr  string
	}{
		{name: "none", wantKind: KindNone},
		{name: "route53", provider: "route53", wantKind: KindRoute53},
		{name: "challtestsrv", provider: "challtestsrv", url: "http://127.0.0.1:8055", wantKind: KindChallTestSrv},
		{name: "challtestsrv without URL", provider: "challtestsrv", wantErr: EnvChallTestSrvURL},
		{name: "unknown", provider: "cloudflare", wantErr: EnvProvider},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvProvider, tt.provider)
			t.Setenv(EnvChallTestSrvURL, tt.url)
			kind, cfg, err := ConfigFromEnv(aws.Config{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ConfigFromEnv() error = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || kind != tt.wantKind || cfg.ChallTestSrvURL != tt.url {
				t.Errorf("ConfigFromEnv() = %q, %+v, %v; want %q", kind, cfg, err, tt.wantKind)
			}
		})
	}
}

func TestNewProvider(t *testing.T) {
	p, err := NewProvider(KindNone, Config{})
	if p != nil || err != nil {
		t.Errorf("NewProvider(%q) = %v, %v; want nil, nil", KindNone, p, err)
	}
	if _, err := NewProvider("cloudflare", Config{}); err == nil {
		t.Error("NewProvider(cloudflare) succeeded")
	}
	if _, err := NewProvider(KindChallTestSrv, Config{ChallTestSrvURL: "not a url"}); err == nil {
		t.Error("NewProvider(challtestsrv) with a bad URL succeeded")
	}
	if p, err := NewProvider(KindRoute53, Config{AWS: aws.Config{Region: "us-east-1"}}); err != nil || p == nil {
		t.Errorf("NewProvider(route53) = %v, %v", p, err)
	}
}

func TestChallTestSrv(t *testing.T) {
	type call struct {
		path string
		body map[string]string
	}
	var (
		mu    sync.Mutex
		calls []call
		fail  bool
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]string
		_ = json.Unmarshal(b, &body)
		mu.Lock()
		calls = append(calls, call{r.URL.Path, body})
		f := fail
		mu.Unlock()
		if f {
			http.Error(w, "boom", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()

	p, err := NewChallTestSrv(Config{ChallTestSrvURL: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Present("blog.customer.example", testToken, testKeyAuth); err != nil {
		t.Fatalf("Present: %v", err)
	}
	if err := p.CleanUp("blog.customer.example", testToken, testKeyAuth); err != nil {
		t.Fatalf("CleanUp: %v", err)
	}
	host := "_acme-challenge.blog.customer.example."
	want := []call{
		{"/set-txt", map[string]string{"host": host, "value": dns01Value(testKeyAuth)}},
		{"/clear-txt", map[string]string{"host": host}},
	}
	if len(calls) != len(want) {
		t.Fatalf("calls = %+v, want %+v", calls, want)
	}
	for i := range want {
		if calls[i].path != want[i].path || len(calls[i].body) != len(want[i].body) || calls[i].body["host"] != want[i].body["host"] || calls[i].body["value"] != want[i].body["value"] {
			t.Errorf("call %d = %+v, want %+v", i, calls[i], want[i])
		}
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	if err := p.Present("blog.customer.example", testToken, testKeyAuth); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("Present against a failing server = %v, want the status", err)
	}
	// lego followed a possible CNAME of the challenge name through the
	// loopback resolver, not through /etc/resolv.conf.
	if q := testResolver.questions(); !contains(q, "CNAME "+host) {
		t.Errorf("loopback resolver saw %v, want the CNAME lookup of %s", q, host)
	}
}

// TestRoute53Moto runs lego's Route 53 provider against moto_server: the TXT
// record appears in the hosted zone on Present and is gone after CleanUp.
func TestRoute53Moto(t *testing.T) {
	stack := offlinetest.Start(t, offline.Options{Moto: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	awsCfg := stack.AWS
	client := route53.NewFromConfig(awsCfg)
	zone, err := client.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{
		Name:            aws.String("customer.example."),
		CallerReference: aws.String(t.Name()),
	})
	if err != nil {
		t.Fatalf("CreateHostedZone: %v", err)
	}
	zoneID := strings.TrimPrefix(aws.ToString(zone.HostedZone.Id), "/hostedzone/")
	fqdn := "_acme-challenge.blog.customer.example."

	txt := func(t *testing.T) []string {
		t.Helper()
		out, err := client.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zoneID)})
		if err != nil {
			t.Fatalf("ListResourceRecordSets: %v", err)
		}
		var values []string
		for _, rs := range out.ResourceRecordSets {
			if rs.Type == r53types.RRTypeTxt && aws.ToString(rs.Name) == fqdn {
				for _, r := range rs.ResourceRecords {
					values = append(values, aws.ToString(r.Value))
				}
			}
		}
		return values
	}

	for _, tt := range []struct {
		name   string
		zoneID string // empty: lego finds the zone through the SOA of the name
		wait   bool
	}{
		{name: "explicit hosted zone, wait for INSYNC", zoneID: zoneID, wait: true},
		{name: "zone found through SOA", zoneID: ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewProvider(KindRoute53, Config{AWS: awsCfg, HostedZoneID: tt.zoneID, WaitForChange: tt.wait, PollingInterval: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Present("blog.customer.example", testToken, testKeyAuth); err != nil {
				t.Fatalf("Present: %v", err)
			}
			want := `"` + dns01Value(testKeyAuth) + `"`
			if got := txt(t); len(got) != 1 || got[0] != want {
				t.Errorf("TXT %s after Present = %v, want [%s]", fqdn, got, want)
			}
			if err := p.CleanUp("blog.customer.example", testToken, testKeyAuth); err != nil {
				t.Fatalf("CleanUp: %v", err)
			}
			if got := txt(t); len(got) != 0 {
				t.Errorf("TXT %s after CleanUp = %v, want none", fqdn, got)
			}
		})
	}
	if q := testResolver.questions(); !contains(q, "SOA customer.example.") {
		t.Errorf("loopback resolver saw %v, want the SOA lookup of customer.example.", q)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestRoute53Delegation: for a customer domain whose "_acme-challenge"
// CNAME points into the platform's delegation zone, the Route 53 provider
// writes the TXT record there (lego follows the CNAME), in the hosted zone
// the template gives it, proven against moto.
func TestRoute53Delegation(t *testing.T) {
	stack := offlinetest.Start(t, offline.Options{Moto: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := route53.NewFromConfig(stack.AWS)
	zone, err := client.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{
		Name:            aws.String(delegationZone + "."),
		CallerReference: aws.String(t.Name()),
	})
	if err != nil {
		t.Fatalf("CreateHostedZone: %v", err)
	}
	zoneID := strings.TrimPrefix(aws.ToString(zone.HostedZone.Id), "/hostedzone/")
	p, err := NewProvider(KindRoute53, Config{AWS: stack.AWS, HostedZoneID: zoneID, PollingInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Present("shop.customer.example", testToken, testKeyAuth); err != nil {
		t.Fatalf("Present: %v", err)
	}
	out, err := client.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zoneID)})
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, rs := range out.ResourceRecordSets {
		if rs.Type == r53types.RRTypeTxt {
			found = append(found, aws.ToString(rs.Name))
		}
	}
	if want := delegated.Value + "."; len(found) != 1 || found[0] != want {
		t.Errorf("TXT records in the delegation zone = %v, want one at %s (the CNAME's target)", found, want)
	}
	if err := p.CleanUp("shop.customer.example", testToken, testKeyAuth); err != nil {
		t.Fatalf("CleanUp: %v", err)
	}
}
