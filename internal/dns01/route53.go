package dns01

import (
	"fmt"
	"time"

	awsroute53 "github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/go-acme/lego/v4/providers/dns/route53"
)

// NewRoute53 builds lego's Route 53 provider on a client made from cfg.AWS,
// so that credentials, region and endpoint overrides are those of the
// function (AWS_ENDPOINT_URL_ROUTE53 or cfg.Route53Endpoint offline).
func NewRoute53(cfg Config) (*route53.DNSProvider, error) {
	client := awsroute53.NewFromConfig(cfg.AWS, func(o *awsroute53.Options) {
		if cfg.Route53Endpoint != "" {
			o.BaseEndpoint = &cfg.Route53Endpoint
		}
		if o.Region == "" {
			// Route 53 is global; the SDK still needs a signing region.
			o.Region = "us-east-1"
		}
	})
	rc := route53.NewDefaultConfig()
	rc.Client = client
	rc.HostedZoneID = cfg.HostedZoneID
	rc.WaitForRecordSetsChanged = cfg.WaitForChange
	rc.PropagationTimeout = durationOr(cfg.PropagationTimeout, 2*time.Minute)
	rc.PollingInterval = durationOr(cfg.PollingInterval, 4*time.Second)
	p, err := route53.NewDNSProviderConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("build Route 53 DNS-01 provider: %w", err)
	}
	return p, nil
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
