package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/validation"
)

// Validation is how the deployment lets domains prove control besides
// HTTP-01, and the ACME profiles a request may name. The zero value offers
// HTTP-01 and the deployment's default profile only.
type Validation struct {
	// DelegationZone is the platform's DNS zone that DNS-01 delegation
	// CNAMEs point into (validation.Delegation); empty: dns-01 is not
	// offered.
	DelegationZone string
	// Persist tells what a DNS-PERSIST-01 record names; nil: dns-persist-01
	// is not offered.
	Persist PersistIdentity
	// Profiles are the ACME profiles a request may name; a request that
	// names none gets the deployment's default.
	Profiles []string
}

// PersistIdentity tells what a DNS-PERSIST-01 record names: the primary
// CA's issuer domain name and the URI of the ACME account certflow orders
// with there.
type PersistIdentity interface {
	PersistIdentity(ctx context.Context) (issuer, accountURI string, err error)
}

// persistRetryAfter is the Retry-After of a 503 when the CA could not be
// asked for the account.
const persistRetryAfter = 30 * time.Second

// validationOf checks the validation method and the profile a request asks
// for its names (normalised, the domain first) and returns the method and
// the DNS records the customer publishes for it (none for HTTP-01). Nothing
// is stored yet.
func (h *Handler) validationOf(ctx context.Context, body createRequest, names []string) (validation.Method, []validation.Record, *Error) {
	v := h.cfg.Validation
	method, err := validation.Parse(body.Validation)
	if err != nil {
		return "", nil, badRequest(CodeInvalidValidation, err.Error())
	}
	if body.Profile != "" && !slices.Contains(v.Profiles, body.Profile) {
		offered := "none: leave profile out for the deployment's default"
		if len(v.Profiles) > 0 {
			offered = strings.Join(v.Profiles, ", ")
		}
		return "", nil, badRequest(CodeInvalidProfile, fmt.Sprintf("profile %q is not offered; the profiles are %s", truncate(body.Profile), offered))
	}
	if !method.ProvesWildcard() {
		for _, n := range names {
			if strings.HasPrefix(n, "*.") {
				return "", nil, &Error{Status: http.StatusUnprocessableEntity, Code: CodeWildcardNeedsDNS,
					Message: fmt.Sprintf(`%q is a wildcard, which HTTP-01 cannot prove: request it with "validation": %q (a CNAME delegating _acme-challenge to the platform) or %q (one standing TXT record)`, n, validation.DNS01, validation.DNSPersist01)}
			}
		}
	}
	bases, wildcard := basesOf(names)
	var records []validation.Record
	switch method {
	case validation.DNS01:
		if v.DelegationZone == "" {
			return "", nil, notOffered(method, "it has no delegation zone (template parameter DelegationZone)")
		}
		for _, b := range bases {
			records = append(records, validation.Delegation(b, v.DelegationZone))
		}
	case validation.DNSPersist01:
		if v.Persist == nil {
			return "", nil, notOffered(method, "it does not know its ACME account")
		}
		issuer, account, err := v.Persist.PersistIdentity(ctx)
		if err != nil {
			logging.From(ctx).WarnContext(ctx, "ask the CA for the DNS-PERSIST-01 identity", "error", err.Error())
			return "", nil, &Error{Status: http.StatusServiceUnavailable, Code: CodeValidationUnavailable,
				Message: "the CA could not be asked for the ACME account the DNS-PERSIST-01 record names: nothing was changed; try again", retryAfter: persistRetryAfter}
		}
		for _, b := range bases {
			records = append(records, validation.Persist(b, issuer, account, wildcard[b]))
		}
	}
	return method, records, nil
}

// basesOf returns the distinct bases of names (validation.Base), in order,
// and which of them a wildcard name covers.
func basesOf(names []string) ([]string, map[string]bool) {
	var bases []string
	wildcard := map[string]bool{}
	for _, n := range names {
		b := validation.Base(n)
		if !slices.Contains(bases, b) {
			bases = append(bases, b)
		}
		if strings.HasPrefix(n, "*.") {
			wildcard[b] = true
		}
	}
	return bases, wildcard
}

func notOffered(m validation.Method, why string) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: CodeValidationNotOffered,
		Message: fmt.Sprintf("this deployment does not offer %s validation: %s", m, why)}
}
