// Package validation names the ways a customer domain proves it may be
// issued for (the ACME challenge certflow answers), and the DNS records a
// customer publishes for the two that work before the domain points at the
// platform: a CNAME delegating "_acme-challenge" to the platform's
// delegation zone (DNS-01), and the standing TXT record of DNS-PERSIST-01
// that names the CA and the platform's ACME account; and, whatever the
// method, the ownership proof a request may ask for (ownership.go). The API
// tells the customer the records, preflight checks them before any order,
// and the issue step answers the challenge.
package validation

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Method is how a domain is validated.
type Method string

// The methods.
const (
	// HTTP01 answers the CA on port 80 of the domain: the domain must
	// point at the platform first. The default.
	HTTP01 Method = "http-01"
	// DNS01 answers with a TXT record the platform writes in its
	// delegation zone, where the customer's "_acme-challenge" CNAME points:
	// before cutover, wildcards included, and renewals need nothing from
	// the customer.
	DNS01 Method = "dns-01"
	// DNSPersist01 relies on one standing TXT record the customer publishes
	// (Persist): nothing is written per order, before cutover, wildcards
	// included when the record says so.
	DNSPersist01 Method = "dns-persist-01"
)

// Parse reads a method as the API receives it; "" is HTTP01.
func Parse(s string) (Method, error) {
	switch m := Method(s); m {
	case "":
		return HTTP01, nil
	case HTTP01, DNS01, DNSPersist01:
		return m, nil
	}
	return "", fmt.Errorf("validation %q is not one of %s, %s, %s", s, HTTP01, DNS01, DNSPersist01)
}

// ProvesWildcard reports whether m can validate a wildcard name (HTTP-01
// cannot: the CA refuses it).
func (m Method) ProvesWildcard() bool { return m == DNS01 || m == DNSPersist01 }

// Record is a DNS record a customer publishes. Name has no final dot.
type Record struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

// String is r in DNS presentation form, "<name> <type> <value>", as the
// table keeps it (ParseRecord reads it back).
func (r Record) String() string { return r.Name + " " + r.Type + " " + r.Value }

// ParseRecord reads a Record in presentation form (Record.String).
func ParseRecord(s string) (Record, error) {
	name, rest, ok1 := strings.Cut(s, " ")
	typ, value, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || name == "" || typ == "" || value == "" {
		return Record{}, fmt.Errorf("validation record %q is not \"<name> <type> <value>\"", s)
	}
	return Record{Name: name, Type: typ, Value: value}, nil
}

// Base is name without a leading "*.", lower case, without a final dot:
// the name whose records validate it.
func Base(name string) string {
	base, _ := strings.CutPrefix(strings.TrimSuffix(strings.ToLower(name), "."), "*.")
	return base
}

// DelegationLabel is the stable label of name in the delegation zone: the
// first 20 hex digits of the SHA-256 of its base, so a name and its
// wildcard share one delegation, and no customer learns another's.
func DelegationLabel(name string) string {
	sum := sha256.Sum256([]byte(Base(name)))
	return hex.EncodeToString(sum[:10])
}

// Delegation is the CNAME that delegates name's DNS-01 validation to the
// platform's delegation zone:
//
//	_acme-challenge.<base> CNAME <label>.<zone>
func Delegation(name, zone string) Record {
	return Record{
		Name:  "_acme-challenge." + Base(name),
		Type:  "CNAME",
		Value: DelegationLabel(name) + "." + strings.TrimSuffix(strings.ToLower(zone), "."),
	}
}

// Persist is the DNS-PERSIST-01 record that lets the ACME account
// accountURI (verbatim) validate name with the CA whose issuer domain name
// is issuer (one of the CA's CAA identities: "letsencrypt.org"):
//
//	_validation-persist.<base> TXT "<issuer>; accounturi=<accountURI>[; policy=wildcard]"
//
// A wildcard name implies wildcard: one record serves the name and its
// wildcard.
func Persist(name, issuer, accountURI string, wildcard bool) Record {
	value := strings.ToLower(issuer) + "; accounturi=" + accountURI
	if wildcard || strings.HasPrefix(name, "*.") {
		value += "; policy=wildcard"
	}
	return Record{Name: "_validation-persist." + Base(name), Type: "TXT", Value: value}
}

// PersistFields reads a DNS-PERSIST-01 TXT value: its issuer domain name,
// its accounturi and whether it allows wildcards. ok is false when it is
// not such a record.
func PersistFields(value string) (issuer, accountURI string, wildcard, ok bool) {
	parts := strings.Split(value, ";")
	issuer = strings.ToLower(strings.TrimSpace(parts[0]))
	if issuer == "" || strings.Contains(issuer, "=") {
		return "", "", false, false
	}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "accounturi":
			accountURI = strings.TrimSpace(v)
		case "policy":
			wildcard = strings.EqualFold(strings.TrimSpace(v), "wildcard")
		}
	}
	return issuer, accountURI, wildcard, accountURI != ""
}
