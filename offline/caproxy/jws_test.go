package caproxy

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

// jws returns a flattened JWS with kid and payload (empty: POST-as-GET);
// the signature is not checked.
func jws(kid, payload string) []byte {
	b64 := base64.RawURLEncoding.EncodeToString
	protected, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": kid, "nonce": "n", "url": "https://127.0.0.1:1/x"})
	b, _ := json.Marshal(map[string]string{"protected": b64(protected), "payload": b64([]byte(payload)), "signature": "c2ln"})
	return b
}

func TestClassify(t *testing.T) {
	const kid = "https://127.0.0.1:14000/my-account/1"
	tests := []struct {
		method, path string
		body         []byte
		want         Op
		wantAccount  string
	}{
		{http.MethodGet, "/dir", nil, OpDirectory, ""},
		{http.MethodHead, "/nonce-plz", nil, OpNonce, ""},
		{http.MethodPost, "/sign-me-up", jws("", `{"termsOfServiceAgreed":true}`), OpNewAccount, ""},
		{http.MethodPost, "/my-account/1", jws(kid, `{"contact":[]}`), OpAccount, kid},
		{http.MethodPost, "/list-orderz/1", jws(kid, ""), OpOrderList, kid},
		{http.MethodPost, "/rollover-account-key", jws(kid, `{}`), OpKeyChange, kid},
		{http.MethodPost, "/order-plz", jws(kid, `{"identifiers":[{"type":"dns","value":"a.example"}]}`), OpNewOrder, kid},
		{http.MethodPost, "/my-order/abc", jws(kid, ""), OpOrder, kid},
		{http.MethodPost, "/finalize-order/abc", jws(kid, `{"csr":"MII"}`), OpFinalize, kid},
		{http.MethodPost, "/authZ/abc", jws(kid, ""), OpAuthz, kid},
		{http.MethodPost, "/authZ/abc", jws(kid, `{"status":"deactivated"}`), OpAuthzUpdate, kid},
		{http.MethodPost, "/chalZ/abc", jws(kid, `{}`), OpChallenge, kid},
		{http.MethodPost, "/chalZ/abc", jws(kid, ""), OpChallengePoll, kid},
		{http.MethodPost, "/certZ/abc", jws(kid, ""), OpCertificate, kid},
		{http.MethodPost, "/revoke-cert", jws(kid, `{"certificate":"MII"}`), OpRevoke, kid},
		{http.MethodGet, "/draft-ietf-acme-ari-03/renewalInfo/aaa.bbb", nil, OpRenewalInfo, ""},
		{http.MethodGet, "/roots/0", nil, OpOther, ""},
		{http.MethodPost, "/order-plz", []byte("not a JWS"), OpNewOrder, ""},
	}
	for _, tt := range tests {
		c := classify(tt.method, tt.path, tt.body)
		if c.op != tt.want || c.account != tt.wantAccount {
			t.Errorf("classify(%s %s) = %s account %q, want %s account %q", tt.method, tt.path, c.op, c.account, tt.want, tt.wantAccount)
		}
	}
}

func TestClassifyNewOrder(t *testing.T) {
	body := jws("kid", `{"identifiers":[{"type":"dns","value":"www.b.example"},{"type":"dns","value":"a.example"}],"replaces":"aaa.bbb","profile":"shortlived"}`)
	c := classify(http.MethodPost, "/order-plz", body)
	if c.order == nil {
		t.Fatal("classify(newOrder) has no order")
	}
	if got, want := c.order.values(), []string{"a.example", "www.b.example"}; !slices.Equal(got, want) {
		t.Errorf("identifiers = %q, want %q", got, want)
	}
	if c.order.Replaces != "aaa.bbb" || c.order.Profile != "shortlived" {
		t.Errorf("replaces, profile = %q, %q, want aaa.bbb, shortlived", c.order.Replaces, c.order.Profile)
	}
}
