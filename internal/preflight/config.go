package preflight

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/certflow/certflow/internal/domain"
)

// Environment variables read by ConfigFromEnv. Lists are comma-separated.
const (
	EnvResolver      = "CERTFLOW_DNS_RESOLVER"   // host:port of a recursive resolver; empty = the first nameserver of /etc/resolv.conf
	EnvEdgeCNAMEs    = "CERTFLOW_EDGE_CNAMES"    // e.g. "edge.platform.example,*.cdn.platform.example"
	EnvEdgeAddresses = "CERTFLOW_EDGE_ADDRESSES" // e.g. "203.0.113.10,2001:db8::10"
	EnvCAAIdentities = "CERTFLOW_CAA_IDENTITIES" // e.g. "letsencrypt.org"; empty = no CAA check
	// EnvFallbackCAAIdentities are the fallback CA's (e.g. "pki.goog").
	EnvFallbackCAAIdentities = "CERTFLOW_FALLBACK_CAA_IDENTITIES"
)

// Defaults used for the zero values of Config.
const (
	DefaultTimeout  = 2 * time.Second
	DefaultAttempts = 3
)

// maxChain is the longest CNAME chain followed before giving up.
const maxChain = 8

// Config configures a Checker.
type Config struct {
	// Resolver is the host:port of the recursive DNS resolver to ask
	// (offline: pebble-challtestsrv's DNS server on 127.0.0.1).
	Resolver string
	// EdgeCNAMEs are the names a customer's CNAME may point at. An entry
	// "*.cdn.example" matches any name below cdn.example (at any depth) but
	// not cdn.example itself.
	EdgeCNAMEs []string
	// EdgeAddresses are the edge's IPv4 and IPv6 addresses.
	EdgeAddresses []netip.Addr
	// CAAIdentities are the issuer domain names of the CA as they appear in
	// CAA records ("letsencrypt.org"). Empty skips the CAA check.
	CAAIdentities []string
	// FallbackCAAIdentities are the fallback CA's, used when the
	// execution orders from it: CAA must allow the CA that will issue.
	FallbackCAAIdentities []string
	// Timeout bounds one DNS exchange; zero means DefaultTimeout.
	Timeout time.Duration
	// Attempts is how many times a query is sent before a timeout or
	// SERVFAIL is reported as transient; zero means DefaultAttempts.
	Attempts int
	// Names decides which domain names may be checked; the zero value
	// refuses names under .test and .example.
	Names domain.Policy
}

// ConfigFromEnv reads the Config from the environment. At least one of
// CERTFLOW_EDGE_CNAMES and CERTFLOW_EDGE_ADDRESSES must be set.
func ConfigFromEnv() (Config, error) {
	var cfg Config
	cfg.Resolver = strings.TrimSpace(os.Getenv(EnvResolver))
	if cfg.Resolver == "" {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(cc.Servers) == 0 {
			return Config{}, fmt.Errorf("%s is empty and /etc/resolv.conf names no nameserver", EnvResolver)
		}
		cfg.Resolver = net.JoinHostPort(cc.Servers[0], cc.Port)
	}
	cfg.EdgeCNAMEs = splitList(os.Getenv(EnvEdgeCNAMEs))
	for _, s := range splitList(os.Getenv(EnvEdgeAddresses)) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %q is not an IP address", EnvEdgeAddresses, s)
		}
		cfg.EdgeAddresses = append(cfg.EdgeAddresses, a)
	}
	cfg.CAAIdentities = splitList(os.Getenv(EnvCAAIdentities))
	cfg.FallbackCAAIdentities = splitList(os.Getenv(EnvFallbackCAAIdentities))
	if len(cfg.EdgeCNAMEs) == 0 && len(cfg.EdgeAddresses) == 0 {
		return Config{}, fmt.Errorf("set %s or %s (or both): preflight needs to know what the edge is", EnvEdgeCNAMEs, EnvEdgeAddresses)
	}
	if _, err := cfg.normalized(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// normalized validates c and returns a copy with defaults applied, names
// lower-cased without a final dot and addresses unmapped.
func (c Config) normalized() (Config, error) {
	out := Config{Timeout: c.Timeout, Attempts: c.Attempts, Names: c.Names}
	if out.Timeout <= 0 {
		out.Timeout = DefaultTimeout
	}
	if out.Attempts <= 0 {
		out.Attempts = DefaultAttempts
	}
	host, port, err := net.SplitHostPort(c.Resolver)
	if err != nil || host == "" {
		return Config{}, fmt.Errorf("%s: resolver %q is not host:port", EnvResolver, c.Resolver)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return Config{}, fmt.Errorf("%s: resolver %q has an invalid port", EnvResolver, c.Resolver)
	}
	out.Resolver = c.Resolver
	for _, n := range c.EdgeCNAMEs {
		n = dnsName(n)
		base := strings.TrimPrefix(n, "*.")
		if base == "" || strings.Contains(base, "*") {
			return Config{}, fmt.Errorf("%s: %q is not a host name or *.name pattern", EnvEdgeCNAMEs, n)
		}
		if _, ok := dns.IsDomainName(base); !ok {
			return Config{}, fmt.Errorf("%s: %q is not a host name", EnvEdgeCNAMEs, n)
		}
		out.EdgeCNAMEs = append(out.EdgeCNAMEs, n)
	}
	for _, a := range c.EdgeAddresses {
		if !a.IsValid() {
			return Config{}, fmt.Errorf("%s: invalid address", EnvEdgeAddresses)
		}
		out.EdgeAddresses = append(out.EdgeAddresses, a.Unmap())
	}
	if len(out.EdgeCNAMEs) == 0 && len(out.EdgeAddresses) == 0 {
		return Config{}, errors.New("preflight: no edge CNAMEs or addresses configured")
	}
	for _, id := range c.CAAIdentities {
		id = dnsName(id)
		if _, ok := dns.IsDomainName(id); !ok || id == "" {
			return Config{}, fmt.Errorf("%s: %q is not a domain name", EnvCAAIdentities, id)
		}
		out.CAAIdentities = append(out.CAAIdentities, id)
	}
	return out, nil
}

// normalizeName lower-cases n and removes a final dot.
func dnsName(n string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
}
