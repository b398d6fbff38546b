package acme

import (
	"testing"

	"github.com/certflow/certflow/internal/failure"
)

func TestPersistRecord(t *testing.T) {
	const (
		issuer  = "pebble.letsencrypt.org"
		account = "https://127.0.0.1:14000/my-account/2072dfd740700d69"
	)
	tests := []struct {
		domain    string
		issuer    string
		wildcard  bool
		wantName  string
		wantValue string
	}{
		{"example.com", issuer, false, "_validation-persist.example.com",
			"pebble.letsencrypt.org; accounturi=https://127.0.0.1:14000/my-account/2072dfd740700d69"},
		{"example.com", issuer, true, "_validation-persist.example.com",
			"pebble.letsencrypt.org; accounturi=https://127.0.0.1:14000/my-account/2072dfd740700d69; policy=wildcard"},
		{"*.Example.COM.", "Pebble.LetsEncrypt.org", false, "_validation-persist.example.com",
			"pebble.letsencrypt.org; accounturi=https://127.0.0.1:14000/my-account/2072dfd740700d69; policy=wildcard"},
	}
	for _, tt := range tests {
		name, value := PersistRecord(tt.domain, tt.issuer, account, tt.wildcard)
		if name != tt.wantName || value != tt.wantValue {
			t.Errorf("PersistRecord(%q, %q, …, %v) = %q, %q; want %q, %q", tt.domain, tt.issuer, tt.wildcard, name, value, tt.wantName, tt.wantValue)
		}
	}
}

func TestPersistReason(t *testing.T) {
	tests := []struct {
		detail string
		want   string
	}{
		{"No TXT records found for DNS-PERSIST-01 challenge", failure.ReasonPersistRecordMissing},
		{"No valid TXT record found for DNS-PERSIST-01 challenge", failure.ReasonPersistRecordMissing},
		{`Error parsing DNS-PERSIST-01 challenge TXT record with issuer-domain-name "pebble.letsencrypt.org": accounturi mismatch: expected "a", got "b"`, failure.ReasonPersistRecordWrongAccount},
		{`Error parsing DNS-PERSIST-01 challenge TXT record with issuer-domain-name "pebble.letsencrypt.org": policy mismatch: expected "wildcard", got ""`, failure.ReasonPersistRecordInvalid},
		{`Error parsing DNS-PERSIST-01 challenge TXT record with issuer-domain-name "pebble.letsencrypt.org": missing mandatory accountURI parameter`, failure.ReasonPersistRecordInvalid},
		{"Error retrieving TXT records for DNS-PERSIST-01 challenge: SERVFAIL", ""},
		{"No TXT records found for DNS challenge", ""},
		{"Invalid response from http://a.example/.well-known/acme-challenge/x: 404", ""},
	}
	for _, tt := range tests {
		if got := persistReason(tt.detail); got != tt.want {
			t.Errorf("persistReason(%q) = %q, want %q", tt.detail, got, tt.want)
		}
	}
}
