package acme

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"testing"
	"time"

	legoacme "github.com/go-acme/lego/v4/acme"

	"github.com/certflow/certflow/internal/failure"
)

// legoObtainError mirrors lego's resolver.obtainError (unexported): the
// per-domain failures of an order's authorizations.
type legoObtainError map[string]error

func (e legoObtainError) Error() string { return "error: one or more domains had a problem" }
func (e legoObtainError) Unwrap() []error {
	return slices.Collect(maps.Values(e))
}

// certificateObtainError builds what lego's certificate.obtainError.Join
// returns when finalization fails for the names of an order.
func certificateObtainError(errs map[string]error) error {
	var err error
	for d, e := range errs {
		err = errors.Join(err, fmt.Errorf("%s: %w", d, e))
	}
	return fmt.Errorf("error: one or more domains had a problem:\n%w", err)
}

// problem builds a problem document the way lego's sender does.
func problem(status int, typ, detail string) *legoacme.ProblemDetails {
	return &legoacme.ProblemDetails{
		Type:       "urn:ietf:params:acme:error:" + typ,
		Detail:     detail,
		HTTPStatus: status,
		Method:     "POST",
		URL:        "https://ca.test/acme/new-order",
	}
}

// invalidChallenge builds what lego's validate returns for a challenge the
// CA marked invalid.
func invalidChallenge(typ, detail string) error {
	return fmt.Errorf("invalid challenge: %w", &legoacme.ProblemDetails{
		Type:       "urn:ietf:params:acme:error:" + typ,
		Detail:     detail,
		HTTPStatus: 400,
	})
}

