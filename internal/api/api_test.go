package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/certflow/certflow/internal/api"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/notify"
	"github.com/certflow/certflow/internal/principal"
	"github.com/certflow/certflow/internal/reconcile"
)

var now = time.Date(2026, 11, 21, 16, 5, 12, 0, time.UTC)

const stateMachineARN = "arn:aws:states:us-east-1:123456789012:stateMachine:certflow-issuance"

type env struct {
	store      *fakeStore
	starter    *fakeStarter
	executions *fakeExecutions
	stopper    *fakeStopper
	revoker    *fakeRevoker
	publisher  *fakePublisher
	logs       *bytes.Buffer
	h          *api.Handler
}

// config is the Handler's configuration over e's fakes and the real
// reconciler.
func (e *env) config() api.Config {
	return api.Config{
		Requester: e.store, Getter: e.store, Lister: e.store, Retirer: e.store,
		Reconciler: &reconcile.Reconciler{Store: e.store, Starter: e.starter, Executions: e.executions,
			StateMachineARN: stateMachineARN, Now: func() time.Time { return now }},
		Stopper: e.stopper, StateMachineARN: stateMachineARN, Publisher: e.publisher, Revoker: e.revoker,
		Now:       func() time.Time { return now },
		Names:     domain.Policy{AllowTestingTLDs: true},
		Operators: principal.List{operator},
		Validation: api.Validation{DelegationZone: delegationZone, Persist: persistIdentity{},
			Profiles: []string{"tlsserver", "shortlived"}},
	}
}

// The validation settings of the tests.
const (
	delegationZone = "acme-delegation.platform.example"
	persistIssuer  = "letsencrypt.org"
	persistAccount = "https://acme-v02.api.letsencrypt.org/acme/acct/123456"
)

// persistIdentity names persistIssuer and persistAccount.
type persistIdentity struct{}

func (persistIdentity) PersistIdentity(context.Context) (string, string, error) {
	return persistIssuer, persistAccount, nil
}

func newEnv(t *testing.T, certs ...*certstore.Certificate) *env {
	t.Helper()
	e := &env{
		store:     newFakeStore(t, certs...),
		starter:   &fakeStarter{t: t},
		stopper:   &fakeStopper{t: t},
		revoker:   &fakeRevoker{t: t},
		publisher: &fakePublisher{},
		logs:      &bytes.Buffer{},
	}
	e.executions = &fakeExecutions{starter: e.starter}
	h, err := api.New(e.config())
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	e.h = h
	return e
}

// ctx carries the logger the Lambda adapter would give the handler, writing
// to e.logs.
func (e *env) ctx() context.Context {
	return logging.Into(context.Background(), slog.New(slog.NewJSONHandler(e.logs, nil)))
}

func (e *env) do(t *testing.T, req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	t.Helper()
	resp, err := e.h.Handle(e.ctx(), req)
	if err != nil {
		t.Fatalf("Handle returned error %v; want answers only", err)
	}
	if ct := resp.Headers["content-type"]; ct != "application/json" {
		t.Errorf("content-type = %q, want application/json", ct)
	}
	if !json.Valid([]byte(resp.Body)) {
		t.Errorf("body %q is not JSON", resp.Body)
	}
	return resp
}

func activeCert(name string) *certstore.Certificate {
	return &certstore.Certificate{
		Domain: name, SANs: []string{"www." + name}, Tenant: tenantA, Status: certstore.StatusActive, Version: 3, Generation: 1,
		CertPEM:   "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		Key:       certstore.SealedKey{Wrapped: []byte("wrapped"), Ciphertext: []byte("ciphertext")},
		NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(89 * 24 * time.Hour),
		Serial: "03a1f5c2e4b6d8f0", Issuer: "CN=Pebble Intermediate CA", RenewAt: now.Add(59 * 24 * time.Hour),
		RequestedAt: now.Add(-48 * time.Hour), UpdatedAt: now.Add(-24 * time.Hour),
	}
}

