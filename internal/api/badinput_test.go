package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/certflow/certflow/internal/api"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/domain"
)

// badInput is a request that must be refused with status and code (and,
// for invalid_domain, reason) without changing anything.
type badInput struct {
	name   string
	req    events.APIGatewayV2HTTPRequest
	status int
	code   string
	reason string
}

// badInputs is the corpus: every name of internal/domain's bad_names.json
// as the domain, as a SAN and in the GET and DELETE paths, then JSON, media
// type, size, query and routing problems, then tenancy (tenantInputs).
// cursorOfA is a list cursor issued to tenant A for active domains.
func badInputs(t testing.TB, cursorOfA string) []badInput {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "domain", "testdata", "bad_names.json"))
	if err != nil {
		t.Fatalf("read bad names: %v", err)
	}
	var names []struct{ Name, Code string }
	if err := json.Unmarshal(b, &names); err != nil {
		t.Fatalf("decode bad names: %v", err)
	}
	r := requests{t}
	post := func(body string) events.APIGatewayV2HTTPRequest { return r.post(fixtureCaller, body) }
	withHeader := func(req events.APIGatewayV2HTTPRequest, k, v string) events.APIGatewayV2HTTPRequest {
		h := map[string]string{}
		for hk, hv := range req.Headers {
			if !strings.EqualFold(hk, k) {
				h[hk] = hv
			}
		}
		h[k] = v
		req.Headers = h
		return req
	}
	pathReq := func(fixture, param, query string) events.APIGatewayV2HTTPRequest {
		return r.path(fixtureCaller, fixture, param, query)
	}
	list := func(query string) events.APIGatewayV2HTTPRequest { return r.list(fixtureCaller, query) }
	jsonString := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	bad := func(name string, req events.APIGatewayV2HTTPRequest, code string) badInput {
		return badInput{name: name, req: req, status: http.StatusBadRequest, code: code}
	}

	var out []badInput
	for _, n := range names {
		d := badInput{status: http.StatusBadRequest, code: api.CodeInvalidDomain, reason: n.Code}
		short := fmt.Sprintf("%.40q", n.Name)
		d.name, d.req = "domain "+short, post(`{"domain": `+jsonString(n.Name)+`}`)
		out = append(out, d)
		d.name, d.req = "san "+short, post(`{"domain": "blog.customer.example", "sans": ["www.blog.customer.example", `+jsonString(n.Name)+`]}`)
		out = append(out, d)
		if n.Name == "" { // an empty segment is not a route
			continue
		}
		d.name, d.req = "GET "+short, pathReq("api-get.json", url.PathEscape(n.Name), "")
		out = append(out, d)
		d.name, d.req = "DELETE "+short, pathReq("api-delete.json", url.PathEscape(n.Name), "revoke=true")
		out = append(out, d)
	}

	tooManySANs := make([]string, 100)
	for i := range tooManySANs {
		tooManySANs[i] = fmt.Sprintf("%q", fmt.Sprintf("n%d.customer.example", i))
	}
	deep := strings.Repeat("[", 3000) + strings.Repeat("]", 3000)
	padded := `{"domain": "blog.customer.example"` + strings.Repeat(" ", api.MaxBodyBytes) + `}`

	out = append(out,
		bad("empty body", post(""), api.CodeInvalidJSON),
		bad("blank body", post(" \r\n\t "), api.CodeInvalidJSON),
		bad("lone brace", post("{"), api.CodeInvalidJSON),
		bad("unterminated object", post(`{"domain": "blog.customer.example"`), api.CodeInvalidJSON),
		bad("unterminated string", post(`{"domain": "blog.customer.example}`), api.CodeInvalidJSON),
		bad("missing comma", post(`{"domain": "blog.customer.example" "sans": []}`), api.CodeInvalidJSON),
		bad("double comma", post(`{"domain": "blog.customer.example",, "sans": []}`), api.CodeInvalidJSON),
		bad("missing colon", post(`{"domain" "blog.customer.example"}`), api.CodeInvalidJSON),
		bad("number key", post(`{1: "blog.customer.example"}`), api.CodeInvalidJSON),
		bad("trailing comma", post(`{"domain": "blog.customer.example",}`), api.CodeInvalidJSON),
		bad("single quotes", post(`{'domain': 'blog.customer.example'}`), api.CodeInvalidJSON),
		bad("bare word", post(`{domain: "blog.customer.example"}`), api.CodeInvalidJSON),
		bad("extra closing brace", post(`{"domain": "blog.customer.example"}}`), api.CodeInvalidJSON),
		bad("two objects", post(`{"domain": "blog.customer.example"} {"domain": "shop.customer.example"}`), api.CodeInvalidJSON),
		bad("trailing garbage", post(`{"domain": "blog.customer.example"} x`), api.CodeInvalidJSON),
		bad("trailing number", post(`{"domain": "blog.customer.example"}0`), api.CodeInvalidJSON),
		bad("array body", post(`[{"domain": "blog.customer.example"}]`), api.CodeInvalidJSON),
		bad("string body", post(`"blog.customer.example"`), api.CodeInvalidJSON),
		bad("null body", post(`null`), api.CodeInvalidJSON),
		bad("number body", post(`42`), api.CodeInvalidJSON),
		bad("raw control character", post("{\"domain\": \"blog.cust\x01omer.example\"}"), api.CodeInvalidJSON),
		bad("raw newline in string", post("{\"domain\": \"blog.customer\n.example\"}"), api.CodeInvalidJSON),
		bad("invalid UTF-8", post("{\"domain\": \"blog.\xffcustomer.example\"}"), api.CodeInvalidJSON),
		bad("UTF-16 body", post("\xff\xfe{\x00\"\x00d\x00\"\x00}\x00"), api.CodeInvalidJSON),
		bad("NaN", post(`{"domain": NaN}`), api.CodeInvalidJSON),
		bad("comment", post(`{"domain": "blog.customer.example" /* hi */}`), api.CodeInvalidJSON),
		bad("domain number", post(`{"domain": 42}`), api.CodeInvalidType),
		bad("domain array", post(`{"domain": ["blog.customer.example"]}`), api.CodeInvalidType),
		bad("domain object", post(`{"domain": {"name": "blog.customer.example"}}`), api.CodeInvalidType),
		bad("domain null", post(`{"domain": null}`), api.CodeInvalidType),
		bad("domain bool", post(`{"domain": true}`), api.CodeInvalidType),
		bad("domain deeply nested", post(`{"domain": `+deep+`}`), api.CodeInvalidType),
		bad("sans string", post(`{"domain": "blog.customer.example", "sans": "www.blog.customer.example"}`), api.CodeInvalidType),
		bad("sans numbers", post(`{"domain": "blog.customer.example", "sans": [1, 2]}`), api.CodeInvalidType),
		bad("sans null element", post(`{"domain": "blog.customer.example", "sans": ["www.blog.customer.example", null]}`), api.CodeInvalidType),
		bad("sans null", post(`{"domain": "blog.customer.example", "sans": null}`), api.CodeInvalidType),
		bad("sans nested array", post(`{"domain": "blog.customer.example", "sans": [["www.blog.customer.example"]]}`), api.CodeInvalidType),
		bad("sans object", post(`{"domain": "blog.customer.example", "sans": {"0": "www.blog.customer.example"}}`), api.CodeInvalidType),
		bad("unknown field", post(`{"domain": "blog.customer.example", "keyType": "rsa2048"}`), api.CodeUnknownField),
		bad("misspelled field", post(`{"domain": "blog.customer.example", "san": ["www.blog.customer.example"]}`), api.CodeUnknownField),
		bad("field case", post(`{"Domain": "blog.customer.example"}`), api.CodeUnknownField),
		bad("field before domain", post(`{"status": "active", "domain": "blog.customer.example"}`), api.CodeUnknownField),
		bad("duplicate domain", post(`{"domain": "blog.customer.example", "domain": "shop.customer.example"}`), api.CodeDuplicateField),
		bad("duplicate sans", post(`{"domain": "blog.customer.example", "sans": [], "sans": ["x.customer.example"]}`), api.CodeDuplicateField),
		bad("missing domain", post(`{"sans": ["www.blog.customer.example"]}`), api.CodeMissingField),
		bad("empty object", post(`{}`), api.CodeMissingField),
		badInput{name: "escaped NUL in domain", req: post(`{"domain": "blog.customer.example\u0000"}`), status: http.StatusBadRequest, code: api.CodeInvalidDomain, reason: "invalid_character"},
		badInput{name: "escaped bidi override", req: post(`{"domain": "blog\u202e.customer.example"}`), status: http.StatusBadRequest, code: api.CodeInvalidDomain, reason: "invisible_character"},
		badInput{name: "too many SANs", req: post(`{"domain": "blog.customer.example", "sans": [` + strings.Join(tooManySANs, ",") + `]}`), status: http.StatusBadRequest, code: api.CodeInvalidDomain, reason: "too_many_names"},
		badInput{name: "oversized body", req: post(padded), status: http.StatusRequestEntityTooLarge, code: api.CodeBodyTooLarge},
		badInput{name: "oversized base64 body", req: func() events.APIGatewayV2HTTPRequest {
			r := post(base64.StdEncoding.EncodeToString([]byte(padded)))
			r.IsBase64Encoded = true
			return r
		}(), status: http.StatusRequestEntityTooLarge, code: api.CodeBodyTooLarge},
		bad("invalid base64", func() events.APIGatewayV2HTTPRequest {
			r := post(`{"domain": "blog.customer.example"}`)
			r.IsBase64Encoded = true
			return r
		}(), api.CodeInvalidJSON),
		bad("base64 of junk", func() events.APIGatewayV2HTTPRequest {
			r := post(base64.StdEncoding.EncodeToString([]byte(`{"domain": 7}`)))
			r.IsBase64Encoded = true
			return r
		}(), api.CodeInvalidType),
		badInput{name: "form content type", req: withHeader(post(`{"domain": "blog.customer.example"}`), "content-type", "application/x-www-form-urlencoded"), status: http.StatusUnsupportedMediaType, code: api.CodeUnsupportedMediaType},
		badInput{name: "text content type", req: withHeader(post(`{"domain": "blog.customer.example"}`), "content-type", "text/plain"), status: http.StatusUnsupportedMediaType, code: api.CodeUnsupportedMediaType},
		badInput{name: "latin1 charset", req: withHeader(post(`{"domain": "blog.customer.example"}`), "content-type", "application/json; charset=iso-8859-1"), status: http.StatusUnsupportedMediaType, code: api.CodeUnsupportedMediaType},
		badInput{name: "malformed content type", req: withHeader(post(`{"domain": "blog.customer.example"}`), "Content-Type", "application/json;;"), status: http.StatusUnsupportedMediaType, code: api.CodeUnsupportedMediaType},
		bad("POST with query", func() events.APIGatewayV2HTTPRequest {
			r := post(`{"domain": "blog.customer.example"}`)
			r.RawQueryString = "dryRun=true"
			return r
		}(), api.CodeInvalidQuery),
		bad("list without status", list(""), api.CodeInvalidStatus),
		bad("list empty status", list("status="), api.CodeInvalidStatus),
		bad("list unknown status", list("status=expired"), api.CodeInvalidStatus),
		bad("list status case", list("status=Active"), api.CodeInvalidStatus),
		bad("list limit 0", list("status=active&limit=0"), api.CodeInvalidLimit),
		bad("list limit 101", list("status=active&limit=101"), api.CodeInvalidLimit),
		bad("list limit -1", list("status=active&limit=-1"), api.CodeInvalidLimit),
		bad("list limit word", list("status=active&limit=ten"), api.CodeInvalidLimit),
		bad("list limit float", list("status=active&limit=2.5"), api.CodeInvalidLimit),
		bad("list limit empty", list("status=active&limit="), api.CodeInvalidLimit),
		bad("list cursor garbage", list("status=active&cursor=not-a-cursor"), api.CodeInvalidCursor),
		bad("list cursor empty", list("status=active&cursor="), api.CodeInvalidCursor),
		bad("list cursor huge", list("status=active&cursor="+strings.Repeat("A", 4096)), api.CodeInvalidCursor),
		bad("list repeated status", list("status=active&status=failed"), api.CodeInvalidQuery),
		bad("list unknown parameter", list("status=active&sort=desc"), api.CodeInvalidQuery),
		bad("list malformed query", list("status=active&limit=%zz"), api.CodeInvalidQuery),
		bad("GET with query", pathReq("api-get.json", "blog.customer.example", "verbose=1"), api.CodeInvalidQuery),
		badInput{name: "GET bad percent-encoding", req: pathReq("api-get.json", "blog%zz.customer.example", ""), status: http.StatusBadRequest, code: api.CodeInvalidDomain, reason: "invalid_character"},
		bad("DELETE revoke yes", pathReq("api-delete.json", "blog.customer.example", "revoke=yes"), api.CodeInvalidRevoke),
		bad("DELETE revoke TRUE", pathReq("api-delete.json", "blog.customer.example", "revoke=TRUE"), api.CodeInvalidRevoke),
		bad("DELETE revoke 1", pathReq("api-delete.json", "blog.customer.example", "revoke=1"), api.CodeInvalidRevoke),
		bad("DELETE revoke empty", pathReq("api-delete.json", "blog.customer.example", "revoke="), api.CodeInvalidRevoke),
		bad("DELETE revoke twice", pathReq("api-delete.json", "blog.customer.example", "revoke=true&revoke=false"), api.CodeInvalidQuery),
		bad("DELETE unknown parameter", pathReq("api-delete.json", "blog.customer.example", "force=true"), api.CodeInvalidQuery),
		badInput{name: "PUT", req: loadEvent(t, "api-method-not-allowed.json"), status: http.StatusMethodNotAllowed, code: api.CodeMethodNotAllowed},
		badInput{name: "unknown route", req: func() events.APIGatewayV2HTTPRequest {
			r := loadEvent(t, "api-method-not-allowed.json")
			r.RequestContext.HTTP.Method, r.RawPath = http.MethodPost, "/certificates/blog.customer.example/renew"
			return r
		}(), status: http.StatusNotFound, code: api.CodeNotFound},
		bad("tenant number", post(`{"domain": "blog.customer.example", "tenant": 7}`), api.CodeInvalidType),
		bad("tenant null", post(`{"domain": "blog.customer.example", "tenant": null}`), api.CodeInvalidType),
		bad("proveOwnership string", post(`{"domain": "new.customer.example", "proveOwnership": "yes"}`), api.CodeInvalidType),
		bad("proveOwnership number", post(`{"domain": "new.customer.example", "proveOwnership": 1}`), api.CodeInvalidType),
		bad("unpaused null", post(`{"domain": "new.customer.example", "unpaused": null}`), api.CodeInvalidType),
		bad("duplicate proveOwnership", post(`{"domain": "new.customer.example", "proveOwnership": true, "proveOwnership": false}`), api.CodeDuplicateField),
		bad("duplicate tenant", post(`{"domain": "new.customer.example", "tenant": "a", "tenant": "b"}`), api.CodeDuplicateField),
	)
	return append(out, tenantInputs(t, cursorOfA)...)
}

