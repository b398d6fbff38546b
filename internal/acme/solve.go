package acme

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	legoacme "github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"
	"github.com/go-acme/lego/v4/challenge"
	legodns01 "github.com/go-acme/lego/v4/challenge/dns01"
	legohttp01 "github.com/go-acme/lego/v4/challenge/http01"
)

// Polling of an authorization after its challenge was submitted. lego's own
// resolver waits the challenge's Retry-After or 5 seconds before the first
// look, and solves names one after the other; Let's Encrypt sends no
// Retry-After and usually validates within a second or two. solver polls
// early and backs off, and solves the names of an order in parallel.
const (
	firstPoll       = 250 * time.Millisecond
	maxPoll         = 2 * time.Second
	validateTimeout = 2 * time.Minute
)

// solver resolves the authorizations of an order for lego's Certifier with
// lego's HTTP-01 and DNS-01 challenge types: HTTP-01 where the CA offers it,
// DNS-01 otherwise (wildcard names).
type solver struct {
	http01 *legohttp01.Challenge
	dns01  *legodns01.Challenge // nil: no DNS-01 provider
}

func newSolver(core *api.Core, cfg Config) *solver {
	s := &solver{http01: legohttp01.NewChallenge(core, validate, cfg.HTTP01)}
	if cfg.DNS01 != nil {
		var opts []legodns01.ChallengeOption
		if len(cfg.DNSResolvers) > 0 {
			opts = append(opts,
				legodns01.AddRecursiveNameservers(cfg.DNSResolvers),
				legodns01.RecursiveNSsPropagationRequirement(),
				legodns01.DisableAuthoritativeNssPropagationRequirement(),
			)
		}
		s.dns01 = legodns01.NewChallenge(core, validate, cfg.DNS01, opts...)
	}
	return s
}

// authzErrors holds the failures of an order's authorizations by name, as
// lego's resolver reports them (errors.As finds each one).
type authzErrors map[string]error

func (e authzErrors) Error() string {
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range e {
			if !yield(n) {
				return
			}
		}
	})
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

// Solve implements lego's resolver: it validates every pending
// authorization and returns authzErrors when any fails.
func (s *solver) Solve(authzs []legoacme.Authorization) error {
	var (
		mu       sync.Mutex
		failures = authzErrors{}
		httpAZ   []legoacme.Authorization
		dnsAZ    []legoacme.Authorization
	)
	fail := func(authz legoacme.Authorization, err error) {
		mu.Lock()
		failures[challenge.GetTargetedDomain(authz)] = err
		mu.Unlock()
	}
	for _, authz := range authzs {
		if authz.Status == legoacme.StatusValid {
			continue // reused authorization
		}
		switch {
		case offers(authz, challenge.HTTP01):
			httpAZ = append(httpAZ, authz)
		case offers(authz, challenge.DNS01) && s.dns01 != nil:
			dnsAZ = append(dnsAZ, authz)
		default:
			fail(authz, fmt.Errorf("[%s] no challenge the CA offers can be solved", challenge.GetTargetedDomain(authz)))
		}
	}

	// DNS-01 records are all published first (a wildcard and its base name
	// share one record name) and removed only once every name is done.
	var presented []legoacme.Authorization
	for _, authz := range dnsAZ {
		if err := s.dns01.PreSolve(authz); err != nil {
			fail(authz, err)
			continue
		}
		presented = append(presented, authz)
	}
	defer func() {
		for _, authz := range presented {
			_ = s.dns01.CleanUp(authz) // best effort, like lego; records are inert once validated
		}
	}()

	var wg sync.WaitGroup
	for _, authz := range httpAZ {
		wg.Go(func() {
			if err := s.http01.Solve(authz); err != nil {
				fail(authz, err)
			}
		})
	}
	for _, authz := range presented {
		wg.Go(func() {
			if err := s.dns01.Solve(authz); err != nil {
				fail(authz, err)
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		return failures
	}
	return nil
}

func offers(authz legoacme.Authorization, typ challenge.Type) bool {
	_, err := challenge.FindChallenge(typ, authz)
	return err == nil
}

// validate submits a challenge and polls its authorization until the CA
// decides. Its errors wrap the CA's problem documents for Classify.
func validate(core *api.Core, domain string, chlg legoacme.Challenge) error {
	c, err := core.Challenges.New(chlg.URL)
	if err != nil {
		return fmt.Errorf("[%s] initiate challenge: %w", domain, err)
	}
	switch c.Status {
	case legoacme.StatusValid:
		return nil
	case legoacme.StatusInvalid:
		return fmt.Errorf("[%s] invalid challenge: %w", domain, problemOrNil(c.Error))
	}
	delay := firstPoll
	if d, err := api.ParseRetryAfter(c.RetryAfter); err == nil && d > 0 {
		delay = d // the CA asked for it
	}
	deadline := time.Now().Add(validateTimeout)
	for {
		time.Sleep(delay)
		authz, err := core.Authorizations.Get(c.AuthorizationURL)
		if err != nil {
			return fmt.Errorf("[%s] poll authorization: %w", domain, err)
		}
		switch authz.Status {
		case legoacme.StatusValid:
			return nil
		case legoacme.StatusPending, legoacme.StatusProcessing:
		case legoacme.StatusInvalid:
			for _, ch := range authz.Challenges {
				if ch.Status == legoacme.StatusInvalid && ch.Error != nil {
					return fmt.Errorf("[%s] invalid authorization: %w", domain, ch.Error)
				}
			}
			return errors.New("invalid authorization")
		default:
			return fmt.Errorf("[%s] authorization is %s", domain, authz.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("[%s] the server didn't respond to our request (status=%s): time limit exceeded", domain, authz.Status)
		}
		delay = min(2*delay, maxPoll)
	}
}

// problemOrNil keeps a nil *ProblemDetails from becoming a non-nil error.
func problemOrNil(p *legoacme.ProblemDetails) error {
	if p == nil {
		return errors.New("no problem document")
	}
	return p
}
