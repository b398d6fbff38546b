package wiring

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/certflow/certflow/internal/account"
	"github.com/certflow/certflow/internal/acme"
	"github.com/certflow/certflow/internal/api"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/notify"
	"github.com/certflow/certflow/internal/principal"
)

// reasonCessationOfOperation is the RFC 5280 reason code given when the
// platform retires a domain.
const reasonCessationOfOperation = 5

// Environment variables of the API function.
const (
	// EnvTenantOperators lists the principal ARNs (comma-separated)
	// allowed to act for tenants (api.Config.Operators); empty: no one.
	EnvTenantOperators = "CERTFLOW_TENANT_OPERATORS"
	// EnvRequestCooldown is how long after a domain's item last changed
	// a request may start its next generation (a Go duration, default
	// DefaultRequestCooldown): the template gives it the failure backoff's
	// first wait, so a new generation's attempt is never closer to the
	// last one than the state machine's own attempts are.
	EnvRequestCooldown = "CERTFLOW_REQUEST_COOLDOWN"
	// EnvDelegationZone is the zone customers delegate "_acme-challenge"
	// to for DNS-01 (api.Validation.DelegationZone); empty: dns-01
	// requests are refused.
	EnvDelegationZone = "CERTFLOW_DELEGATION_ZONE"
	// EnvACMEProfiles lists the ACME profiles (comma-separated) a request
	// may name (api.Validation.Profiles).
	EnvACMEProfiles = "CERTFLOW_ACME_PROFILES"
)

// DefaultRequestCooldown is the request cooldown when
// CERTFLOW_REQUEST_COOLDOWN is unset: the template's default
// FailureBackoffBaseSeconds.
const DefaultRequestCooldown = 20 * time.Minute

// API builds functions/api, the certificates API (request, read, list,
// retire).
func API(_ context.Context, cfg aws.Config, logger *slog.Logger) (lambda.Handler, error) {
	cooldown, err := durationEnv(EnvRequestCooldown, DefaultRequestCooldown)
	if err != nil {
		return nil, err
	}
	st, err := newStarting(cfg, certstore.WithRequestCooldown(cooldown))
	if err != nil {
		return nil, err
	}
	names, err := namePolicy()
	if err != nil {
		return nil, err
	}
	operators, err := principal.ParseList(os.Getenv(EnvTenantOperators))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvTenantOperators, err)
	}
	bus, err := requireEnv(EnvEventBus, "the name or ARN of the event bus")
	if err != nil {
		return nil, err
	}
	c := api.Config{
		Requester:       st.store,
		Reconciler:      st.reconciler,
		Getter:          st.store,
		Lister:          st.store,
		Retirer:         st.store,
		Stopper:         st.sfn,
		StateMachineARN: st.arn,
		Publisher:       notify.New(eventbridge.NewFromConfig(cfg), bus, notify.Source),
		Names:           names,
		Operators:       operators,
		Validation: api.Validation{
			DelegationZone: strings.ToLower(strings.TrimSuffix(os.Getenv(EnvDelegationZone), ".")),
			Profiles: strings.FieldsFunc(os.Getenv(EnvACMEProfiles), func(r rune) bool {
				return r == ',' || unicode.IsSpace(r)
			}),
		},
	}
	// Revocation signs with the ACME account key the Issue function
	// registered and sealed under the KMS key (the API may decrypt it, not
	// create one: a new account could not revoke certificates of the old);
	// without the key, revoke requests answer 501.
	if keyID := os.Getenv(EnvKMSKeyID); keyID != "" {
		acmeCfg, err := acme.ConfigFromEnv()
		if err != nil {
			return nil, err
		}
		sealer := envelope.New(kms.NewFromConfig(cfg), keyID)
		lazy := acme.NewLazy(acmeCfg, account.New(dynamodb.NewFromConfig(cfg), st.table, sealer, nil))
		c.Revoker = revoker{lazy}
		c.Validation.Persist = persistIdentity{lazy}
	}
	h, err := api.New(c)
	if err != nil {
		return nil, err
	}
	return handler(logger, h.Handle), nil
}

// persistIdentity is what a DNS-PERSIST-01 record names: the primary CA's
// first issuer domain name (its directory's caaIdentities) and the
// account certflow orders with, registered on first use when the
// deployment has none yet.
type persistIdentity struct{ lazy *acme.Lazy }

func (p persistIdentity) PersistIdentity(ctx context.Context) (issuer, accountURI string, err error) {
	c, err := p.lazy.Client(ctx)
	if err != nil {
		return "", "", err
	}
	ids := c.CAAIdentities()
	if len(ids) == 0 {
		return "", "", fmt.Errorf("the CA at %s names no issuer domain name (directory meta.caaIdentities), which a DNS-PERSIST-01 record needs", c.DirectoryURL())
	}
	return ids[0], c.AccountURI(), nil
}

// revoker revokes through the ACME account, built on first use so that an
// unreachable CA fails a revocation rather than the cold start.
type revoker struct{ lazy *acme.Lazy }

func (r revoker) Revoke(ctx context.Context, certPEM []byte) error {
	c, err := r.lazy.Client(ctx)
	if err != nil {
		return err
	}
	return c.Revoke(ctx, certPEM, reasonCessationOfOperation)
}
