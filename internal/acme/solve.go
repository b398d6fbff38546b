package acme

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	legoacme "github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"
	"github.com/go-acme/lego/v4/challenge"
	legodns01 "github.com/go-acme/lego/v4/challenge/dns01"
	legohttp01 "github.com/go-acme/lego/v4/challenge/http01"
	"golang.org/x/sync/errgroup"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/validation"
)

// Method is how control of the names of an order is proved; package
// validation owns the names.
type Method = validation.Method

// The methods Authorize takes.
const (
	// MethodHTTP01 serves a token over HTTP (Config.HTTP01). Wildcard
	// names, which HTTP-01 cannot prove, use DNS-01.
	MethodHTTP01 = validation.HTTP01
	// MethodDNS01 publishes a TXT record per validation (Config.DNS01),
	// following a CNAME to the platform's delegation zone.
	MethodDNS01 = validation.DNS01
	// MethodDNSPersist01 relies on the standing TXT record the customer
	// publishes once (validation.Persist): nothing is written per order.
	MethodDNSPersist01 = validation.DNSPersist01
)

// authz is an authorization of an order (RFC 8555 section 7.1.4) and its
// URL.
type authz struct {
	url string
	legoacme.Authorization
}

func (a authz) name() string { return challenge.GetTargetedDomain(a.Authorization) }

// Authorize proves control of every name of o with m: each pending
// authorization is validated, in parallel; valid ones (reused by the CA,
// or validated by an earlier attempt) are skipped, and one whose
// challenge an earlier attempt submitted is only waited for. It polls as
// the CA asks. An order already ready or further needs nothing.
//
// HTTP-01 and DNS-01 go through lego's challenge types with the
// configured providers; DNS-01 records are all published first (a
// wildcard and its base name share a record name), checked for
// propagation, validated in parallel, and removed once every name is
// done. dns-persist-01 writes nothing: its challenge is only submitted.
//
// A failed validation is a *failure.ChallengeFailedError (for
// dns-persist-01 with a Reason); when names fail differently, the most
// decisive failure wins (see Classify).
func (c *Client) Authorize(ctx context.Context, o Order, m Method) error {
	switch m {
	case MethodHTTP01, MethodDNS01, MethodDNSPersist01:
	default:
		return &failure.InvalidInputError{Message: fmt.Sprintf("unknown validation method %q", m)}
	}
	if err := c.enough(ctx, "authorize"); err != nil {
		return err
	}
	id, err := c.orderIdentity(o)
	if err != nil {
		return err
	}
	st, _, err := c.getOrder(ctx, id, o)
	if err != nil {
		return err
	}
	switch st.Status {
	case StatusReady, StatusProcessing, StatusValid:
		return nil
	case StatusInvalid:
		return fmt.Errorf("authorize: %w", st.Problem)
	}
	authzs, err := c.authorizations(ctx, id, o, st.Authorizations)
	if err != nil {
		return err
	}
	if err := c.solve(ctx, id, authzs, m); err != nil {
		if accountGone(err) {
			return c.orderFailed(ctx, id, o, err)
		}
		return fmt.Errorf("authorize %s: %w", strings.Join(o.Names, ", "), Classify(err, c.now()))
	}
	return nil
}

// authorizations fetches the authorizations of o, in parallel.
func (c *Client) authorizations(ctx context.Context, id *identity, o Order, urls []string) ([]authz, error) {
	out := make([]authz, len(urls))
	g, gctx := errgroup.WithContext(ctx)
	for i, u := range urls {
		g.Go(func() error {
			r, err := c.poster.postAsGet(gctx, id.signer(), u, "")
			if err != nil {
				return c.orderFailed(ctx, id, o, err)
			}
			out[i].url = u
			if err := r.decode(&out[i].Authorization); err != nil {
				return fmt.Errorf("authorization %s: %w", u, Classify(err, c.now()))
			}
			return nil
		})
	}
	return out, g.Wait()
}