type statusDoc struct {
	Domain       string   `json:"domain"`
	SANs         []string `json:"sans"`
	Status       string   `json:"status"`
	NotAfter     string   `json:"notAfter"`
	Serial       string   `json:"serial"`
	FailureCount int      `json:"failureCount"`
	LastError    *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"lastError"`
	UpdatedAt string `json:"updatedAt"`
}

func decodeDoc(t *testing.T, body string) statusDoc {
	t.Helper()
	var d statusDoc
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return d
}

func TestPostFixture(t *testing.T) {
	e := newEnv(t)
	resp := e.do(t, loadEvent(t, "api-post.json"))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST status = %d (%s), want 202", resp.StatusCode, resp.Body)
	}
	d := decodeDoc(t, resp.Body)
	if d.Domain != "blog.customer.example" || d.Status != "pending" || len(d.SANs) != 1 || d.SANs[0] != "www.blog.customer.example" {
		t.Errorf("POST document = %+v, want pending blog.customer.example with its SAN", d)
	}
	if got, want := resp.Headers["location"], "/certificates/blog.customer.example"; got != want {
		t.Errorf("location = %q, want %q", got, want)
	}
	name := flow.IssueName("blog.customer.example", 1, 1)
	input, ok := e.starter.started[name]
	if !ok {
		t.Fatalf("started %v, want %s", e.starter.started, name)
	}
	if want := `{"domain":"blog.customer.example","sans":["www.blog.customer.example"],"reason":"request","generation":1,"execution":"` + name + `","ca":"primary","validation":"http-01"}`; string(input) != want {
		t.Errorf("execution input = %s, want %s", input, want)
	}
	if got := e.store.items["blog.customer.example"].Execution; got != name {
		t.Errorf("owning execution = %q, want %s", got, name)
	}

	// A repeated request for a pending domain whose execution runs starts
	// nothing.
	resp = e.do(t, loadEvent(t, "api-post.json"))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("repeated POST status = %d, want 200", resp.StatusCode)
	}
	if len(e.starter.started) != 1 {
		t.Errorf("repeated POST started %d executions, want 1", len(e.starter.started))
	}
}

func TestPostStates(t *testing.T) {
	const d = "blog.customer.example"
	quarantined := activeCert(d)
	quarantined.Status, quarantined.Generation, quarantined.QuarantineReason = certstore.StatusQuarantined, 4, "domain_rejected"
	failed := func(run int64) *certstore.Certificate {
		c := activeCert(d)
		c.Status, c.FailureCount, c.LastErrorCode, c.LastErrorMessage = certstore.StatusFailed, 2, "challenge_failed", "connection refused"
		c.Run, c.Execution = run, flow.IssueName(d, c.Generation, run)
		return c
	}
	lost := &certstore.Certificate{Domain: d, Tenant: tenantA, Status: certstore.StatusPending, Generation: 2, Run: 1, Execution: flow.IssueName(d, 2, 1)}
	for _, tc := range []struct {
		name      string
		cert      *certstore.Certificate
		running   bool                     // the owning execution runs
		ended     sfntypes.ExecutionStatus // it ended so
		status    int
		startedAs string // execution name started, "" for none
	}{
		{"new", nil, false, "", http.StatusAccepted, flow.IssueName(d, 1, 1)},
		{"active", activeCert(d), false, "", http.StatusOK, ""},
		{"failed, its execution waiting to retry", failed(1), true, "", http.StatusOK, ""},
		{"failed, its execution ended without an outcome", failed(2), false, sfntypes.ExecutionStatusSucceeded, http.StatusAccepted, flow.IssueName(d, 1, 3)},
		{"quarantined starts a new generation", quarantined, false, "", http.StatusAccepted, flow.IssueName(d, 5, 1)},
		{"pending whose start was lost is started", lost, false, "", http.StatusAccepted, flow.IssueName(d, 2, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var certs []*certstore.Certificate
			if tc.cert != nil {
				certs = append(certs, tc.cert)
			}
			e := newEnv(t, certs...)
			if tc.running {
				e.starter.started = map[string]json.RawMessage{tc.cert.Execution: nil}
			}
			if tc.ended != "" {
				e.executions.ended = map[string]sfntypes.ExecutionStatus{tc.cert.Execution: tc.ended}
			}
			before := len(e.starter.started)
			resp := e.do(t, loadEvent(t, "api-post.json"))
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d (%s), want %d", resp.StatusCode, resp.Body, tc.status)
			}
			if tc.startedAs == "" && len(e.starter.started) != before {
				t.Errorf("started %v, want nothing", e.starter.started)
			}
			if _, ok := e.starter.started[tc.startedAs]; tc.startedAs != "" && !ok {
				t.Errorf("started %v, want %s", e.starter.started, tc.startedAs)
			}
			if tc.startedAs != "" && e.store.items[d].Execution != tc.startedAs {
				t.Errorf("owning execution = %q, want %q", e.store.items[d].Execution, tc.startedAs)
			}
		})
	}
}

func TestPostStartFailureIsInternal(t *testing.T) {
	e := newEnv(t)
	e.starter.err = errBoom
	resp := e.do(t, loadEvent(t, "api-post.json"))
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", resp.StatusCode)
	}
	if want := `{"error":{"code":"internal","message":"internal error"}}`; resp.Body != want {
		t.Errorf("body = %s, want %s", resp.Body, want)
	}
	if n := strings.Count(e.logs.String(), "\n"); n != 1 || !strings.Contains(e.logs.String(), "secret detail") {
		t.Errorf("logs = %q, want the cause logged once", e.logs.String())
	}

	// The retried request starts the next run: the first never existed.
	e.starter.err = nil
	resp = e.do(t, loadEvent(t, "api-post.json"))
	if resp.StatusCode != http.StatusAccepted || len(e.starter.started) != 1 {
		t.Errorf("retry: status = %d, started %d; want 202 and one execution", resp.StatusCode, len(e.starter.started))
	}
	if _, ok := e.starter.started[flow.IssueName("blog.customer.example", 1, 2)]; !ok {
		t.Errorf("retry started %v, want run 2", e.starter.started)
	}
}

func TestPostBase64IDN(t *testing.T) {
	e := newEnv(t)
	resp := e.do(t, loadEvent(t, "api-post-base64.json"))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status = %d (%s), want 202", resp.StatusCode, resp.Body)
	}
	if d := decodeDoc(t, resp.Body); d.Domain != "xn--bcher-kva.example" {
		t.Errorf("domain = %q, want xn--bcher-kva.example", d.Domain)
	}
}

func TestGetFixtures(t *testing.T) {
	failed := activeCert("xn--bcher-kva.example")
	failed.Status, failed.FailureCount, failed.LastErrorCode, failed.LastErrorMessage = certstore.StatusFailed, 2, "challenge_failed", "connection refused"
	e := newEnv(t, activeCert("blog.customer.example"), failed)
	e.store.readOnly = true

	resp := e.do(t, loadEvent(t, "api-get.json"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET status = %d (%s), want 200", resp.StatusCode, resp.Body)
	}
	want := `{"domain":"blog.customer.example","sans":["www.blog.customer.example"],"tenant":"arn:aws:iam::123456789012:role/platform-control","status":"active",` +
		`"notBefore":"2026-11-20T16:05:12Z","notAfter":"2027-02-18T16:05:12Z","serial":"03a1f5c2e4b6d8f0",` +
		`"issuer":"CN=Pebble Intermediate CA","renewAt":"2027-01-19T16:05:12Z","validation":"http-01",` +
		`"requestedAt":"2026-11-19T16:05:12Z","updatedAt":"2026-11-20T16:05:12Z"}`
	if resp.Body != want {
		t.Errorf("GET body =\n%s\nwant\n%s", resp.Body, want)
	}
	if strings.Contains(resp.Body, "BEGIN") || strings.Contains(resp.Body, "execution") {
		t.Errorf("GET body leaks the certificate or the execution: %s", resp.Body)
	}

	resp = e.do(t, loadEvent(t, "api-get-idn.json"))
	d := decodeDoc(t, resp.Body)
	if resp.StatusCode != http.StatusOK || d.Domain != "xn--bcher-kva.example" {
		t.Errorf("GET B%%C3%%BCcher.example = %d %s, want 200 for xn--bcher-kva.example", resp.StatusCode, resp.Body)
	}
	if d.LastError == nil || d.LastError.Code != "challenge_failed" || d.FailureCount != 2 {
		t.Errorf("GET failed document = %s, want lastError and failureCount", resp.Body)
	}

	resp = e.do(t, loadEvent(t, "api-get-not-found.json"))
	if code, _ := errorCode(t, resp.Body); resp.StatusCode != http.StatusNotFound || code != api.CodeNotFound {
		t.Errorf("GET unknown = %d %s, want 404 not_found", resp.StatusCode, code)
	}
}

func TestListFixture(t *testing.T) {
	e := newEnv(t, activeCert("a.customer.example"), activeCert("b.customer.example"), activeCert("c.customer.example"))
	e.store.items["d.customer.example"] = &certstore.Certificate{Domain: "d.customer.example", Tenant: tenantA, Status: certstore.StatusPending}
	e.store.readOnly = true

	resp := e.do(t, loadEvent(t, "api-list.json")) // status=active&limit=2
	var page struct {
		Certificates []statusDoc `json:"certificates"`
		NextCursor   string      `json:"nextCursor"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &page); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("list = %d %s (%v), want 200", resp.StatusCode, resp.Body, err)
	}
	if len(page.Certificates) != 2 || page.Certificates[0].Domain != "a.customer.example" || page.NextCursor == "" {
		t.Fatalf("first page = %s, want a and b with a cursor", resp.Body)
	}

	req := loadEvent(t, "api-list.json")
	req.RawQueryString = "status=active&limit=2&cursor=" + page.NextCursor
	resp = e.do(t, req)
	page.NextCursor = ""
	page.Certificates = nil
	if err := json.Unmarshal([]byte(resp.Body), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Certificates) != 1 || page.Certificates[0].Domain != "c.customer.example" || page.NextCursor != "" {
		t.Errorf("second page = %s, want only c and no cursor", resp.Body)
	}

	req.RawQueryString = "status=quarantined"
	if resp = e.do(t, req); resp.Body != `{"certificates":[]}` {
		t.Errorf("empty page = %s, want {\"certificates\":[]}", resp.Body)
	}

	resp = e.do(t, loadEvent(t, "api-list-invalid-status.json"))
	if code, _ := errorCode(t, resp.Body); resp.StatusCode != http.StatusBadRequest || code != api.CodeInvalidStatus {
		t.Errorf("list status=expired = %d %s, want 400 invalid_status", resp.StatusCode, code)
	}
}

