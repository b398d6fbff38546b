// Package dns01 provides the lego DNS-01 challenge providers certflow uses:
// Route 53 in AWS and pebble-challtestsrv's management API offline.
package dns01

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/go-acme/lego/v4/challenge"
	legodns01 "github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/providers/dns/route53"
)

// Environment variables read by ConfigFromEnv.
const (
	EnvProvider        = "CERTFLOW_DNS01_PROVIDER"
	EnvChallTestSrvURL = "CERTFLOW_CHALLTESTSRV_URL"
	// EnvHostedZoneID is lego's variable for the Route 53 hosted zone; when
	// unset, lego finds the zone from the name's SOA record.
	EnvHostedZoneID = route53.EnvHostedZoneID
)

// Provider kinds accepted by NewProvider.
const (
	KindNone         = ""
	KindRoute53      = "route53"
	KindChallTestSrv = "challtestsrv"
)

// Config configures the DNS-01 provider. The zero value of a field means its
// documented default.
type Config struct {
	// ChallTestSrvURL is the base URL of pebble-challtestsrv's management
	// API (challtestsrv only).
	ChallTestSrvURL string
	// HTTPClient talks to challtestsrv; nil means a client with a 10s timeout.
	HTTPClient *http.Client

	// AWS is the configuration the Route 53 client is built from. It honours
	// AWS_ENDPOINT_URL_ROUTE53 when loaded with config.LoadDefaultConfig.
	AWS aws.Config
	// Route53Endpoint overrides the Route 53 endpoint (moto_server offline).
	Route53Endpoint string
	// HostedZoneID is the Route 53 hosted zone to write to; empty lets lego
	// find it through the SOA of the name.
	HostedZoneID string
	// WaitForChange makes Present wait until Route 53 reports the change
	// INSYNC. Default false; lego's propagation check follows anyway.
	WaitForChange bool
	// PropagationTimeout and PollingInterval bound lego's DNS propagation
	// check; defaults 2 minutes and 4 seconds (Route 53), 30 seconds and 100
	// milliseconds (challtestsrv).
	PropagationTimeout time.Duration
	PollingInterval    time.Duration
}

// ConfigFromEnv reads the provider kind and its configuration from the
// environment. aws is the already loaded AWS configuration.
func ConfigFromEnv(aws aws.Config) (string, Config, error) {
	kind := os.Getenv(EnvProvider)
	cfg := Config{
		AWS:             aws,
		ChallTestSrvURL: os.Getenv(EnvChallTestSrvURL),
		HostedZoneID:    os.Getenv(EnvHostedZoneID),
	}
	switch kind {
	case KindNone, KindRoute53:
	case KindChallTestSrv:
		if cfg.ChallTestSrvURL == "" {
			return "", Config{}, fmt.Errorf("%s is not set: %s=%s needs the challtestsrv management URL", EnvChallTestSrvURL, EnvProvider, kind)
		}
	default:
		return "", Config{}, fmt.Errorf("%s=%q: want %q, %q or empty", EnvProvider, kind, KindRoute53, KindChallTestSrv)
	}
	return kind, cfg, nil
}

// NewProvider builds the DNS-01 provider of the given kind. An empty kind
// means that DNS-01 is not available: NewProvider then returns a nil
// Provider and no error, which the issuer reads as "no DNS-01".
func NewProvider(kind string, cfg Config) (challenge.Provider, error) {
	switch kind {
	case KindNone:
		return nil, nil
	case KindRoute53:
		return NewRoute53(cfg)
	case KindChallTestSrv:
		return NewChallTestSrv(cfg)
	default:
		return nil, fmt.Errorf("unknown DNS-01 provider %q: want %q or %q", kind, KindRoute53, KindChallTestSrv)
	}
}

// UseResolvers makes lego's DNS lookups for DNS-01 (following CNAMEs of
// _acme-challenge names, finding a zone from its SOA, checking propagation)
// go to resolvers ("host:port"; port 53 when omitted) instead of those of
// /etc/resolv.conf. lego keeps them in a package variable, so the setting is
// process-wide: call it once, in main or TestMain. Offline, pass the
// challtestsrv DNS address so that no query leaves loopback.
func UseResolvers(resolvers []string) {
	if len(resolvers) == 0 {
		return
	}
	legodns01.NewChallenge(nil, nil, nil, legodns01.AddRecursiveNameservers(resolvers))
}