// solve validates the pending authorizations of an order, returning
// authzErrors when any fails.
func (c *Client) solve(ctx context.Context, id *identity, authzs []authz, m Method) error {
	var (
		mu       sync.Mutex
		failures = authzErrors{}
		http01   []authz
		dns01    []authz
		persist  []authz
		waiting  []authz
	)
	fail := func(a authz, err error) {
		mu.Lock()
		failures[a.name()] = err
		mu.Unlock()
	}
	for _, a := range authzs {
		switch a.Status {
		case StatusValid:
			continue
		case StatusPending:
		case StatusInvalid:
			fail(a, invalidAuthz(a.Authorization))
			continue
		default: // deactivated, expired, revoked
			fail(a, fmt.Errorf("[%s] authorization is %s: %w", a.name(), a.Status, ErrOrderGone))
			continue
		}
		if submitted(a.Authorization) {
			waiting = append(waiting, a)
			continue
		}
		typ, err := c.challengeType(a, m)
		if err != nil {
			fail(a, err)
			continue
		}
		switch typ {
		case challenge.HTTP01:
			http01 = append(http01, a)
		case challenge.DNS01:
			dns01 = append(dns01, a)
		default:
			persist = append(persist, a)
		}
	}

	// DNS-01 records are all published first and removed only once every
	// name is done.
	type presented struct {
		authz
		chlg *legodns01.Challenge
	}
	var published []presented
	for _, a := range dns01 {
		chlg := legodns01.NewChallenge(id.core, c.validator(ctx, id, a), c.cfg.DNS01, c.dnsOptions(ctx)...)
		if err := chlg.PreSolve(a.Authorization); err != nil {
			fail(a, err)
			continue
		}
		published = append(published, presented{a, chlg})
	}
	defer func() {
		for _, p := range published {
			_ = p.chlg.CleanUp(p.Authorization) // best effort, like lego; records are inert once validated
		}
	}()

	var wg sync.WaitGroup
	for _, a := range http01 {
		wg.Go(func() {
			if err := legohttp01.NewChallenge(id.core, c.validator(ctx, id, a), c.cfg.HTTP01).Solve(a.Authorization); err != nil {
				fail(a, err)
			}
		})
	}
	for _, p := range published {
		wg.Go(func() {
			if err := p.chlg.Solve(p.Authorization); err != nil {
				fail(p.authz, err)
			}
		})
	}
	for _, a := range persist {
		wg.Go(func() {
			chlg, _ := challenge.FindChallenge(challengeDNSPersist01, a.Authorization)
			if err := c.validate(ctx, id, a, chlg.URL); err != nil {
				fail(a, err)
			}
		})
	}
	for _, a := range waiting {
		wg.Go(func() {
			if err := c.waitAuthz(ctx, id, a, ""); err != nil {
				fail(a, err)
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		return failures
	}
	return nil
}

// submitted reports whether a challenge of a pending authorization was
// submitted already (by an earlier attempt): the CA is validating it.
func submitted(a legoacme.Authorization) bool {
	return slices.ContainsFunc(a.Challenges, func(ch legoacme.Challenge) bool {
		return ch.Status == StatusProcessing || ch.Status == StatusValid
	})
}

// challengeType returns the challenge that proves a with m: for
// MethodHTTP01, DNS-01 when a is a wildcard. The CA must offer it and the
// provider be configured, else the authorization fails with an
// InvalidInputError.
func (c *Client) challengeType(a authz, m Method) (challenge.Type, error) {
	typ := challenge.Type(m)
	if m == MethodHTTP01 && a.Wildcard {
		typ = challenge.DNS01
	}
	switch {
	case typ == challenge.HTTP01 && c.cfg.HTTP01 == nil, typ == challenge.DNS01 && c.cfg.DNS01 == nil:
		return "", &failure.InvalidInputError{Message: fmt.Sprintf("%s: %s is not configured", a.name(), typ)}
	}
	if _, err := challenge.FindChallenge(typ, a.Authorization); err != nil {
		return "", &failure.InvalidInputError{Message: fmt.Sprintf("%s: the CA offers no %s challenge", a.name(), typ)}
	}
	return typ, nil
}

// dnsOptions are the options of lego's DNS-01 challenge: the propagation
// check stops when ctx ends, and when resolvers are configured, a record
// they all see is enough.
func (c *Client) dnsOptions(ctx context.Context) []legodns01.ChallengeOption {
	opts := []legodns01.ChallengeOption{
		legodns01.WrapPreCheck(func(_, fqdn, value string, check legodns01.PreCheckFunc) (bool, error) {
			if err := ctx.Err(); err != nil {
				return true, cut(ctx, "DNS-01 propagation of "+fqdn, err)
			}
			return check(fqdn, value)
		}),
	}
	if len(c.cfg.DNSResolvers) > 0 {
		opts = append(opts,
			legodns01.RecursiveNSsPropagationRequirement(),
			legodns01.DisableAuthoritativeNssPropagationRequirement(),
		)
	}
	return opts
}

// validator is the validation step of lego's challenge types for a: the
// challenge is submitted through the client, with ctx.
func (c *Client) validator(ctx context.Context, id *identity, a authz) func(*api.Core, string, legoacme.Challenge) error {
	return func(_ *api.Core, _ string, chlg legoacme.Challenge) error {
		return c.validate(ctx, id, a, chlg.URL)
	}
}

// validate submits a challenge of a (POST {}, RFC 8555 section 7.5.1) and
// waits for the CA's verdict on a.
func (c *Client) validate(ctx context.Context, id *identity, a authz, chURL string) error {
	r, err := c.poster.postJSON(ctx, id.signer(), chURL, struct{}{})
	if err != nil {
		return fmt.Errorf("[%s] submit challenge: %w", a.name(), err)
	}
	var ch legoacme.Challenge
	if err := r.decode(&ch); err != nil {
		return fmt.Errorf("[%s] submit challenge: %w", a.name(), err)
	}
	switch ch.Status {
	case StatusValid:
		return nil
	case StatusInvalid:
		return challengeFailed(a.name(), ch)
	}
	return c.waitAuthz(ctx, id, a, r.retryAfter())
}

// waitAuthz polls a until the CA decides; ra is the Retry-After of the
// answer that started the wait.
func (c *Client) waitAuthz(ctx context.Context, id *identity, a authz, ra string) error {
	return c.poll.until(ctx, "validation of "+a.name(), ra, func(ctx context.Context) (bool, string, error) {
		r, err := c.poster.postAsGet(ctx, id.signer(), a.url, "")
		if err != nil {
			return false, "", fmt.Errorf("[%s] poll authorization: %w", a.name(), err)
		}
		var got legoacme.Authorization
		if err := r.decode(&got); err != nil {
			return false, "", fmt.Errorf("[%s] poll authorization: %w", a.name(), err)
		}
		switch got.Status {
		case StatusValid:
			return true, "", nil
		case StatusPending:
			return false, r.retryAfter(), nil
		case StatusInvalid:
			return true, "", invalidAuthz(got)
		}
		return true, "", fmt.Errorf("[%s] authorization is %s: %w", a.name(), got.Status, ErrOrderGone)
	})
}

// invalidAuthz returns the failure of an invalid authorization: the
// problem of its invalid challenge.
func invalidAuthz(a legoacme.Authorization) error {
	for _, ch := range a.Challenges {
		if ch.Status == StatusInvalid && ch.Error != nil {
			return challengeFailed(challenge.GetTargetedDomain(a), ch)
		}
	}
	return errors.New("invalid authorization")
}

func challengeFailed(name string, ch legoacme.Challenge) error {
	if ch.Error == nil {
		return errors.New("invalid authorization")
	}
	return fmt.Errorf("[%s] %s challenge invalid: %w", name, ch.Type, ch.Error)
}

// authzErrors holds the failures of an order's authorizations by name
// (errors.As and Classify find each one).
type authzErrors map[string]error

func (e authzErrors) Error() string {
	names := make([]string, 0, len(e))
	for n := range e {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("one or more names failed validation:")
	for _, n := range names {
		fmt.Fprintf(&b, " [%s] %v;", n, e[n])
	}
	return strings.TrimSuffix(b.String(), ";")
}

func (e authzErrors) Unwrap() []error {
	out := make([]error, 0, len(e))
	for _, err := range e {
		out = append(out, err)
	}
	return out
}