func TestDeleteFixture(t *testing.T) {
	renewing := activeCert("blog.customer.example")
	renewing.Run, renewing.Execution = 1, flow.RenewName("blog.customer.example", renewing.Serial, 1)
	owner, serial := renewing.Execution, renewing.Serial
	e := newEnv(t, renewing)
	resp := e.do(t, loadEvent(t, "api-delete.json")) // revoke=true
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE status = %d (%s), want 200", resp.StatusCode, resp.Body)
	}
	d := decodeDoc(t, resp.Body)
	if d.Status != "retired" || d.Serial != "03a1f5c2e4b6d8f0" || d.UpdatedAt != "2026-11-21T16:05:12Z" {
		t.Errorf("DELETE document = %s, want the retired item", resp.Body)
	}
	if want := "arn:aws:states:us-east-1:123456789012:execution:certflow-issuance:" + owner; len(e.stopper.stopped) != 1 || e.stopper.stopped[0] != want {
		t.Errorf("stopped %v, want [%s], the owning execution", e.stopper.stopped, want)
	}
	if len(e.publisher.events) != 1 || e.publisher.events[0].Type != notify.TypeRetired || e.publisher.events[0].Serial != serial {
		t.Errorf("published %+v, want Domain Retired", e.publisher.events)
	}
	if len(e.revoker.revoked) != 1 || e.revoker.revoked[0] != activeCert("x").CertPEM {
		t.Errorf("revoked %v, want the certificate", e.revoker.revoked)
	}

	resp404 := loadEvent(t, "api-delete.json")
	resp404.PathParameters["domain"] = "unknown.customer.example"
	if resp = e.do(t, resp404); resp.StatusCode != http.StatusNotFound {
		t.Errorf("DELETE unknown = %d, want 404", resp.StatusCode)
	}
}

func TestDeleteOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		query     string
		noRevoker bool
		stopErr   error
		revokeErr error
		status    int
		code      string
		retired   bool
	}{
		{"no revoke", "", false, nil, nil, http.StatusOK, "", true},
		{"revoke=false", "revoke=false", false, nil, nil, http.StatusOK, "", true},
		{"execution already gone", "revoke=false", false, &sfntypes.ExecutionDoesNotExist{Message: new(string)}, nil, http.StatusOK, "", true},
		{"stop fails: best effort", "", false, errBoom, nil, http.StatusOK, "", true},
		{"revoke fails", "revoke=true", false, nil, errBoom, http.StatusBadGateway, api.CodeRevokeFailed, true},
		{"revoke without revoker", "revoke=true", true, nil, nil, http.StatusNotImplemented, api.CodeRevokeUnavailable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			renewing := activeCert("blog.customer.example")
			renewing.Run, renewing.Execution = 1, flow.RenewName("blog.customer.example", renewing.Serial, 1)
			e := newEnv(t, renewing)
			e.stopper.err, e.revoker.err = tc.stopErr, tc.revokeErr
			h := e.h
			if tc.noRevoker {
				var err error
				cfg := e.config()
				cfg.Revoker = nil
				h, err = api.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
			}
			req := loadEvent(t, "api-delete.json")
			req.RawQueryString = tc.query
			req.QueryStringParameters = nil
			resp, _ := h.Handle(e.ctx(), req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d (%s), want %d", resp.StatusCode, resp.Body, tc.status)
			}
			if tc.code != "" {
				if code, _ := errorCode(t, resp.Body); code != tc.code {
					t.Errorf("code = %q, want %q", code, tc.code)
				}
			}
			if got := e.store.items["blog.customer.example"].Status == certstore.StatusRetired; got != tc.retired {
				t.Errorf("retired = %v, want %v", got, tc.retired)
			}
			if strings.Contains(resp.Body, "secret detail") {
				t.Errorf("body leaks the internal error: %s", resp.Body)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t, activeCert("blog.customer.example"))
	e.store.readOnly = true
	for _, tc := range []struct {
		name, method, path, routeKey string
		status                       int
		allow                        string
	}{
		{"fixture: PUT on a catch-all route", "", "", "", http.StatusMethodNotAllowed, "DELETE, GET"},
		{"plain GET by path", http.MethodGet, "/certificates/blog.customer.example", "", http.StatusOK, ""},
		{"plain GET under a named stage", http.MethodGet, "/prod/certificates/BLOG.customer.example.", "", http.StatusOK, ""},
		{"plain list", http.MethodGet, "/certificates", "$default", http.StatusBadRequest, ""},
		{"PATCH collection", http.MethodPatch, "/certificates", "", http.StatusMethodNotAllowed, "GET, POST"},
		{"unknown path", http.MethodGet, "/certificatesx", "", http.StatusNotFound, ""},
		{"nested path", http.MethodGet, "/certificates/a/b", "", http.StatusNotFound, ""},
		{"trailing slash", http.MethodGet, "/certificates/", "", http.StatusNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := loadEvent(t, "api-method-not-allowed.json")
			if tc.method != "" {
				req = as(events.APIGatewayV2HTTPRequest{RouteKey: tc.routeKey, RawPath: tc.path}, tenantA)
				req.RequestContext.HTTP.Method = tc.method
				req.RequestContext.Stage = "$default"
				if strings.HasPrefix(tc.path, "/prod/") {
					req.RequestContext.Stage = "prod"
				}
			}
			resp := e.do(t, req)
			if resp.StatusCode != tc.status {
				t.Errorf("%s %s = %d (%s), want %d", tc.method, tc.path, resp.StatusCode, resp.Body, tc.status)
			}
			if resp.Headers["allow"] != tc.allow {
				t.Errorf("allow = %q, want %q", resp.Headers["allow"], tc.allow)
			}
		})
	}
}

