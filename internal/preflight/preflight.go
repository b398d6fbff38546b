// Package preflight checks, before any ACME order, that a name points at the
// platform's edge and that its CAA records allow the CA. An order for a name
// that fails either check would only fail validation and count against the
// CA's failed-validation limits, so the issuance state machine stops here.
//
// Pointing: the name (for a wildcard, the name without "*.") is resolved
// through the configured resolver. It points at the edge if some name in its
// CNAME chain is a configured edge CNAME (an entry "*.cdn.example" matches
// any name below cdn.example), or else if its final A and AAAA records are
// all edge addresses. All, not any: the CA may validate against any address
// it finds, so a single foreign address can fail an HTTP-01 challenge.
//
// CAA follows RFC 8659: the relevant record set is the first non-empty CAA
// set found from the name up to, not including, its public suffix.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
)

// Checker runs the preflight checks against one resolver. It is safe for
// concurrent use.
type Checker struct {
	cfg Config
	// fallback checks CAA for the fallback CA.
	fallback *Checker
}

// New validates cfg and returns a Checker.
func New(cfg Config) (*Checker, error) {
	n, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	fb := n
	fb.CAAIdentities = n.FallbackCAAIdentities
	return &Checker{cfg: n, fallback: &Checker{cfg: fb}}, nil
}

// forCA is the Checker for an execution ordering from ca.
func (c *Checker) forCA(ca string) *Checker {
	if ca == flow.CAFallback && c.fallback != nil {
		return c.fallback
	}
	return c
}

// Check reports whether name points at the edge and CAA allows the CA. The
// error is a *failure.DomainNotPointedError, a *failure.CAAForbiddenError or,
// when DNS itself failed (timeouts, SERVFAIL), a *failure.TransientError.
func (c *Checker) Check(ctx context.Context, name string) error {
	return c.check(ctx, name, true)
}

// check checks name: where it points when pointed is set (a domain
// validated by HTTP-01 after cutover), and CAA.
func (c *Checker) check(ctx context.Context, name string, pointed bool) error {
	name = dnsName(name)
	base, wildcard := strings.CutPrefix(name, "*.")
	if _, ok := dns.IsDomainName(base); !ok || base == "" || strings.Contains(base, "*") {
		return &failure.InvalidInputError{Message: fmt.Sprintf("%q is not a domain name", name)}
	}
	if pointed {
		if err := c.checkPointed(ctx, base); err != nil {
			return err
		}
	}
	if len(c.cfg.CAAIdentities) == 0 {
		return nil
	}
	return c.checkCAA(ctx, name, base, wildcard)
}

