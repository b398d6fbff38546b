package caproxy

import (
	"net/http"
	"testing"
	"time"
)

func TestPollRetryAfter(t *testing.T) {
	tests := []struct {
		op     Op
		status int
		body   string
		d      time.Duration
		want   string // empty: no header
	}{
		{OpAuthz, 200, `{"status":"pending"}`, 2 * time.Second, "2"},
		{OpOrder, 200, `{"status":"processing"}`, 1500 * time.Millisecond, "2"},
		{OpChallenge, 200, `{"status":"processing"}`, time.Second, "1"},
		{OpChallengePoll, 200, `{"status":"pending"}`, time.Second, "1"},
		{OpOrder, 200, `{"status":"ready"}`, time.Second, "1"},
		{OpAuthz, 200, `{"status":"valid"}`, time.Second, ""},
		{OpOrder, 200, `{"status":"invalid"}`, time.Second, ""},
		{OpAuthz, 200, `{"status":"deactivated"}`, time.Second, ""},
		{OpAuthz, 200, `{"status":"pending"}`, 0, ""},
		{OpAuthz, 404, `{"status":"pending"}`, time.Second, ""},
		{OpNewOrder, 201, `{"status":"pending"}`, time.Second, ""},
		{OpCertificate, 200, `-----BEGIN CERTIFICATE-----`, time.Second, ""},
	}
	for _, tt := range tests {
		got, ok := pollRetryAfter(tt.op, tt.status, []byte(tt.body), tt.d)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("pollRetryAfter(%s, %d, %s, %s) = %q, %v, want %q", tt.op, tt.status, tt.body, tt.d, got, ok, tt.want)
		}
	}
}

func TestPick(t *testing.T) {
	var s faultState
	s.set(Faults{Rules: []Rule{
		{Kind: BadNonce, Ops: []Op{OpNewOrder}, Count: 2},
		{Kind: ServerError, Ops: []Op{OpNewOrder, OpFinalize}},
	}})
	var got []Kind
	for _, op := range []Op{OpNewOrder, OpFinalize, OpNewOrder, OpNewOrder, OpAuthz} {
		r, ok := s.pick(op)
		if !ok {
			got = append(got, "")
			continue
		}
		got = append(got, r.Kind)
	}
	want := []Kind{BadNonce, ServerError, BadNonce, ServerError, ""}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("pick #%d = %q, want %q (all: %q)", i, got[i], want[i], got)
		}
	}
}

func TestRuleProblem(t *testing.T) {
	tests := []struct {
		rule       Rule
		status     int
		typ        string
		retryAfter string
	}{
		{Rule{Kind: RateLimited}, http.StatusTooManyRequests, problemRateLimited, "1"},
		{Rule{Kind: RateLimited, RetryAfter: time.Hour}, http.StatusTooManyRequests, problemRateLimited, "3600"},
		{Rule{Kind: ServerError}, http.StatusInternalServerError, problemServerInternal, ""},
		{Rule{Kind: ServerError, Status: 503, RetryAfter: 5 * time.Second}, http.StatusServiceUnavailable, problemServerInternal, "5"},
		{Rule{Kind: BadNonce}, http.StatusBadRequest, problemBadNonce, ""},
	}
	for _, tt := range tests {
		status, typ, ra := tt.rule.problem()
		if status != tt.status || typ != tt.typ || ra != tt.retryAfter {
			t.Errorf("%+v.problem() = %d, %s, %q, want %d, %s, %q", tt.rule, status, typ, ra, tt.status, tt.typ, tt.retryAfter)
		}
	}
}

func TestFaultsValidate(t *testing.T) {
	tests := []struct {
		name  string
		rule  Rule
		valid bool
	}{
		{"rate limit", Rule{Kind: RateLimited, Probability: 0.5}, true},
		{"503", Rule{Kind: ServerError, Status: 503}, true},
		{"404 is no server error", Rule{Kind: ServerError, Status: 404}, false},
		{"unknown kind", Rule{Kind: "explode"}, false},
		{"freeze is no rule", Rule{Kind: Freeze}, false},
		{"probability above 1", Rule{Kind: Reset, Probability: 1.5}, false},
		{"negative count", Rule{Kind: Reset, Count: -1}, false},
	}
	for _, tt := range tests {
		err := Faults{Rules: []Rule{tt.rule}}.validate()
		if (err == nil) != tt.valid {
			t.Errorf("%s: validate() = %v, want valid %v", tt.name, err, tt.valid)
		}
	}
}