func TestNewReportsMissingDependencies(t *testing.T) {
	_, err := api.New(api.Config{})
	if err == nil || !strings.Contains(err.Error(), "Requester") || !strings.Contains(err.Error(), "Stopper") {
		t.Errorf("New(empty) error = %v, want the missing dependencies named", err)
	}
}

func TestErrorFixtures(t *testing.T) {
	for _, tc := range []struct {
		fixture, code, reason string
		status                int
	}{
		{"api-post-invalid-domain.json", api.CodeInvalidDomain, "ip_literal", http.StatusBadRequest},
		{"api-post-unknown-field.json", api.CodeUnknownField, "", http.StatusBadRequest},
		{"api-post-malformed.json", api.CodeInvalidJSON, "", http.StatusBadRequest},
		{"api-post-wrong-type.json", api.CodeInvalidType, "", http.StatusBadRequest},
		{"api-post-unsupported-media-type.json", api.CodeUnsupportedMediaType, "", http.StatusUnsupportedMediaType},
		{"api-get-not-found.json", api.CodeNotFound, "", http.StatusNotFound},
		{"api-list-invalid-status.json", api.CodeInvalidStatus, "", http.StatusBadRequest},
		{"api-delete-invalid-revoke.json", api.CodeInvalidRevoke, "", http.StatusBadRequest},
		{"api-method-not-allowed.json", api.CodeMethodNotAllowed, "", http.StatusMethodNotAllowed},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			e := newEnv(t, activeCert("blog.customer.example"))
			e.store.readOnly, e.starter.readOnly, e.stopper.readOnly, e.revoker.readOnly = true, true, true, true
			resp := e.do(t, loadEvent(t, tc.fixture))
			code, reason := errorCode(t, resp.Body)
			if resp.StatusCode != tc.status || code != tc.code || reason != tc.reason {
				t.Errorf("%s = %d %s/%s, want %d %s/%s", tc.fixture, resp.StatusCode, code, reason, tc.status, tc.code, tc.reason)
			}
		})
	}
}

