package acme

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/challenge"
)

// Environment variables read by ConfigFromEnv.
const (
	EnvDirectory = "CERTFLOW_ACME_DIRECTORY"
	EnvEmail     = "CERTFLOW_ACME_EMAIL"
	EnvEABKID    = "CERTFLOW_ACME_EAB_KID"
	EnvEABHMAC   = "CERTFLOW_ACME_EAB_HMAC"
	EnvProfile   = "CERTFLOW_ACME_PROFILE"
	EnvCARoots   = "CERTFLOW_ACME_CA_ROOTS"
	EnvKeyType   = "CERTFLOW_KEY_TYPE"
	// The fallback CA: its directory (unset means no fallback), its
	// external account binding, and extra roots for its HTTPS listener.
	// Everything else is the primary's.
	EnvFallbackDirectory = "CERTFLOW_FALLBACK_ACME_DIRECTORY"
	EnvFallbackEABKID    = "CERTFLOW_FALLBACK_ACME_EAB_KID"
	EnvFallbackEABHMAC   = "CERTFLOW_FALLBACK_ACME_EAB_HMAC"
	EnvFallbackCARoots   = "CERTFLOW_FALLBACK_ACME_CA_ROOTS"
	// EnvDNSResolver is the recursive resolver ("host:port") lego checks
	// DNS-01 records on; several may be given, comma separated. Shared with
	// the preflight checks.
	EnvDNSResolver = "CERTFLOW_DNS_RESOLVER"
)

