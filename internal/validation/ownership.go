package validation

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// The ownership proof, asked for per request: a name merely pointing at the
// platform proves little (addresses and CNAME targets get recycled:
// subdomain takeover, the reason Fly, Vercel and Cloudflare ask for such a
// record too), so a request may ask its tenant to prove control of the
// zone with a TXT record carrying a random token, for every name, before
// the domain's first order. Preflight looks for it whatever the method.

// OwnershipLabel is the leftmost label of every ownership record.
const OwnershipLabel = "_certflow-challenge"

// Ownership is the TXT record that proves name with token:
//
//	_certflow-challenge.<base> TXT "<token>"
//
// A wildcard name proves with the record of its base, like its other
// records.
func Ownership(name, token string) Record {
	return Record{Name: OwnershipLabel + "." + Base(name), Type: "TXT", Value: token}
}

// OwnershipRecords returns the ownership records of names, one per
// distinct record name, in the order of names.
func OwnershipRecords(names []string, token string) []Record {
	var out []Record
	seen := map[string]bool{}
	for _, n := range names {
		r := Ownership(n, token)
		if !seen[r.Name] {
			seen[r.Name] = true
			out = append(out, r)
		}
	}
	return out
}

// tokenBytes is the entropy of an ownership token: 128 bits.
const tokenBytes = 16

// NewOwnershipToken returns a fresh random token (22 characters of
// base64url).
func NewOwnershipToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("ownership token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