// tenantInputs are the requests of one tenant against another's domains
// and names, and the refusals of tenancy, ownership and cooldown. The
// corpus's table holds tenant A's (the fixtures' caller's) active
// blog.customer.example (SAN www.blog.customer.example) and
// shop.customer.example, its paused.customer.example quarantined because
// the CA paused it, and its cooling.customer.example quarantined a moment
// ago, within the request cooldown.
func tenantInputs(t testing.TB, cursorOfA string) []badInput {
	r := requests{t}
	post, path, list := r.post, r.path, r.list
	in := func(name string, req events.APIGatewayV2HTTPRequest, status int, code string) badInput {
		return badInput{name: name, req: req, status: status, code: code}
	}
	long := strings.Repeat("t", 257)
	return []badInput{
		in("another tenant reads", path(sessionB, "api-get.json", "blog.customer.example", ""), http.StatusNotFound, api.CodeNotFound),
		in("another tenant reads a SAN's domain by its SAN", path(sessionB, "api-get.json", "www.blog.customer.example", ""), http.StatusNotFound, api.CodeNotFound),
		in("another tenant retires", path(sessionB, "api-delete.json", "blog.customer.example", ""), http.StatusNotFound, api.CodeNotFound),
		in("another tenant retires and revokes", path(sessionB, "api-delete.json", "blog.customer.example", "revoke=true"), http.StatusNotFound, api.CodeNotFound),
		in("another tenant pages with the holder's cursor", list(sessionB, "status=active&cursor="+url.QueryEscape(cursorOfA)), http.StatusBadRequest, api.CodeInvalidCursor),
		in("another tenant lists naming the holder", list(sessionB, "status=active&tenant="+url.QueryEscape(tenantA)), http.StatusForbidden, api.CodeTenantNotAllowed),
		in("another tenant reads naming the holder", path(sessionB, "api-get.json", "blog.customer.example", "tenant="+url.QueryEscape(tenantA)), http.StatusForbidden, api.CodeTenantNotAllowed),
		in("another tenant retires naming the holder", path(sessionB, "api-delete.json", "blog.customer.example", "tenant="+url.QueryEscape(tenantA)), http.StatusForbidden, api.CodeTenantNotAllowed),
		in("another tenant requests the domain", post(sessionB, `{"domain": "blog.customer.example"}`), http.StatusConflict, api.CodeDomainTaken),
		in("another tenant requests a quarantined domain", post(sessionB, `{"domain": "cooling.customer.example"}`), http.StatusConflict, api.CodeDomainTaken),
		in("another tenant requests the domain naming the holder", post(sessionB, `{"domain": "blog.customer.example", "tenant": "`+tenantA+`"}`), http.StatusForbidden, api.CodeTenantNotAllowed),
		in("SAN squatting a SAN", post(sessionB, `{"domain": "b.other.example", "sans": ["www.blog.customer.example"]}`), http.StatusConflict, api.CodeSANConflict),
		in("SAN squatting a domain", post(sessionB, `{"domain": "b.other.example", "sans": ["shop.customer.example"]}`), http.StatusConflict, api.CodeSANConflict),
		in("another's SAN as the domain", post(sessionB, `{"domain": "www.blog.customer.example"}`), http.StatusConflict, api.CodeSANConflict),
		in("wildcard over another's name", post(sessionB, `{"domain": "*.customer.example", "validation": "dns-01"}`), http.StatusConflict, api.CodeWildcardConflict),
		in("wildcard SAN over another's name", post(sessionB, `{"domain": "b.other.example", "sans": ["*.customer.example"], "validation": "dns-01"}`), http.StatusConflict, api.CodeWildcardConflict),
		in("wildcard over another's SAN", post(sessionB, `{"domain": "*.blog.customer.example", "validation": "dns-01"}`), http.StatusConflict, api.CodeWildcardConflict),
		in("operator reads for a tenant that does not hold it", path(sessionOfOps, "api-get.json", "blog.customer.example", "tenant="+url.QueryEscape(tenantB)), http.StatusNotFound, api.CodeNotFound),
		in("operator retires for a tenant that does not hold it", path(sessionOfOps, "api-delete.json", "blog.customer.example", "tenant="+url.QueryEscape(tenantB)), http.StatusNotFound, api.CodeNotFound),
		in("operator requests for another tenant", post(sessionOfOps, `{"domain": "blog.customer.example", "tenant": "`+tenantB+`"}`), http.StatusConflict, api.CodeDomainTaken),
		in("operator names an empty tenant", post(sessionOfOps, `{"domain": "new.customer.example", "tenant": ""}`), http.StatusBadRequest, api.CodeInvalidTenant),
		in("operator names a tenant with a space", post(sessionOfOps, `{"domain": "new.customer.example", "tenant": "a b"}`), http.StatusBadRequest, api.CodeInvalidTenant),
		in("operator names a tenant with a comma", list(sessionOfOps, "status=active&tenant=a,b"), http.StatusBadRequest, api.CodeInvalidTenant),
		in("operator names a tenant too long", list(sessionOfOps, "status=active&tenant="+long), http.StatusBadRequest, api.CodeInvalidTenant),
		in("operator names an empty tenant in the query", list(sessionOfOps, "status=active&tenant="), http.StatusBadRequest, api.CodeInvalidTenant),
		in("a tenant names itself without being an operator", post(sessionB, `{"domain": "new.customer.example", "tenant": "`+tenantB+`"}`), http.StatusForbidden, api.CodeTenantNotAllowed),
		in("no IAM identity: request", post("", `{"domain": "new.customer.example"}`), http.StatusForbidden, api.CodeForbidden),
		in("no IAM identity: read", path("", "api-get.json", "blog.customer.example", ""), http.StatusForbidden, api.CodeForbidden),
		in("no IAM identity: list", list("", "status=active"), http.StatusForbidden, api.CodeForbidden),
		in("no IAM identity: retire", path("", "api-delete.json", "blog.customer.example", ""), http.StatusForbidden, api.CodeForbidden),
		in("malformed IAM identity", post("platform-control", `{"domain": "new.customer.example"}`), http.StatusForbidden, api.CodeForbidden),
		in("paused by the CA, not said unpaused", post(tenantA, `{"domain": "paused.customer.example"}`), http.StatusConflict, api.CodeAccountPaused),
		in("paused by the CA, unpaused false", post(tenantA, `{"domain": "paused.customer.example", "unpaused": false}`), http.StatusConflict, api.CodeAccountPaused),
		in("requested again within the cooldown", post(tenantA, `{"domain": "cooling.customer.example"}`), http.StatusTooManyRequests, api.CodeRequestCooldown),
		in("requested again within the cooldown, with the proof", post(tenantA, `{"domain": "cooling.customer.example", "proveOwnership": true}`), http.StatusTooManyRequests, api.CodeRequestCooldown),
	}
}