// Directory URLs selected by the names CERTFLOW_ACME_DIRECTORY accepts.
const (
	DirectoryProduction = "https://acme-v02.api.letsencrypt.org/directory"
	DirectoryStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// Key type names used in configuration and on certificate items.
const (
	KeyTypeEC256   = "ec256"
	KeyTypeRSA2048 = "rsa2048"
)

// DefaultHTTPTimeout bounds each request to the CA when Config.HTTPTimeout
// is zero.
const DefaultHTTPTimeout = 30 * time.Second

// DefaultDeadlineMargin is Config.DeadlineMargin when zero.
const DefaultDeadlineMargin = 20 * time.Second

// EAB holds the external account binding credentials some CAs require to
// register an account.
type EAB struct {
	KID  string
	HMAC string // base64url, as the CA hands it out
}

// Config configures a Client. The zero value of a field means its
// documented default.
type Config struct {
	// DirectoryURL is the ACME directory; default Let's Encrypt production.
	DirectoryURL string
	// Email is the account contact; optional.
	Email string
	// KeyType of certificate keys; default certcrypto.EC256.
	KeyType certcrypto.KeyType
	// Profile is the ACME profile to request (draft-ietf-acme-profiles);
	// empty means the CA's default.
	Profile string
	// CARoots is a PEM file of extra roots trusted for the ACME server's
	// TLS certificate (Pebble's), on top of the system roots.
	CARoots string
	// EAB is the external account binding used when registering; optional.
	EAB *EAB
	// HTTP01 publishes the HTTP-01 challenges of ordinary names
	// (MethodHTTP01).
	HTTP01 challenge.Provider
	// DNS01 publishes DNS-01 records: for wildcard names, and for every
	// name with MethodDNS01. nil means those fail with
	// failure.InvalidInputError.
	DNS01 challenge.Provider
	// DNSResolvers are the resolvers lego consults to see that a DNS-01
	// record is visible before asking the CA to validate. When set, a
	// record visible on all of them is enough and authoritative servers are
	// not queried; when empty, lego uses /etc/resolv.conf and checks the
	// authoritative servers. Note that lego keeps this setting process-wide.
	DNSResolvers []string
	// HTTPTimeout bounds each request to the CA; default 30 seconds.
	HTTPTimeout time.Duration
	// DeadlineMargin is the time kept free before a context's deadline: a
	// phase (placing, authorizing, finalizing, fetching) or a poll that
	// would start later is not started, and the caller resumes the order
	// next time; default DefaultDeadlineMargin.
	DeadlineMargin time.Duration
}

// withDefaults returns cfg with its defaults filled in.
func (cfg Config) withDefaults() Config {
	if cfg.DirectoryURL == "" {
		cfg.DirectoryURL = DirectoryProduction
	}
	if cfg.KeyType == "" {
		cfg.KeyType = certcrypto.EC256
	}
	if cfg.HTTPTimeout <= 0 {
		cfg.HTTPTimeout = DefaultHTTPTimeout
	}
	if cfg.DeadlineMargin <= 0 {
		cfg.DeadlineMargin = DefaultDeadlineMargin
	}
	return cfg
}

// KeyTypeName returns the configuration name of a certificate key type
// ("ec256", "rsa2048"), the value recorded on certificate items.
func KeyTypeName(kt certcrypto.KeyType) string {
	switch kt {
	case certcrypto.RSA2048:
		return KeyTypeRSA2048
	case certcrypto.EC256, "":
		return KeyTypeEC256
	default:
		return strings.ToLower(string(kt))
	}
}

// ConfigFromEnv reads the ACME settings from the environment. The challenge
// providers are left for the caller to set.
func ConfigFromEnv() (Config, error) {
	dir, err := directoryURL(os.Getenv(EnvDirectory))
	if err != nil {
		return Config{}, err
	}
	cfg := Config{
		DirectoryURL: dir,
		Email:        os.Getenv(EnvEmail),
		Profile:      os.Getenv(EnvProfile),
		CARoots:      os.Getenv(EnvCARoots),
	}
	if cfg.Email != "" && !strings.Contains(cfg.Email, "@") {
		return Config{}, fmt.Errorf("%s=%q: want an email address", EnvEmail, cfg.Email)
	}
	switch kt := strings.ToLower(os.Getenv(EnvKeyType)); kt {
	case "", KeyTypeEC256:
		cfg.KeyType = certcrypto.EC256
	case KeyTypeRSA2048:
		cfg.KeyType = certcrypto.RSA2048
	default:
		return Config{}, fmt.Errorf("%s=%q: want %q or %q", EnvKeyType, kt, KeyTypeEC256, KeyTypeRSA2048)
	}
	kid, hmac := os.Getenv(EnvEABKID), os.Getenv(EnvEABHMAC)
	switch {
	case kid != "" && hmac != "":
		cfg.EAB = &EAB{KID: kid, HMAC: hmac}
	case kid != "":
		return Config{}, fmt.Errorf("%s is set but %s is not: external account binding needs both", EnvEABKID, EnvEABHMAC)
	case hmac != "":
		return Config{}, fmt.Errorf("%s is set but %s is not: external account binding needs both", EnvEABHMAC, EnvEABKID)
	}
	for _, r := range strings.Split(os.Getenv(EnvDNSResolver), ",") {
		if r = strings.TrimSpace(r); r != "" {
			cfg.DNSResolvers = append(cfg.DNSResolvers, r)
		}
	}
	if cfg.CARoots != "" {
		if _, err := os.Stat(cfg.CARoots); err != nil {
			return Config{}, fmt.Errorf("%s=%q: %w", EnvCARoots, cfg.CARoots, err)
		}
	}
	return cfg, nil
}

// FallbackFromEnv reads the fallback CA's settings: primary with the
// fallback's directory, external account binding and roots. ok is false
// when no fallback is configured.
func FallbackFromEnv(primary Config) (cfg Config, ok bool, err error) {
	v := os.Getenv(EnvFallbackDirectory)
	if v == "" {
		return Config{}, false, nil
	}
	dir, err := directoryURL(v)
	if err != nil {
		return Config{}, false, fmt.Errorf("%s: %w", EnvFallbackDirectory, err)
	}
	if dir == primary.DirectoryURL {
		return Config{}, false, fmt.Errorf("%s=%q is the primary CA's directory", EnvFallbackDirectory, v)
	}
	cfg = primary
	cfg.DirectoryURL, cfg.EAB = dir, nil
	switch kid, hmac := os.Getenv(EnvFallbackEABKID), os.Getenv(EnvFallbackEABHMAC); {
	case kid != "" && hmac != "":
		cfg.EAB = &EAB{KID: kid, HMAC: hmac}
	case kid != "" || hmac != "":
		return Config{}, false, fmt.Errorf("%s and %s go together: external account binding needs both", EnvFallbackEABKID, EnvFallbackEABHMAC)
	}
	if roots := os.Getenv(EnvFallbackCARoots); roots != "" {
		if _, err := os.Stat(roots); err != nil {
			return Config{}, false, fmt.Errorf("%s=%q: %w", EnvFallbackCARoots, roots, err)
		}
		cfg.CARoots = roots
	}
	return cfg, true, nil
}

// directoryURL resolves the value of CERTFLOW_ACME_DIRECTORY.
func directoryURL(v string) (string, error) {
	switch v {
	case "", "production":
		return DirectoryProduction, nil
	case "staging":
		return DirectoryStaging, nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("%s=%q: want \"production\", \"staging\" or an https URL", EnvDirectory, v)
	}
	return v, nil
}