// TestTenantsAndRequestOptions: an operator acts for the tenant it names;
// the proof's records come back to publish; a domain the CA paused is
// requested again once said unpaused; within the cooldown the answer says
// when to come back.
func TestTenantsAndRequestOptions(t *testing.T) {
	paused := activeCert("paused.customer.example")
	paused.Status, paused.QuarantineReason = certstore.StatusQuarantined, "account_paused"
	cooling := activeCert("cooling.customer.example")
	cooling.Status, cooling.UpdatedAt = certstore.StatusQuarantined, now.Add(-time.Minute)
	e := newEnv(t, paused, cooling)
	e.store.cooldown = 20 * time.Minute
	post := func(who, body string) events.APIGatewayV2HTTPResponse {
		req := as(loadEvent(t, "api-post.json"), who)
		req.Body = body
		return e.do(t, req)
	}

	resp := post(sessionOfOps, `{"domain": "ops.customer.example", "tenant": "platform-7"}`)
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(resp.Body, `"tenant":"platform-7"`) {
		t.Errorf("operator POST for platform-7 = %d %s, want 202 held by platform-7", resp.StatusCode, resp.Body)
	}
	get := as(loadEvent(t, "api-get.json"), sessionOfOps)
	get.PathParameters["domain"], get.RawQueryString = "ops.customer.example", "tenant=platform-7"
	if resp := e.do(t, get); resp.StatusCode != http.StatusOK {
		t.Errorf("operator GET for platform-7 = %d %s, want 200", resp.StatusCode, resp.Body)
	}
	get.RawQueryString = ""
	if resp := e.do(t, get); resp.StatusCode != http.StatusNotFound {
		t.Errorf("operator GET for itself = %d, want 404: the domain is platform-7's", resp.StatusCode)
	}

	resp = post(sessionB, `{"domain": "proof.other.example", "sans": ["*.proof.other.example"], "validation": "dns-01", "proveOwnership": true}`)
	var doc struct {
		Tenant    string `json:"tenant"`
		Ownership struct {
			Records []struct{ Name, Type, Value string } `json:"records"`
		} `json:"ownership"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &doc); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST with the proof = %d %s", resp.StatusCode, resp.Body)
	}
	if doc.Tenant != tenantB || len(doc.Ownership.Records) != 1 || doc.Ownership.Records[0].Name != "_certflow-challenge.proof.other.example" ||
		doc.Ownership.Records[0].Type != "TXT" || doc.Ownership.Records[0].Value == "" {
		t.Errorf("POST with the proof = %s, want tenant B and one TXT record for both names", resp.Body)
	}

	if resp := post(fixtureCaller, `{"domain": "paused.customer.example", "unpaused": true}`); resp.StatusCode != http.StatusAccepted {
		t.Errorf("POST paused, unpaused = %d %s, want 202", resp.StatusCode, resp.Body)
	}
	resp = post(fixtureCaller, `{"domain": "cooling.customer.example"}`)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Headers["retry-after"] != "1140" {
		t.Errorf("POST within the cooldown = %d, Retry-After %q, want 429 after 1140 s", resp.StatusCode, resp.Headers["retry-after"])
	}
}