// fixtureCaller signs the fixtures: a session of tenant A's role.
const fixtureCaller = "arn:aws:sts::123456789012:assumed-role/platform-control/platform-control"

// requests builds the corpus's requests from the fixtures, signed by who
// ("" for no IAM identity).
type requests struct{ t testing.TB }

func (r requests) post(who, body string) events.APIGatewayV2HTTPRequest {
	req := as(loadEvent(r.t, "api-post.json"), who)
	req.Body = body
	return req
}

func (r requests) path(who, fixture, param, query string) events.APIGatewayV2HTTPRequest {
	req := as(loadEvent(r.t, fixture), who)
	req.PathParameters = map[string]string{"domain": param}
	req.RawPath = "/certificates/" + param
	req.RequestContext.HTTP.Path = req.RawPath
	req.RawQueryString = query
	req.QueryStringParameters = nil
	return req
}

func (r requests) list(who, query string) events.APIGatewayV2HTTPRequest {
	req := as(loadEvent(r.t, "api-list.json"), who)
	req.RawQueryString = query
	req.QueryStringParameters = nil
	return req
}

// checkBadInputs runs the corpus through h and checks every answer.
func checkBadInputs(t *testing.T, h *api.Handler, corpus []badInput) {
	t.Helper()
	for _, tc := range corpus {
		resp, err := h.Handle(context.Background(), tc.req)
		if err != nil {
			t.Errorf("%s: Handle error %v", tc.name, err)
			continue
		}
		code, reason := errorCode(t, resp.Body)
		if resp.StatusCode != tc.status || code != tc.code || reason != tc.reason {
			t.Errorf("%s: answer %d %s/%s, want %d %s/%s (%.200s)", tc.name, resp.StatusCode, code, reason, tc.status, tc.code, tc.reason, resp.Body)
		}
		if ra := resp.Headers["retry-after"]; tc.status == http.StatusTooManyRequests && (ra == "" || ra == "0") {
			t.Errorf("%s: Retry-After %q, want the seconds left", tc.name, ra)
		}
	}
}

