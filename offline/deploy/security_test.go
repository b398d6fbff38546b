package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certflow/certflow/internal/validation"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/apigw"
	"github.com/certflow/certflow/offline/offlinetest"
)

// The tenants of the test: offline principals the requests name.
const (
	tenantA = "arn:aws:sts::000000000000:assumed-role/tenant-a/session"
	tenantB = "arn:aws:sts::000000000000:assumed-role/tenant-b/session"
)

// secDoc is the part of a status document the test reads.
type secDoc struct {
	Domain    string `json:"domain"`
	Tenant    string `json:"tenant"`
	Status    string `json:"status"`
	Serial    string `json:"serial"`
	LastError *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"lastError"`
	QuarantineReason string `json:"quarantineReason"`
	RequestedAt      string `json:"requestedAt"`
	UpdatedAt        string `json:"updatedAt"`
	Ownership        *struct {
		Records    []validation.Record `json:"records"`
		VerifiedAt string              `json:"verifiedAt"`
	} `json:"ownership"`
}

// TestTenancyOwnershipRevocation runs the whole system offline, built by
// the same wiring as in AWS, with tenants named per request:
//
//   - a domain requested with the ownership proof is not ordered until the
//     TXT record is published (quarantined without an order), cannot be
//     requested again within the cooldown (429), and is issued once the
//     record is there and it is requested again; a domain pointed elsewhere
//     requested again runs preflight first and is never ordered;
//   - another tenant can neither read, retire, request, cover with a
//     wildcard, list nor fetch its key (404, 409, 403), the edge can;
//   - retiring with revoke=true revokes the certificate at the CA (Pebble's
//     management API says so) through the API function's own revoker.
func TestTenancyOwnershipRevocation(t *testing.T) {
	offlinetest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	const cooldown = 8 * time.Second
	sys, err := Start(ctx, quiet(t, Config{
		CertificateValidity: time.Hour,
		WaitOverride:        300 * time.Millisecond,
		RequestCooldown:     cooldown,
		CAProxy:             true,
		Metrics:             io.Discard,
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	api := client{t: t, ctx: ctx, base: sys.APIURL}

	const owned, moved = "owned.customer.example", "moved.customer.example"
	if err := sys.Stack.PointAt(ctx, moved, offline.ElsewhereAddress); err != nil {
		t.Fatal(err)
	}

	// The proof is asked for: the answer says what to publish.
	code, d := api.doc(http.MethodPost, "/certificates", tenantA, `{"domain": "`+owned+`", "proveOwnership": true}`)
	if code != http.StatusAccepted || d.Ownership == nil || len(d.Ownership.Records) != 1 || d.Ownership.Records[0].Name != validation.Ownership(owned, "").Name || d.Ownership.VerifiedAt != "" {
		t.Fatalf("POST %s with the proof = %d %+v, want 202 and the TXT record to publish", owned, code, d)
	}
	record := d.Ownership.Records[0]
	if code, _ := api.doc(http.MethodPost, "/certificates", tenantA, `{"domain": "`+moved+`"}`); code != http.StatusAccepted {
		t.Fatalf("POST %s = %d", moved, code)
	}

	// Unpublished, the proof fails preflight until the domain is
	// quarantined; moved fails for pointing elsewhere. No order either way.
	d = api.waitFor(tenantA, owned, func(d secDoc) bool { return d.Status == "quarantined" })
	if d.LastError == nil || !strings.Contains(d.LastError.Message, record.Name) {
		t.Errorf("quarantined %s with %+v, want the missing record named", owned, d.LastError)
	}
	movedDoc := api.waitFor(tenantA, moved, func(d secDoc) bool { return d.Status == "quarantined" })
	if n := ordersFor(sys, owned, moved); n != 0 {
		t.Fatalf("%d orders placed for domains that never passed preflight, want 0", n)
	}

	// Requested again at once: the cooldown refuses it.
	resp := api.call(http.MethodPost, "/certificates", tenantA, `{"domain": "`+owned+`", "proveOwnership": true}`)
	if resp.code != http.StatusTooManyRequests || resp.header.Get("Retry-After") == "" || !strings.Contains(string(resp.body), "request_cooldown") {
		t.Errorf("POST again within the cooldown = %d %s (Retry-After %q), want 429 request_cooldown", resp.code, resp.body, resp.header.Get("Retry-After"))
	}

	// Another tenant: nothing of A's is visible or takeable.
	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{http.MethodGet, "/certificates/" + owned, "", http.StatusNotFound, "not_found"},
		{http.MethodDelete, "/certificates/" + owned + "?revoke=true", "", http.StatusNotFound, "not_found"},
		{http.MethodPost, "/certificates", `{"domain": "` + owned + `"}`, http.StatusConflict, "domain_taken"},
		{http.MethodPost, "/certificates", `{"domain": "*.customer.example", "validation": "dns-01"}`, http.StatusConflict, "wildcard_conflict"},
		{http.MethodPost, "/certificates", `{"domain": "b.other.example", "sans": ["` + moved + `"]}`, http.StatusConflict, "san_conflict"},
		{http.MethodGet, "/certificates?status=quarantined&tenant=" + tenantA, "", http.StatusForbidden, "tenant_not_allowed"},
	} {
		r := api.call(c.method, c.path, tenantB, c.body)
		if r.code != c.status || !strings.Contains(string(r.body), `"code":"`+c.code+`"`) {
			t.Errorf("tenant B: %s %s = %d %s, want %d %s", c.method, c.path, r.code, r.body, c.status, c.code)
		}
	}
	if r := api.call(http.MethodGet, "/certificates?status=quarantined", tenantB, ""); r.code != http.StatusOK || string(r.body) != `{"certificates":[]}` {
		t.Errorf("tenant B's list = %d %s, want empty", r.code, r.body)
	}

	// Published, and requested again after the cooldown: issued. moved,
	// still pointed elsewhere, is checked again and never ordered.
	if err := sys.Stack.ChallSrv(ctx, "/set-txt", map[string]any{"host": record.Name + ".", "value": record.Value}); err != nil {
		t.Fatal(err)
	}
	// The cooldown runs from the items' last change, their quarantine.
	last := parseTime(t, d.UpdatedAt)
	if m := parseTime(t, movedDoc.UpdatedAt); m.After(last) {
		last = m
	}
	time.Sleep(time.Until(last.Add(cooldown + time.Second)))
	if code, d := api.doc(http.MethodPost, "/certificates", tenantA, `{"domain": "`+owned+`", "proveOwnership": true}`); code != http.StatusAccepted || d.Ownership.Records[0].Value != record.Value {
		t.Fatalf("POST %s after the cooldown = %d %+v, want 202 with the same token", owned, code, d)
	}
	if code, _ := api.doc(http.MethodPost, "/certificates", tenantA, `{"domain": "`+moved+`"}`); code != http.StatusAccepted {
		t.Fatalf("POST %s after the cooldown = %d, want 202", moved, code)
	}
	d = api.waitFor(tenantA, owned, func(d secDoc) bool { return d.Status == "active" })
	if d.Ownership == nil || d.Ownership.VerifiedAt == "" {
		t.Errorf("active %s: ownership %+v, want the verification time", owned, d.Ownership)
	}
	api.waitFor(tenantA, moved, func(d secDoc) bool { return d.Status == "quarantined" && d.RequestedAt != "" })
	if n := ordersFor(sys, moved); n != 0 {
		t.Errorf("%d orders for %s, which never passed preflight again, want 0", n, moved)
	}
	t.Logf("%s issued (serial %s) after its ownership was proven at %s", owned, d.Serial, d.Ownership.VerifiedAt)

	// Keys: the edge gets it, tenant B does not.
	for who, want := range map[string]int{EdgePrincipal: http.StatusOK, tenantB: http.StatusForbidden, tenantA: http.StatusForbidden} {
		r := api.call(http.MethodGet, "/sni/"+owned, who, "")
		if r.code != want || (want != http.StatusOK && bytes.Contains(r.body, []byte("PRIVATE KEY"))) {
			t.Errorf("GET /sni/%s as %s = %d, want %d", owned, who, r.code, want)
		}
	}

	// Retired with revoke=true: the CA revoked it.
	if status, err := sys.Stack.PebbleCertStatus(ctx, d.Serial); err != nil || status != "Valid" {
		t.Fatalf("Pebble status of %s before = %q, %v; want Valid", d.Serial, status, err)
	}
	if r := api.call(http.MethodDelete, "/certificates/"+owned+"?revoke=true", tenantA, ""); r.code != http.StatusOK || !strings.Contains(string(r.body), `"status":"retired"`) {
		t.Fatalf("DELETE %s?revoke=true = %d %s, want 200 retired", owned, r.code, r.body)
	}
	if status, err := sys.Stack.PebbleCertStatus(ctx, d.Serial); err != nil || status != "Revoked" {
		t.Errorf("Pebble status of %s after = %q, %v; want Revoked", d.Serial, status, err)
	}
	if r := api.call(http.MethodGet, "/sni/"+owned, EdgePrincipal, ""); r.code != http.StatusNotFound {
		t.Errorf("GET /sni/%s after retirement = %d, want 404", owned, r.code)
	}
}

// quiet is cfg for a test: the functions' environment set for the test
// only, their logs and the engines' output discarded.
func quiet(t *testing.T, cfg Config) Config {
	cfg.Setenv = func(k, v string) error { t.Setenv(k, v); return nil }
	cfg.FunctionLogger = slog.New(slog.DiscardHandler)
	cfg.Logs = io.Discard
	return cfg
}

// logged is quiet, except that with -v the functions' and engines' logs go
// to certflow-<name>-test.log in the temporary directory.
func logged(t *testing.T, name string, cfg Config) Config {
	cfg = quiet(t, cfg)
	if !testing.Verbose() {
		return cfg
	}
	f, err := os.Create(filepath.Join(os.TempDir(), "certflow-"+name+"-test.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cfg.FunctionLogger, cfg.Logs = slog.New(slog.NewJSONHandler(f, nil)), f
	t.Logf("logs: %s", f.Name())
	return cfg
}

// ordersFor counts the newOrder requests the CA saw for any of names.
func ordersFor(sys *Deployment, names ...string) int {
	n := 0
	for _, o := range sys.CAProxy.NewOrders() {
		for _, id := range o.Identifiers {
			for _, name := range names {
				if id == name {
					n++
				}
			}
		}
	}
	return n
}

// client calls the offline HTTP API as a named principal.
type client struct {
	t    *testing.T
	ctx  context.Context
	base string
}

type answer struct {
	code   int
	header http.Header
	body   []byte
}

func (c client) call(method, path, principal, body string) answer {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(apigw.PrincipalHeader, principal)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return answer{code: resp.StatusCode, header: resp.Header, body: b}
}

func (c client) doc(method, path, principal, body string) (int, secDoc) {
	c.t.Helper()
	r := c.call(method, path, principal, body)
	var d secDoc
	if r.code < 300 {
		if err := json.Unmarshal(r.body, &d); err != nil {
			c.t.Fatalf("%s %s: %v (%s)", method, path, err, r.body)
		}
	}
	return r.code, d
}

// waitFor polls the document of name, read as principal, until ok.
func (c client) waitFor(principal, name string, ok func(secDoc) bool) secDoc {
	c.t.Helper()
	var last secDoc
	for {
		code, d := c.doc(http.MethodGet, "/certificates/"+name, principal, "")
		if code == http.StatusOK && ok(d) {
			return d
		}
		last = d
		select {
		case <-c.ctx.Done():
			c.t.Fatalf("%s never reached the expected state; last %d %s", name, code, fmt.Sprintf("%+v", last))
		case <-time.After(300 * time.Millisecond):
		}
	}
}
