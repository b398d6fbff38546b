package acme

import (
	"strings"

	"github.com/certflow/certflow/internal/failure"
)

// dns-persist-01 (draft-ietf-acme-dns-persist): the customer publishes one
// standing TXT record that names the CA and certflow's ACME account
// (validation.Persist); the CA checks it at every validation and nothing
// is written per order.
const (
	challengeDNSPersist01 = "dns-persist-01"
)

// persistReason reads the CA's verdict on a dns-persist-01 record (the
// detail of its problem) and returns the failure.Reason it shows, or ""
// when the detail is not about such a record. The wording is Pebble's
// (va.go of v2.10.0); CAs are expected to word it alike, and an unknown
// wording still fails the challenge, without a reason.
func persistReason(detail string) string {
	d := strings.ToLower(detail)
	switch {
	case strings.Contains(d, "accounturi mismatch"):
		return failure.ReasonPersistRecordWrongAccount
	case !strings.Contains(d, challengeDNSPersist01):
		return ""
	case strings.Contains(d, "no txt records found"), strings.Contains(d, "no valid txt record found"):
		return failure.ReasonPersistRecordMissing
	case strings.Contains(d, "error parsing"), strings.Contains(d, "mismatch"), strings.Contains(d, "persistuntil"):
		return failure.ReasonPersistRecordInvalid
	}
	return ""
}
