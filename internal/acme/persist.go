package acme

import (
	"strings"

	"github.com/certflow/certflow/internal/failure"
)

// dns-persist-01 (draft-ietf-acme-dns-persist): the customer publishes one
// standing TXT record that names the CA and certflow's ACME account; the
// CA checks it at every validation and nothing is written per order.
const (
	challengeDNSPersist01 = "dns-persist-01"
	persistLabel          = "_validation-persist."
)

// PersistRecord returns the dns-persist-01 TXT record that lets the
// account accountURI (the account's URL, Client.AccountURI, verbatim)
// validate domain with the CA whose issuer domain name is issuerDomain
// (one of Client.CAAIdentities; Pebble's is its caaIdentities setting,
// "pebble.letsencrypt.org" by default):
//
//	name:  _validation-persist.<domain>
//	value: <issuerDomain>; accounturi=<accountURI>[; policy=wildcard]
//
// A wildcard domain ("*.example.com") is given without its "*." and
// implies wildcard; with policy=wildcard one record serves the domain and
// its wildcard. The name has no final dot.
func PersistRecord(domain, issuerDomain, accountURI string, wildcard bool) (name, value string) {
	base, isWildcard := strings.CutPrefix(strings.TrimSuffix(strings.ToLower(domain), "."), "*.")
	value = strings.ToLower(issuerDomain) + "; accounturi=" + accountURI
	if wildcard || isWildcard {
		value += "; policy=wildcard"
	}
	return persistLabel + base, value
}

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
