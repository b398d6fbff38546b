// Package ownership is the proof that a customer controls a domain, asked
// for per request: the API hands out a random token, the customer publishes
// it as a TXT record at _certflow-challenge.<name> for every name of the
// request, and preflight requires the records before the domain's first
// ACME order. A name that merely points at the edge proves little:
// addresses and CNAME targets get recycled (subdomain takeover), which is
// why Fly, Vercel and Cloudflare ask for such a record too.
//
// The record of a wildcard name is the one of its base name:
// *.shop.example proves with _certflow-challenge.shop.example. A CNAME at
// the record's name (delegating it to a zone the platform runs) is
// followed by the resolver like any other.
package ownership

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// Label is the leftmost label of every ownership record.
const Label = "_certflow-challenge"

// RecordType is the DNS type of ownership records.
const RecordType = "TXT"

// RecordName returns the name of the TXT record that proves name.
func RecordName(name string) string {
	return Label + "." + strings.TrimPrefix(name, "*.")
}

// tokenBytes is the entropy of a token: 128 bits.
const tokenBytes = 16

// NewToken returns a fresh random token (22 characters of base64url).
func NewToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("ownership token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Record is one TXT record a customer publishes.
type Record struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Records returns the records that prove names with token, one per
// distinct record name, in the order of names.
func Records(names []string, token string) []Record {
	var out []Record
	seen := map[string]bool{}
	for _, n := range names {
		rn := RecordName(n)
		if seen[rn] {
			continue
		}
		seen[rn] = true
		out = append(out, Record{Name: rn, Type: RecordType, Value: token})
	}
	return out
}
