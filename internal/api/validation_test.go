package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/certflow/certflow/internal/api"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/validation"
)

// failingIdentity cannot reach the CA.
type failingIdentity struct{}

func (failingIdentity) PersistIdentity(context.Context) (string, string, error) {
	return "", "", errors.New("dial tcp 127.0.0.1:14000: connect: connection refused")
}

// TestRequestValidation: the validation method and the profile a request
// asks for, the records the customer is told to publish, what the
// execution receives; refusals change nothing.
func TestRequestValidation(t *testing.T) {
	delegation := func(name string) validation.Record { return validation.Delegation(name, delegationZone) }
	persist := func(name string, wildcard bool) validation.Record {
		return validation.Persist(name, persistIssuer, persistAccount, wildcard)
	}
	tests := []struct {
		name       string
		fixture    string // events/<fixture>, api-post.json when empty
		body       string // replaces the fixture's body when set
		configure  func(*api.Config)
		status     int
		code       string
		retryAfter string
		validation validation.Method
		records    []validation.Record
		profile    string
	}{
		{name: "fixture: a wildcard customer domain", fixture: "api-post-wildcard.json",
			status: http.StatusAccepted, validation: validation.DNS01, records: []validation.Record{delegation("shop.customer.example")}, profile: "shortlived"},
		{name: "HTTP-01 by default", body: `{"domain": "plain.customer.example"}`,
			status: http.StatusAccepted, validation: validation.HTTP01},
		{name: "a wildcard and its apex through one delegation",
			body:   `{"domain": "shop.customer.example", "sans": ["*.shop.customer.example"], "validation": "dns-01"}`,
			status: http.StatusAccepted, validation: validation.DNS01, records: []validation.Record{delegation("shop.customer.example")}},
		{name: "a delegation per name",
			body:   `{"domain": "a.customer.example", "sans": ["b.customer.example"], "validation": "dns-01"}`,
			status: http.StatusAccepted, validation: validation.DNS01,
			records: []validation.Record{delegation("a.customer.example"), delegation("b.customer.example")}},
		{name: "a standing record that allows the wildcard",
			body:   `{"domain": "*.persist.customer.example", "sans": ["persist.customer.example"], "validation": "dns-persist-01"}`,
			status: http.StatusAccepted, validation: validation.DNSPersist01, records: []validation.Record{persist("persist.customer.example", true)}},
		{name: "a standing record for one name",
			body:   `{"domain": "one.customer.example", "validation": "dns-persist-01", "profile": "shortlived"}`,
			status: http.StatusAccepted, validation: validation.DNSPersist01, records: []validation.Record{persist("one.customer.example", false)}, profile: "shortlived"},
		{name: "a profile", body: `{"domain": "short.customer.example", "profile": "shortlived"}`,
			status: http.StatusAccepted, validation: validation.HTTP01, profile: "shortlived"},

		{name: "a wildcard over HTTP-01", body: `{"domain": "*.shop.customer.example"}`,
			status: http.StatusUnprocessableEntity, code: api.CodeWildcardNeedsDNS},
		{name: "a wildcard SAN over HTTP-01 named", body: `{"domain": "shop.customer.example", "sans": ["*.shop.customer.example"], "validation": "http-01"}`,
			status: http.StatusUnprocessableEntity, code: api.CodeWildcardNeedsDNS},
		{name: "an unknown method", body: `{"domain": "x.customer.example", "validation": "tls-alpn-01"}`,
			status: http.StatusBadRequest, code: api.CodeInvalidValidation},
		{name: "a method of the wrong type", body: `{"domain": "x.customer.example", "validation": 1}`,
			status: http.StatusBadRequest, code: api.CodeInvalidType},
		{name: "an unknown profile", body: `{"domain": "x.customer.example", "profile": "forever"}`,
			status: http.StatusBadRequest, code: api.CodeInvalidProfile},
		{name: "DNS-01 without a delegation zone", body: `{"domain": "x.customer.example", "validation": "dns-01"}`,
			configure: func(c *api.Config) { c.Validation.DelegationZone = "" },
			status:    http.StatusUnprocessableEntity, code: api.CodeValidationNotOffered},
		{name: "DNS-PERSIST-01 without an account", body: `{"domain": "x.customer.example", "validation": "dns-persist-01"}`,
			configure: func(c *api.Config) { c.Validation.Persist = nil },
			status:    http.StatusUnprocessableEntity, code: api.CodeValidationNotOffered},
		{name: "DNS-PERSIST-01 while the CA is unreachable", body: `{"domain": "x.customer.example", "validation": "dns-persist-01"}`,
			configure: func(c *api.Config) { c.Validation.Persist = failingIdentity{} },
			status:    http.StatusServiceUnavailable, code: api.CodeValidationUnavailable, retryAfter: "30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			cfg := e.config()
			if tt.configure != nil {
				tt.configure(&cfg)
			}
			h, err := api.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			fixture := tt.fixture
			if fixture == "" {
				fixture = "api-post.json"
			}
			req := loadEvent(t, fixture)
			if tt.body != "" {
				req.Body = tt.body
			}
			resp, _ := h.Handle(e.ctx(), req)
			if resp.StatusCode != tt.status {
				t.Fatalf("POST %s = %d %s, want %d", tt.body, resp.StatusCode, resp.Body, tt.status)
			}
			if tt.code != "" {
				var doc struct{ Error api.Error }
				if err := json.Unmarshal([]byte(resp.Body), &doc); err != nil || doc.Error.Code != tt.code {
					t.Errorf("error = %s, want code %s", resp.Body, tt.code)
				}
				if got := resp.Headers["retry-after"]; got != tt.retryAfter {
					t.Errorf("retry-after = %q, want %q", got, tt.retryAfter)
				}
				if len(e.store.items) != 0 || len(e.starter.started) != 0 {
					t.Errorf("a refused request stored %d items and started %d executions", len(e.store.items), len(e.starter.started))
				}
				return
			}
			var doc struct {
				Domain     string
				Validation validation.Method
				DNSRecords []validation.Record
				Profile    string
			}
			if err := json.Unmarshal([]byte(resp.Body), &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Validation != tt.validation || !slices.Equal(doc.DNSRecords, tt.records) || doc.Profile != tt.profile {
				t.Errorf("document = %s, want validation %s, records %v, profile %q", resp.Body, tt.validation, tt.records, tt.profile)
			}
			c := e.store.items[doc.Domain]
			if c == nil || !slices.Equal(c.Records, tt.records) || c.Profile != tt.profile {
				t.Fatalf("stored %+v, want records %v and profile %q", c, tt.records, tt.profile)
			}
			var in flow.Input
			if err := json.Unmarshal(e.starter.started[c.Execution], &in); err != nil {
				t.Fatalf("execution input of %s: %v", c.Execution, err)
			}
			if in.Validation != tt.validation || !slices.Equal(in.Records, tt.records) || in.Profile != tt.profile {
				t.Errorf("execution input = %+v, want validation %q, records %v, profile %q", in, tt.validation, tt.records, tt.profile)
			}
		})
	}
}