func TestClassify(t *testing.T) {
	now := time.Date(2026, 11, 21, 16, 0, 0, 0, time.UTC)
	unknown := errors.New("acme: error: 400 :: POST :: https://ca.test/acme/new-acct :: urn:ietf:params:acme:error:accountDoesNotExist :: no account")
	netErr := &url.Error{Op: "Post", URL: "https://ca.test/acme/new-order", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	const unpause = "https://portal.letsencrypt.org/sfe/v1/unpause?jwt=eyJhbGciOiJIUzI1NiJ9.eyJhY2NvdW50IjoxfQ.sig"

	tests := []struct {
		name           string
		err            error
		wantType       string // failure type name, "" = returned unchanged
		wantCode       string // Detail.Code when it is not the type's only one
		wantReason     string
		wantRetryAfter time.Duration
		wantUnpause    string
	}{
		{
			name: "rate limited with Retry-After header",
			err: &legoacme.RateLimitedError{
				ProblemDetails: problem(429, "rateLimited", "too many new orders (300) from this account in the last 3h0m0s"),
				RetryAfter:     "120",
			},
			wantType: "RateLimitedError", wantRetryAfter: 2 * time.Minute,
		},
		{
			name: "rate limited with retry after in the detail",
			err: &legoacme.RateLimitedError{ProblemDetails: problem(429, "rateLimited",
				"too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s, retry after 2026-11-21 18:30:00 UTC: see https://letsencrypt.org/docs/rate-limits/#new-certificates-per-exact-set-of-identifiers")},
			wantType: "RateLimitedError", wantRetryAfter: 150 * time.Minute,
		},
		{
			name:     "rate limited without any retry hint",
			err:      &legoacme.RateLimitedError{ProblemDetails: problem(429, "rateLimited", "too many failed authorizations")},
			wantType: "RateLimitedError", wantRetryAfter: time.Hour,
		},
		{
			name:     "rate limited as a plain problem (status other than 429)",
			err:      fmt.Errorf("wrapped: %w", problem(403, "rateLimited", "slow down")),
			wantType: "RateLimitedError", wantRetryAfter: time.Hour,
		},
		{
			name: "paused hostname",
			err: &legoacme.RateLimitedError{ProblemDetails: problem(429, "rateLimited",
				"Your account is temporarily prevented from requesting certificates for blog.customer.example and possibly others. Please visit: "+unpause+".")},
			wantType: "AccountPausedError", wantUnpause: unpause,
		},
		{
			name:     "challenge unauthorized",
			err:      legoObtainError{"blog.customer.example": invalidChallenge("unauthorized", `Invalid response from http://blog.customer.example/.well-known/acme-challenge/x: 404`)},
			wantType: "ChallengeFailedError",
		},
		{
			name:     "challenge connection",
			err:      legoObtainError{"blog.customer.example": invalidChallenge("connection", "Timeout during connect (likely firewall problem)")},
			wantType: "ChallengeFailedError",
		},
		{name: "challenge dns", err: legoObtainError{"a.example": invalidChallenge("dns", "NXDOMAIN looking up A")}, wantType: "ChallengeFailedError"},
		{name: "challenge tls", err: legoObtainError{"a.example": invalidChallenge("tls", "remote error")}, wantType: "ChallengeFailedError"},
		{name: "challenge incorrectResponse", err: legoObtainError{"a.example": invalidChallenge("incorrectResponse", "wrong")}, wantType: "ChallengeFailedError"},
		{name: "authorization invalid without a problem", err: legoObtainError{"a.example": errors.New("invalid authorization")}, wantType: "ChallengeFailedError"},
		{
			name: "one name rejected, one challenge failed: rejection wins",
			err: legoObtainError{
				"a.customer.example":       invalidChallenge("connection", "refused"),
				"blocked.customer.example": problem(400, "rejectedIdentifier", "blocked"),
			},
			wantType: "DomainRejectedError",
		},
		{name: "rejected identifier", err: problem(400, "rejectedIdentifier", "Error creating new order :: Cannot issue for \"blocked.customer.example\": The ACME server refuses to issue a certificate for this domain name, because it is forbidden by policy"), wantType: "DomainRejectedError"},
		{name: "caa", err: legoObtainError{"a.example": invalidChallenge("caa", "CAA record for a.example prevents issuance")}, wantType: "DomainRejectedError"},
		{name: "unsupported identifier", err: problem(400, "unsupportedIdentifier", "ip identifiers are not supported"), wantType: "DomainRejectedError"},
		{name: "malformed identifier", err: problem(400, "malformed", "Order included DNS identifier with a value containing an illegal character: '_'"), wantType: "DomainRejectedError"},
		{
			name: "rejected in a subproblem",
			err: &legoacme.ProblemDetails{
				Type: "urn:ietf:params:acme:error:malformed", Detail: "Some of the identifiers requested were rejected", HTTPStatus: 400,
				SubProblems: []legoacme.SubProblem{{
					Type: "urn:ietf:params:acme:error:rejectedIdentifier", Detail: "forbidden by policy",
					Identifier: legoacme.Identifier{Type: "dns", Value: "blocked.customer.example"},
				}},
			},
			wantType: "DomainRejectedError",
		},
		{name: "malformed request", err: problem(400, "malformed", "JWS verification error"), wantType: ""},
		{name: "bad nonce after retries", err: &legoacme.NonceError{ProblemDetails: problem(400, "badNonce", "JWS has an invalid anti-replay nonce")}, wantType: "TransientError", wantCode: failure.CodeCAError},
		{name: "server internal", err: problem(500, "serverInternal", "Error retrieving account"), wantType: "TransientError", wantCode: failure.CodeCAError},
		{name: "503 of unknown type", err: problem(503, "unavailable", "down for maintenance"), wantType: "TransientError", wantCode: failure.CodeCAError},
		{name: "503 without a problem document", err: &answerError{Status: 503, Method: "POST", URL: "https://ca.test/acme/new-order", Body: "<html>"}, wantType: "TransientError", wantCode: failure.CodeCAError},
		{name: "answer that is not JSON", err: fmt.Errorf("order: %w", &answerError{Status: 200, Method: "POST", URL: "https://ca.test/acme/order/1", Err: errors.New("invalid character '<'")}), wantType: "TransientError", wantCode: failure.CodeCAError},
		{name: "lego's 5xx without a problem document", err: fmt.Errorf("get directory at 'https://ca.test/dir': %w", fmt.Errorf("502 ::GET :: https://ca.test/dir :: %w :: <html>", errors.New("invalid character '<'"))), wantType: "TransientError", wantCode: failure.CodeCAError},
		{name: "account forgotten", err: problem(400, "accountDoesNotExist", "Account https://ca.test/acct/1 not found."), wantType: "TransientError", wantCode: failure.CodeCAError},
		{name: "connection refused", err: fmt.Errorf("get directory: %w", netErr), wantType: "TransientError", wantCode: failure.CodeCAUnreachable},
		{name: "url.Error of a TLS failure", err: &url.Error{Op: "Post", URL: "https://ca.test/acme/new-order", Err: errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority")}, wantType: "TransientError", wantCode: failure.CodeCAUnreachable},
		{name: "client timeout", err: &url.Error{Op: "Post", URL: "https://ca.test/acme/new-order", Err: fmt.Errorf("%w (Client.Timeout exceeded while awaiting headers)", context.DeadlineExceeded)}, wantType: "TransientError", wantCode: failure.CodeCAUnreachable},
		{name: "deadline", err: fmt.Errorf("poll: %w", context.DeadlineExceeded), wantType: "TransientError", wantCode: failure.CodeCAUnreachable},
		{name: "net.Error", err: &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, wantType: "TransientError", wantCode: failure.CodeCAUnreachable},
		{
			name:     "nonce fetch refused, flattened by go-jose",
			err:      errors.New(`failed to post JWS message: failed to sign content: failed to sign content: go-jose/go-jose: Error generating nonce: failed to get nonce from HTTP HEAD: Head "https://127.0.0.1:14000/nonce-plz": dial tcp 127.0.0.1:14000: connect: connection refused`),
			wantType: "TransientError", wantCode: failure.CodeCAUnreachable,
		},
		{name: "nonce fetch, no such host", err: errors.New(`go-jose/go-jose: Error generating nonce: Head "https://ca.invalid/nonce": dial tcp: lookup ca.invalid: no such host`), wantType: "TransientError", wantCode: failure.CodeCAUnreachable},
		{name: "i/o timeout as text", err: errors.New("dial tcp 10.0.0.1:443: i/o timeout"), wantType: "TransientError", wantCode: failure.CodeCAUnreachable},
		{name: "connection reset as text", err: errors.New("read tcp 127.0.0.1:5555->127.0.0.1:14000: read: connection reset by peer"), wantType: "TransientError", wantCode: failure.CodeCAUnreachable},
		{name: "EOF as text", err: errors.New(`Post "https://ca.test/acme/finalize/1": EOF`), wantType: "TransientError", wantCode: failure.CodeCAUnreachable},
		{name: "TLS handshake as text", err: errors.New("net/http: TLS handshake timeout"), wantType: "TransientError", wantCode: failure.CodeCAUnreachable},
		{name: "propagation timeout", err: legoObtainError{"*.a.example": errors.New("propagation: time limit exceeded: last error: NS 127.0.0.1:8053 did not return the expected TXT record")}, wantType: "TransientError", wantCode: failure.CodeDependencyError},
		{
			name:     "finalization failure wrapped per domain",
			err:      certificateObtainError(map[string]error{"a.example": problem(500, "serverInternal", "finalize failed"), "b.example": problem(500, "serverInternal", "finalize failed")}),
			wantType: "TransientError", wantCode: failure.CodeCAError,
		},
		{
			name:     "dns-persist-01 record missing",
			err:      authzErrors{"persist.example": invalidChallenge("unauthorized", "No TXT records found for DNS-PERSIST-01 challenge")},
			wantType: "ChallengeFailedError", wantReason: failure.ReasonPersistRecordMissing,
		},
		{
			name:     "dns-persist-01 record only for other CAs",
			err:      authzErrors{"persist.example": invalidChallenge("unauthorized", "No valid TXT record found for DNS-PERSIST-01 challenge")},
			wantType: "ChallengeFailedError", wantReason: failure.ReasonPersistRecordMissing,
		},
		{
			name: "dns-persist-01 record of another account",
			err: authzErrors{"persist.example": invalidChallenge("unauthorized",
				`Error parsing DNS-PERSIST-01 challenge TXT record with issuer-domain-name "pebble.letsencrypt.org": accounturi mismatch: expected "https://localhost:14700/my-account/3ac7", got "https://localhost:14700/my-account/5252"`)},
			wantType: "ChallengeFailedError", wantReason: failure.ReasonPersistRecordWrongAccount,
		},
		{
			name: "dns-persist-01 record without policy=wildcard",
			err: authzErrors{"*.persist.example": invalidChallenge("unauthorized",
				`Error parsing DNS-PERSIST-01 challenge TXT record with issuer-domain-name "pebble.letsencrypt.org": policy mismatch: expected "wildcard", got ""`)},
			wantType: "ChallengeFailedError", wantReason: failure.ReasonPersistRecordInvalid,
		},
		{
			name: "dns-persist-01 record malformed",
			err: authzErrors{"persist.example": invalidChallenge("malformed",
				`Error parsing DNS-PERSIST-01 challenge TXT record with issuer-domain-name "pebble.letsencrypt.org": duplicate parameter "accounturi"`)},
			wantType: "ChallengeFailedError", wantReason: failure.ReasonPersistRecordInvalid,
		},
		{name: "dns-persist-01 lookup failure has no reason", err: authzErrors{"persist.example": invalidChallenge("unauthorized", "Error retrieving TXT records for DNS-PERSIST-01 challenge: SERVFAIL")}, wantType: "ChallengeFailedError"},
		{name: "already replaced", err: &legoacme.AlreadyReplacedError{ProblemDetails: problem(409, "alreadyReplaced", "certificate with serial 0abc already has a replacement order")}, wantType: ""},
		{name: "unknown", err: unknown, wantType: ""},
		{name: "already classified", err: fmt.Errorf("ctx: %w", &failure.InvalidInputError{Message: "x"}), wantType: "InvalidInputError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.err, now)
			if !wraps(got, tt.err) {
				t.Errorf("Classify(%v) = %v, which does not wrap the original error", tt.err, got)
			}
			f, ok := failure.Find(got)
			gotType := ""
			if ok {
				gotType = failure.TypeName(f)
			}
			if gotType != tt.wantType {
				t.Fatalf("Classify(%v) = %T %v, want type %q", tt.err, got, got, tt.wantType)
			}
			if !ok {
				return
			}
			d := f.Detail()
			if d.Message == "" {
				t.Errorf("Classify(%v) has an empty message", tt.err)
			}
			if want := int64(tt.wantRetryAfter / time.Second); d.RetryAfterSeconds != want {
				t.Errorf("Classify(%v) RetryAfterSeconds = %d, want %d", tt.err, d.RetryAfterSeconds, want)
			}
			if d.UnpauseURL != tt.wantUnpause {
				t.Errorf("Classify(%v) UnpauseURL = %q, want %q", tt.err, d.UnpauseURL, tt.wantUnpause)
			}
			if tt.wantCode != "" && d.Code != tt.wantCode {
				t.Errorf("Classify(%v) Code = %q, want %q", tt.err, d.Code, tt.wantCode)
			}
			if d.Code == failure.CodeTransient {
				t.Errorf("Classify(%v) Code = %q: every transient failure of the CA says whose fault it is", tt.err, d.Code)
			}
			if d.Reason != tt.wantReason {
				t.Errorf("Classify(%v) Reason = %q, want %q", tt.err, d.Reason, tt.wantReason)
			}
		})
	}
	if Classify(nil, now) != nil {
		t.Error("Classify(nil) != nil")
	}
}

func TestReplacesRefused(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"already replaced", &legoacme.AlreadyReplacedError{ProblemDetails: problem(409, "alreadyReplaced", "cert already replaced")}, true},
		{"already replaced, other status", problem(400, "alreadyReplaced", "cert already replaced"), true},
		{"boulder unknown certificate", problem(400, "malformed", "unable to find certificate matching the provided certID"), true},
		{"boulder conflict", problem(409, "conflict", "cannot indicate an order replaces a certificate which already has a replacement order"), true},
		{"pebble unknown certificate", problem(500, "serverInternal", "could not find an order for the given certificate: could not find order resulting in the given certificate serial number"), true},
		{"pebble no shared identifier", problem(500, "serverInternal", "at least one identifier in the new order and existing order must match"), true},
		{"pebble certificate of another account", problem(403, "unauthorized", "requester account did not request the certificate being replaced by this order"), true},
		{"pebble unparsable", problem(400, "malformed", "parsing ARI CertID failed: illegal base64 data"), true},
		{"account deactivated", problem(403, "unauthorized", "Account has been deactivated"), false},
		{"server internal", problem(500, "serverInternal", "Error creating new order"), false},
		{"rejected identifier", problem(400, "rejectedIdentifier", "forbidden by policy"), false},
		{"rate limited", &legoacme.RateLimitedError{ProblemDetails: problem(429, "rateLimited", "too many new orders")}, false},
		{"not a problem", errors.New("replace"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replacesRefused(fmt.Errorf("wrapped: %w", tt.err)); got != tt.want {
				t.Errorf("replacesRefused(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestClassifySolverErrors classifies the errors of the package's own
// validation the way lego's are.
func TestClassifySolverErrors(t *testing.T) {
	now := time.Now()
	tests := []struct {
		err  error
		want string
	}{
		{authzErrors{"a.example": fmt.Errorf("[a.example] http-01 challenge invalid: %w", problem(403, "unauthorized", "404"))}, "ChallengeFailedError"},
		{authzErrors{"a.example": fmt.Errorf("[a.example] dns-01 challenge invalid: %w", problem(400, "dns", "NXDOMAIN"))}, "ChallengeFailedError"},
		{authzErrors{"a.example": errors.New("invalid authorization")}, "ChallengeFailedError"},
		{authzErrors{"a.example": &failure.TransientError{Code: failure.CodeStepTimeout, Message: "deadline"}}, "TransientError"},
		{authzErrors{"a.example": fmt.Errorf("[a.example] poll authorization: %w", &legoacme.NonceError{ProblemDetails: problem(400, "badNonce", "x")})}, "TransientError"},
		{authzErrors{"a.example": &failure.InvalidInputError{Message: "a.example: the CA offers no dns-persist-01 challenge"}}, "InvalidInputError"},
	}
	for _, tt := range tests {
		f, ok := failure.Find(Classify(tt.err, now))
		if !ok || failure.TypeName(f) != tt.want {
			t.Errorf("Classify(%v) = %v, want %s", tt.err, f, tt.want)
		}
	}
}

// wraps reports whether got still holds want (a map error, not
// comparable, is looked for by type).
func wraps(got, want error) bool {
	switch want.(type) {
	case legoObtainError:
		var m legoObtainError
		return errors.As(got, &m)
	case authzErrors:
		var m authzErrors
		return errors.As(got, &m)
	}
	return errors.Is(got, want)
}

// TestNotSent: only a request that certainly never reached the CA is
// NotSent; newOrder may have created an order otherwise.
func TestNotSent(t *testing.T) {
	dial := &url.Error{Op: "Post", URL: "https://ca.example/new-order", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	read := &url.Error{Op: "Post", URL: "https://ca.example/new-order", Err: &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", Classify(fmt.Errorf("place order: %w", dial), time.Now()), true},
		{"phase not begun", &failure.TransientError{Code: failure.CodeStepTimeout, Message: "10s left", Err: errNotSent}, true},
		{"connection reset after sending", Classify(read, time.Now()), false},
		{"the CA answered", &failure.RateLimitedError{Message: "too many"}, false},
		{"timeout", context.DeadlineExceeded, false},
	}
	for _, tt := range tests {
		if got := NotSent(tt.err); got != tt.want {
			t.Errorf("NotSent(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
