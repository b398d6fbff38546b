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

	"github.com/aws/aws-lambda-go/events"

	"github.com/certflow/certflow/internal/api"
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
// type, size, query and routing problems.
func badInputs(t testing.TB) []badInput {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "domain", "testdata", "bad_names.json"))
	if err != nil {
		t.Fatalf("read bad names: %v", err)
	}
	var names []struct{ Name, Code string }
	if err := json.Unmarshal(b, &names); err != nil {
		t.Fatalf("decode bad names: %v", err)
	}
	post := func(body string) events.APIGatewayV2HTTPRequest {
		req := loadEvent(t, "api-post.json")
		req.Body = body
		return req
	}
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
		req := loadEvent(t, fixture)
		req.PathParameters = map[string]string{"domain": param}
		req.RawPath = "/certificates/" + param
		req.RequestContext.HTTP.Path = req.RawPath
		req.RawQueryString = query
		req.QueryStringParameters = nil
		return req
	}
	list := func(query string) events.APIGatewayV2HTTPRequest {
		req := loadEvent(t, "api-list.json")
		req.RawQueryString = query
		req.QueryStringParameters = nil
		return req
	}
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
	)
	return out
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
	}
}

func TestBadInputCorpus(t *testing.T) {
	e := newEnv(t, activeCert("blog.customer.example"), activeCert("shop.customer.example"))
	e.store.readOnly, e.starter.readOnly, e.stopper.readOnly, e.revoker.readOnly = true, true, true, true
	corpus := badInputs(t)
	if len(corpus) < 50 {
		t.Fatalf("corpus holds %d bad inputs, want at least 50", len(corpus))
	}
	before := snapshot(e.store)
	checkBadInputs(t, e.h, corpus)
	if after := snapshot(e.store); after != before {
		t.Errorf("the table changed:\nbefore %s\nafter  %s", before, after)
	}
	if len(e.store.writes) != 0 {
		t.Errorf("writes %v, want none", e.store.writes)
	}
	t.Logf("%d bad inputs refused", len(corpus))
}

func snapshot(s *fakeStore) string {
	b, _ := json.Marshal(s.items)
	return string(b)
}