func TestBadInputCorpus(t *testing.T) {
	paused := activeCert("paused.customer.example")
	paused.Status, paused.QuarantineReason, paused.UnpauseURL = certstore.StatusQuarantined, "account_paused", "https://ca.example/unpause"
	cooling := activeCert("cooling.customer.example")
	cooling.Status, cooling.QuarantineReason, cooling.UpdatedAt = certstore.StatusQuarantined, "domain_not_pointed", now.Add(-time.Minute)
	e := newEnv(t, activeCert("blog.customer.example"), activeCert("shop.customer.example"), paused, cooling)
	e.store.cooldown = 20 * time.Minute
	e.store.readOnly, e.starter.readOnly, e.stopper.readOnly, e.revoker.readOnly = true, true, true, true
	corpus := badInputs(t, "after:blog.customer.example")
	if len(corpus) < 50 {
		t.Fatalf("corpus holds %d bad inputs, want at least 50", len(corpus))
	}
	before := snapshot(e.store)
	checkBadInputs(t, e.h, corpus)
	// A deployment that refuses testing TLDs refuses them with a reason.
	strict := e.config()
	strict.Names = domain.Policy{}
	h, err := api.New(strict)
	if err != nil {
		t.Fatal(err)
	}
	testTLD := loadEvent(t, "api-post.json")
	testTLD.Body = `{"domain": "shop.customer.test"}`
	checkBadInputs(t, h, []badInput{{name: "testing TLD", req: testTLD, status: http.StatusBadRequest, code: api.CodeInvalidDomain, reason: "reserved"}})
	if after := snapshot(e.store); after != before {
		t.Errorf("the table changed:\nbefore %s\nafter  %s", before, after)
	}
	if len(e.store.writes) != 0 {
		t.Errorf("writes %v, want none", e.store.writes)
	}
	t.Logf("%d bad inputs refused", len(corpus)+1)
}

func snapshot(s *fakeStore) string {
	b, _ := json.Marshal(s.items)
	return string(b)
}
