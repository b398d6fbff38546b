package acme

import (
	"testing"

	"github.com/certflow/certflow/internal/failure"
)

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