// checkPointed follows name's CNAME chain and checks its end.
func (c *Checker) checkPointed(ctx context.Context, name string) error {
	cur := name
	visited := map[string]bool{name: true}
	var chain []string
	var v4 []netip.Addr
	for {
		resp, err := c.query(ctx, cur, dns.TypeA)
		if err != nil {
			return err
		}
		advanced := false
		for {
			target, ok := cnameOf(resp.Answer, cur)
			if !ok {
				break
			}
			if c.isEdgeCNAME(target) {
				return nil
			}
			if visited[target] {
				return &failure.DomainNotPointedError{Message: fmt.Sprintf("%s has a CNAME loop (%s -> %s)", name, strings.Join(append([]string{name}, chain...), " -> "), target)}
			}
			if len(chain) == maxChain {
				return &failure.DomainNotPointedError{Message: fmt.Sprintf("%s has a CNAME chain longer than %d", name, maxChain)}
			}
			chain = append(chain, target)
			visited[target] = true
			cur = target
			advanced = true
		}
		if resp.Rcode == dns.RcodeNameError {
			if len(chain) == 0 {
				return &failure.DomainNotPointedError{Message: fmt.Sprintf("%s does not exist in DNS (NXDOMAIN)", name)}
			}
			return &failure.DomainNotPointedError{Message: fmt.Sprintf("%s is an alias of %s, which does not exist in DNS (NXDOMAIN)", name, cur)}
		}
		v4 = addrsOf(resp.Answer, cur)
		// A resolver that answers with the CNAME only (an authoritative
		// server, for instance) leaves the target to be asked for.
		if len(v4) == 0 && advanced {
			continue
		}
		break
	}
	resp, err := c.query(ctx, cur, dns.TypeAAAA)
	if err != nil {
		return err
	}
	addrs := append(v4, addrsOf(resp.Answer, cur)...)
	via := ""
	if len(chain) > 0 {
		via = " via CNAME " + strings.Join(chain, " -> ")
	}
	if len(addrs) == 0 {
		return &failure.DomainNotPointedError{Message: fmt.Sprintf("%s resolves%s to no A or AAAA records, not the edge (%s)", name, via, c.edgeString())}
	}
	var foreign []string
	for _, a := range addrs {
		if !slices.Contains(c.cfg.EdgeAddresses, a) {
			foreign = append(foreign, a.String())
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%s resolves%s to %s, not the edge (%s)", name, via, joinAddrs(addrs), c.edgeString())
	if len(foreign) < len(addrs) {
		verb := "are not edge addresses"
		if len(foreign) == 1 {
			verb = "is not an edge address"
		}
		msg += fmt.Sprintf(": %s %s, and the CA may validate against any of them", strings.Join(foreign, ", "), verb)
	}
	return &failure.DomainNotPointedError{Message: msg}
}

func (c *Checker) isEdgeCNAME(target string) bool {
	for _, e := range c.cfg.EdgeCNAMEs {
		if suffix, ok := strings.CutPrefix(e, "*."); ok {
			if strings.HasSuffix(target, "."+suffix) {
				return true
			}
		} else if target == e {
			return true
		}
	}
	return false
}

func (c *Checker) edgeString() string {
	parts := slices.Clone(c.cfg.EdgeCNAMEs)
	for _, a := range c.cfg.EdgeAddresses {
		parts = append(parts, a.String())
	}
	return strings.Join(parts, ", ")
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// cnameOf returns the target of the CNAME record owned by name in rrs.
func cnameOf(rrs []dns.RR, name string) (string, bool) {
	for _, rr := range rrs {
		if c, ok := rr.(*dns.CNAME); ok && dnsName(c.Hdr.Name) == name {
			return dnsName(c.Target), true
		}
	}
	return "", false
}

// addrsOf returns the A and AAAA addresses owned by name in rrs.
func addrsOf(rrs []dns.RR, name string) []netip.Addr {
	var out []netip.Addr
	for _, rr := range rrs {
		if dnsName(rr.Header().Name) != name {
			continue
		}
		var ip []byte
		switch r := rr.(type) {
		case *dns.A:
			ip = r.A
		case *dns.AAAA:
			ip = r.AAAA
		default:
			continue
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// query asks the resolver for name and qtype: over UDP, again over TCP when
// the answer is truncated, up to Attempts times on timeouts and server
// failures. It returns NOERROR and NXDOMAIN answers; anything else is a
// *failure.TransientError.
func (c *Checker) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, false)
	what := name + " " + dns.TypeToString[qtype]

	var lastErr error
	for attempt := 0; attempt < c.cfg.Attempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, &failure.TransientError{Message: fmt.Sprintf("DNS lookup of %s interrupted", what), Err: ctx.Err()}
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
		}
		resp, err := c.exchange(ctx, m, "udp")
		if err == nil && resp.Truncated {
			resp, err = c.exchange(ctx, m, "tcp")
		}
		if err != nil {
			lastErr = err
			continue
		}
		switch resp.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
			return resp, nil
		}
		lastErr = rcodeError(resp.Rcode)
	}
	return nil, &failure.TransientError{Message: fmt.Sprintf("DNS lookup of %s failed: %s", what, describe(lastErr)), Err: lastErr}
}

func (c *Checker) exchange(ctx context.Context, m *dns.Msg, network string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	client := &dns.Client{Net: network, Timeout: c.cfg.Timeout}
	resp, _, err := client.ExchangeContext(ctx, m, c.cfg.Resolver)
	if err != nil {
		return nil, fmt.Errorf("query %s over %s: %w", c.cfg.Resolver, network, err)
	}
	return resp, nil
}

// rcodeError is a resolver's answer other than NOERROR or NXDOMAIN.
type rcodeError int

func (e rcodeError) Error() string { return "the resolver answered " + dns.RcodeToString[int(e)] }

// describe turns a lookup error into words fit for an operator, without
// the resolver's internals.
func describe(err error) string {
	var rc rcodeError
	var ne net.Error
	switch {
	case errors.As(err, &rc):
		return rc.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "the resolver did not answer in time"
	case errors.Is(err, context.Canceled):
		return "the lookup was cancelled"
	}
	return "the resolver could not be reached"
}
