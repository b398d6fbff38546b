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
//
// Whose fault a failure is decides what the state machine does with it:
// evidence about the domain itself (not pointed, challenge failed while the
// CA answered, CAA, rejected name, paused hostname) counts towards its
// quarantine; the CA or certflow's own dependencies failing (the CA
// unreachable or erroring, AWS services, a step timing out) never does, and
// is retried for as long as it takes.
const (
	CodeRateLimited      = "rate_limited"
	CodeAccountPaused    = "account_paused"
	CodeChallengeFailed  = "challenge_failed"
	CodeDomainRejected   = "domain_rejected"
	CodeDomainNotPointed = "domain_not_pointed"
	CodeCAAForbidden     = "caa_forbidden"
	CodeInvalidInput     = "invalid_input"
	CodeDomainRetired    = "domain_retired"
	CodeSuperseded       = "superseded"
	CodeNeedsOrderSlot   = "needs_order_slot"
	CodeReplacesRefused  = "replaces_refused"

	// CodeCAUnreachable: the CA could not be reached or did not answer in
	// time (connection refused or reset, DNS, TLS, timeouts).
	CodeCAUnreachable = "ca_unreachable"
	// CodeCAError: the CA answered with a failure of its own (5xx,
	// serverInternal, badNonce, an unreadable answer).
	CodeCAError = "ca_error"
	// CodeDependencyError: a service certflow depends on failed (DynamoDB,
	// KMS, Step Functions, EventBridge, the DNS resolver of preflight).
	CodeDependencyError = "dependency_error"
	// CodeStepTimeout: a step ran out of time (the Lambda function or the
	// state's TimeoutSeconds).
	CodeStepTimeout = "step_timeout"
	// CodeIssueInProgress: another Issue invocation is working on the
	// domain's order (its execution ended while it ran); the order is
	// resumed once that invocation ends.
	CodeIssueInProgress = "issue_in_progress"
	// CodeTransient: retryable, cause not known more precisely.
	CodeTransient = "transient"
	// CodeInternal: a defect of certflow's own; never the CA's or the
	// domain's.
	CodeInternal = "internal"
)

// Reasons refine CodeChallengeFailed when the CA's verdict names the
// cause precisely (Detail.Reason). They concern the standing TXT record of
// dns-persist-01, which the customer publishes and only the customer can
// fix.
const (
	// ReasonPersistRecordMissing: the CA found no record for itself at
	// _validation-persist.<domain>.
	ReasonPersistRecordMissing = "persist_record_missing"
	// ReasonPersistRecordWrongAccount: the record names another ACME
	// account (accounturi).
	ReasonPersistRecordWrongAccount = "persist_record_wrong_account"
	// ReasonPersistRecordInvalid: the record is there but unusable (syntax,
	// no policy=wildcard for a wildcard name, persistUntil passed).
	ReasonPersistRecordInvalid = "persist_record_invalid"
)

// CountsAgainstDomain reports whether a failure with code is evidence
// about the domain itself, and so counts towards its quarantine.
func CountsAgainstDomain(code string) bool {
	switch code {
	case CodeDomainNotPointed, CodeChallengeFailed, CodeCAAForbidden, CodeDomainRejected, CodeAccountPaused, CodeInvalidInput,
		CodeDelegationMissing, CodePersistRecordMissing, CodePersistRecordWrongAccount, CodeOwnershipMissing:
		return true
	}
	return false
}

// MovedAway reports whether a domain quarantined for code has left the
// platform: it no longer points at the edge, or no longer delegates its
// validation to it. Such a domain is offboarded
// after a while; any other quarantine waits for the platform.
func MovedAway(code string) bool {
	return code == CodeDomainNotPointed || code == CodeDelegationMissing
}

// Detail is what every failure carries. It is also the JSON errorMessage of a
// failed Lambda invocation, so the state machine's Cause is machine-readable.
type Detail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfterSeconds is the CA's Retry-After, for rate limits.
	RetryAfterSeconds int64 `json:"retryAfterSeconds,omitempty"`
	// UnpauseURL is the link an operator follows to unpause a hostname.
	UnpauseURL string `json:"unpauseURL,omitempty"`
	// Reason refines Code when the cause is known precisely (the Reason
	// constants).
	Reason string `json:"reason,omitempty"`
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
// (unauthorized, connection, dns, tls problems). Reason, when set, is one
// of the Reason constants.
type ChallengeFailedError struct {
	Message string
	Reason  string
	Err     error
}

func (e *ChallengeFailedError) Error() string { return "challenge failed: " + e.Message }
func (e *ChallengeFailedError) Unwrap() error { return e.Err }

// Detail implements Failure.
func (e *ChallengeFailedError) Detail() Detail {
	return Detail{Code: CodeChallengeFailed, Message: e.Message, Reason: e.Reason}
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

// TransientError is a failure of the CA or of a dependency that a retry with
// backoff is likely to cure; Code says whose (CodeCAUnreachable, CodeCAError,
// CodeDependencyError, CodeStepTimeout; empty means CodeTransient). It
// never counts against the domain.
type TransientError struct {
	Code    string
	Message string
	Err     error
}

func (e *TransientError) Error() string { return e.code() + ": " + e.Message }
func (e *TransientError) Unwrap() error { return e.Err }

func (e *TransientError) code() string {
	if e.Code == "" {
		return CodeTransient
	}
	return e.Code
}

// Detail implements Failure.
func (e *TransientError) Detail() Detail {
	return Detail{Code: e.code(), Message: e.Message}
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

// SupersededError means another execution now owns the domain (a newer
// generation, or a restart by the reconciler): this one's writes are
// refused and it ends quietly.
type SupersededError struct {
	Message string
	Err     error
}

func (e *SupersededError) Error() string { return "execution superseded: " + e.Message }
func (e *SupersededError) Unwrap() error { return e.Err }

// Detail implements Failure.
func (e *SupersededError) Detail() Detail {
	return Detail{Code: CodeSuperseded, Message: e.Message}
}

// NeedsOrderSlotError means a new ACME order must be placed and the
// execution holds no usable slot of the new-order budget (none yet, or it
// was spent by an order that failed, or it lapsed and was taken): the state
// machine reserves one, waits for it and retries.
type NeedsOrderSlotError struct {
	Message string
}

func (e *NeedsOrderSlotError) Error() string { return "needs an order slot: " + e.Message }

// Detail implements Failure.
func (e *NeedsOrderSlotError) Detail() Detail {
	return Detail{Code: CodeNeedsOrderSlot, Message: e.Message}
}

// ReplacesRefusedError means the CA refused the renewal's ARI "replaces"
// (RFC 9773: already replaced, unknown certificate): the order must be
// placed without it, which makes it a new order under the budget.
type ReplacesRefusedError struct {
	Message string
	Err     error
}

func (e *ReplacesRefusedError) Error() string { return "replaces refused: " + e.Message }
func (e *ReplacesRefusedError) Unwrap() error { return e.Err }

// Detail implements Failure.
func (e *ReplacesRefusedError) Detail() Detail {
	return Detail{Code: CodeReplacesRefused, Message: e.Message}
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
	_ Failure = (*SupersededError)(nil)
	_ Failure = (*NeedsOrderSlotError)(nil)
	_ Failure = (*ReplacesRefusedError)(nil)
)

// Find returns the first Failure in err's chain.
func Find(err error) (Failure, bool) {
	var f Failure
	if errors.As(err, &f) {
		return f, true
	}
	return nil, false
}
