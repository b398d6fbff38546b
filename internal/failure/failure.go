// Package failure defines the failures the issuance state machine decides on.
//
// Each failure class is a Go type whose name is the Lambda errorType that the
// state machine's Retry and Catch fields match (aws-lambda-go reports the Go
// type name of a returned error). The types carry a Detail with a stable
// machine-readable code, a message for people, and the data the state
// machine needs (the CA's Retry-After, an unpause link).
package failure

import (
	"errors"
	"time"
)

// Stable codes recorded on certificate items, in events and in API answers.
const (
	CodeRateLimited      = "rate_limited"
	CodeAccountPaused    = "account_paused"
	CodeChallengeFailed  = "challenge_failed"
	CodeDomainRejected   = "domain_rejected"
	CodeTransient        = "transient"
	CodeDomainNotPointed = "domain_not_pointed"
	CodeCAAForbidden     = "caa_forbidden"
	CodeInvalidInput     = "invalid_input"
	CodeDomainRetired    = "domain_retired"
	CodeInternal         = "internal"
)

// Detail is what every failure carries. It is also the JSON errorMessage of a
// failed Lambda invocation, so the state machine's Cause is machine-readable.
type Detail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfterSeconds is the CA's Retry-After, for rate limits.
	RetryAfterSeconds int64 `json:"retryAfterSeconds,omitempty"`
	// UnpauseURL is the link an operator follows to unpause a hostname.
	UnpauseURL string `json:"unpauseURL,omitempty"`
}

// RateLimitedError means the CA refused the request for a rate limit that
// will lift: wait RetryAfter, then try again.
type RateLimitedError struct {
	Message    string
	RetryAfter time.Duration
	Err        error
}

func (e *RateLimitedError) Error() string { return "rate limited: " + e.Message }
func (e *RateLimitedError) Unwrap() error { return e.Err }

// Detail implements Failure.
func (e *RateLimitedError) Detail() Detail {
	return Detail{Code: CodeRateLimited, Message: e.Message, RetryAfterSeconds: int64(e.RetryAfter.Round(time.Second) / time.Second)}
}

// AccountPausedError means the CA paused issuance for this hostname and
// account after too many failures; only an operator following UnpauseURL
// lifts it.
type AccountPausedError struct {
	Message    string
	UnpauseURL string
	Err        error
}

func (e *AccountPausedError) Error() string { return "issuance paused by the CA: " + e.Message }
func (e *AccountPausedError) Unwrap() error { return e.Err }

// Detail implements Failure.
func (e *AccountPausedError) Detail() Detail {
	return Detail{Code: CodeAccountPaused, Message: e.Message, UnpauseURL: e.UnpauseURL}
}

// ChallengeFailedError means the CA could not validate control of the name
// (unauthorized, connection, dns, tls problems).
type ChallengeFailedError struct {
	Message string
	Err     error
}

func (e *ChallengeFailedError) Error() string { return "challenge failed: " + e.Message }
func (e *ChallengeFailedError) Unwrap() error { return e.Err }

// Detail implements Failure.
func (e *ChallengeFailedError) Detail() Detail {
	return Detail{Code: CodeChallengeFailed, Message: e.Message}
}

// DomainRejectedError means the CA will not issue for the name at all
// (rejectedIdentifier, caa): retrying cannot help.
type DomainRejectedError struct {
	Message string
	Err     error
}

func (e *DomainRejectedError) Error() string { return "domain rejected by the CA: " + e.Message }
func (e *DomainRejectedError) Unwrap() error { return e.Err }

// Detail implements Failure.
func (e *DomainRejectedError) Detail() Detail {
	return Detail{Code: CodeDomainRejected, Message: e.Message}
}

// TransientError is a failure that an immediate retry with backoff is likely
// to cure (badNonce, serverInternal, network, throttled AWS calls).
type TransientError struct {
	Message string
	Err     error
}

func (e *TransientError) Error() string { return "transient failure: " + e.Message }
func (e *TransientError) Unwrap() error { return e.Err }

// Detail implements Failure.
func (e *TransientError) Detail() Detail {
	return Detail{Code: CodeTransient, Message: e.Message}
}

// DomainNotPointedError means the name does not resolve to the platform's
// edge, so an ACME order would only burn the CA's failure limits.
type DomainNotPointedError struct {
	Message string
	Err     error
}

func (e *DomainNotPointedError) Error() string { return "domain not pointed at the edge: " + e.Message }
func (e *DomainNotPointedError) Unwrap() error { return e.Err }

// Detail implements Failure.
func (e *DomainNotPointedError) Detail() Detail {
	return Detail{Code: CodeDomainNotPointed, Message: e.Message}
}

// CAAForbiddenError means the name's CAA records do not allow the CA.
type CAAForbiddenError struct {
	Message string
	Err     error
}

func (e *CAAForbiddenError) Error() string { return "CAA forbids the CA: " + e.Message }
func (e *CAAForbiddenError) Unwrap() error { return e.Err }

// Detail implements Failure.
func (e *CAAForbiddenError) Detail() Detail {
	return Detail{Code: CodeCAAForbidden, Message: e.Message}
}

// InvalidInputError means the request itself is wrong; nothing was changed.
type InvalidInputError struct {
	Message string
	Err     error
}

func (e *InvalidInputError) Error() string { return "invalid input: " + e.Message }
func (e *InvalidInputError) Unwrap() error { return e.Err }

// Detail implements Failure.
func (e *InvalidInputError) Detail() Detail {
	return Detail{Code: CodeInvalidInput, Message: e.Message}
}

// DomainRetiredError means the platform retired the domain while work on
// it was under way: nothing more is to be done, and nothing is recorded.
type DomainRetiredError struct {
	Message string
	Err     error
}

func (e *DomainRetiredError) Error() string { return "domain retired: " + e.Message }
func (e *DomainRetiredError) Unwrap() error { return e.Err }

// Detail implements Failure.
func (e *DomainRetiredError) Detail() Detail {
	return Detail{Code: CodeDomainRetired, Message: e.Message}
}

// Failure is implemented by every failure type of this package.
type Failure interface {
	error
	Detail() Detail
}

var (
	_ Failure = (*RateLimitedError)(nil)
	_ Failure = (*AccountPausedError)(nil)
	_ Failure = (*ChallengeFailedError)(nil)
	_ Failure = (*DomainRejectedError)(nil)
	_ Failure = (*TransientError)(nil)
	_ Failure = (*DomainNotPointedError)(nil)
	_ Failure = (*CAAForbiddenError)(nil)
	_ Failure = (*InvalidInputError)(nil)
	_ Failure = (*DomainRetiredError)(nil)
)

// Find returns the first Failure in err's chain.
func Find(err error) (Failure, bool) {
	var f Failure
	if errors.As(err, &f) {
		return f, true
	}
	return nil, false
}
