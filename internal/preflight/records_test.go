package preflight

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/validation"
)

// TestValidationRecords checks, against challtestsrv, the records a domain
// validated before cutover must show: the DNS-01 delegation CNAME and the
// DNS-PERSIST-01 TXT, each missing or wrong with its precise reason.
func TestValidationRecords(t *testing.T) {
	dnsAddr, mgmt := startChallTestSrv(t)
	const zone, account, other = "acme.platform.example", "https://ca.example/acct/1", "https://ca.example/acct/9"
	delegated := validation.Delegation("*.shop.customer.example", zone)
	challSrvPost(t, mgmt, "/set-cname", `{"host":"`+delegated.Name+`.","target":"`+delegated.Value+`."}`)
	elsewhere := validation.Delegation("moved.customer.example", zone)
	challSrvPost(t, mgmt, "/set-cname", `{"host":"`+elsewhere.Name+`.","target":"old-provider.example."}`)
	persisted := validation.Persist("persist.customer.example", "pebble.letsencrypt.org", account, true)
	challSrvPost(t, mgmt, "/set-txt", `{"host":"`+persisted.Name+`.","value":"`+persisted.Value+`"}`)
	foreign := validation.Persist("foreign.customer.example", "pebble.letsencrypt.org", account, false)
	challSrvPost(t, mgmt, "/set-txt", `{"host":"`+foreign.Name+`.","value":"pebble.letsencrypt.org; accounturi=`+other+`"}`)

	c, err := New(Config{
		Resolver:      dnsAddr,
		EdgeAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Timeout:       time.Second,
		Names:         domain.Policy{AllowTestingTLDs: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		record validation.Record
		want   string // failure code, "" for none
	}{
		{"delegated", delegated, ""},
		{"delegation to someone else", elsewhere, failure.CodeDelegationMissing},
		{"no delegation", validation.Delegation("new.customer.example", zone), failure.CodeDelegationMissing},
		{"persist record", persisted, ""},
		{"persist record without wildcard where one is asked", validation.Persist("foreign.customer.example", "pebble.letsencrypt.org", other, true), failure.CodePersistRecordWrongAccount},
		{"persist record of another account", foreign, failure.CodePersistRecordWrongAccount},
		{"no persist record", validation.Persist("bare.customer.example", "pebble.letsencrypt.org", account, false), failure.CodePersistRecordMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.checkRecords(context.Background(), []validation.Record{tt.record})
			got := ""
			if f, ok := failure.Find(err); ok {
				got = f.Detail().Code
			} else if err != nil {
				t.Fatalf("checkRecords = %v, want a failure", err)
			}
			if got != tt.want {
				t.Errorf("checkRecords(%+v) = %v (code %q), want %q", tt.record, err, got, tt.want)
			}
		})
	}
}
