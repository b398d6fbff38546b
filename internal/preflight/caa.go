package preflight

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
	"golang.org/x/net/publicsuffix"

	"github.com/certflow/certflow/internal/failure"
)

// flagCritical is the issuer-critical bit of a CAA record's flags.
const flagCritical = 128

// knownTag reports whether this checker understands the CAA property tag
// (RFC 8659, RFC 9495, and the mail and VMC tags); a critical record with
// any other tag forbids issuance.
func knownTag(tag string) bool {
	switch tag {
	case "issue", "issuewild", "iodef", "contactemail", "contactphone", "issuemail", "issuevmc":
		return true
	}
	return false
}

// checkCAA finds the relevant CAA record set of base and checks that it
// allows one of the configured CA identities to issue for name.
func (c *Checker) checkCAA(ctx context.Context, name, base string, wildcard bool) error {
	for _, n := range caaCandidates(base) {
		resp, err := c.query(ctx, n, dns.TypeCAA)
		if err != nil {
			return err
		}
		// A resolver follows CNAMEs for CAA queries (RFC 8659 section 3), so
		// every CAA record of the answer belongs to n's record set.
		var set []*dns.CAA
		for _, rr := range resp.Answer {
			if caa, ok := rr.(*dns.CAA); ok {
				set = append(set, caa)
			}
		}
		if len(set) == 0 {
			continue
		}
		return c.evaluateCAA(name, n, set, wildcard)
	}
	return nil
}

// caaCandidates returns name and its ancestors down to, not including, its
// public suffix: the names whose CAA record sets may be relevant.
func caaCandidates(name string) []string {
	suffix, _ := publicsuffix.PublicSuffix(name)
	var out []string
	for n := name; n != "" && n != suffix; {
		out = append(out, n)
		_, parent, ok := strings.Cut(n, ".")
		if !ok {
			break
		}
		n = parent
	}
	if len(out) == 0 {
		out = []string{name}
	}
	return out
}

func (c *Checker) evaluateCAA(name, owner string, set []*dns.CAA, wildcard bool) error {
	var issue, issuewild []*dns.CAA
	for _, rr := range set {
		tag := strings.ToLower(rr.Tag)
		if rr.Flag&flagCritical != 0 && !knownTag(tag) {
			return &failure.CAAForbiddenError{Message: fmt.Sprintf("CAA records of %s include a critical property %q that is not understood, which forbids issuance for %s", owner, rr.Tag, name)}
		}
		switch tag {
		case "issue":
			issue = append(issue, rr)
		case "issuewild":
			issuewild = append(issuewild, rr)
		}
	}
	relevant, property := issue, "issue"
	if wildcard && len(issuewild) > 0 {
		relevant, property = issuewild, "issuewild"
	}
	if len(relevant) == 0 {
		return nil // the set restricts other things (iodef, mail) only
	}
	var allowed []string
	for _, rr := range relevant {
		issuer := issuerDomain(rr.Value)
		if issuer == "" {
			continue
		}
		if slices.Contains(c.cfg.CAAIdentities, issuer) {
			return nil
		}
		allowed = append(allowed, issuer)
	}
	if len(allowed) == 0 {
		return &failure.CAAForbiddenError{Message: fmt.Sprintf("CAA %s records of %s forbid every CA to issue for %s", property, owner, name)}
	}
	return &failure.CAAForbiddenError{Message: fmt.Sprintf("CAA %s records of %s allow only %s to issue for %s, not %s",
		property, owner, strings.Join(allowed, ", "), name, strings.Join(c.cfg.CAAIdentities, ", "))}
}

// issuerDomain returns the issuer domain name of an issue or issuewild
// value: the text before the first ";", lower-cased; empty if none.
func issuerDomain(value string) string {
	d, _, _ := strings.Cut(value, ";")
	return dnsName(d)
}
