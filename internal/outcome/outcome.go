// Package outcome is the issuance state machine's bookkeeping step: it
// records failed attempts and quarantines on the certificate item, computes
// the backoff before the next attempt, and tells the platform what happened
// through events and metrics.
package outcome

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/metrics"
	"github.com/certflow/certflow/internal/notify"
)

// Actions of the outcome task.
const (
	ActionFailure    = "failure"
	ActionQuarantine = "quarantine"
	ActionIssued     = "issued"
)

// Bounds of a rate limit's wait: the CA's Retry-After is clamped to them.
const (
	MinRetryAfter     = time.Second
	MaxRetryAfter     = 24 * time.Hour
	DefaultRetryAfter = time.Hour // when the CA gave no Retry-After
)

// Input is the outcome task's input, built by the state machine.
type Input struct {
	Action string `json:"action"`
	Domain string `json:"domain"`
	// Error is the caught error of the failed state (failure, quarantine).
	Error *StepError `json:"error,omitempty"`
	// Reason is the failure code a domain is quarantined for; empty means
	// the code of Error.
	Reason string `json:"reason,omitempty"`
	// Certificate is the issued certificate (issued).
	Certificate *Certificate `json:"certificate,omitempty"`
	// Policy holds the backoff parameters, which live in the state machine
	// definition (failure).
	Policy Policy `json:"policy"`
	// Execution is the Step Functions execution name, for logs.
	Execution string `json:"execution,omitempty"`
}

// StepError is what a Catch puts at its ResultPath. Cause is a JSON string
// in AWS and may be an object in a local engine; failure.ParseCause reads
// both.
type StepError struct {
	Error string          `json:"Error"`
	Cause json.RawMessage `json:"Cause"`
}

// Certificate describes an issued certificate. It never holds key material.
type Certificate struct {
	Domain    string    `json:"domain"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	RenewAt   time.Time `json:"renewAt"`
	Renewed   bool      `json:"renewed"`
}

// Policy is the exponential backoff between failed attempts.
type Policy struct {
	BackoffBaseSeconds int64 `json:"backoffBaseSeconds"`
	BackoffMaxSeconds  int64 `json:"backoffMaxSeconds"`
}

// Wait returns the wait after the count-th consecutive failure:
// base * 2^(count-1), at most max.
func (p Policy) Wait(count int) time.Duration {
	base, limit := time.Duration(p.BackoffBaseSeconds)*time.Second, time.Duration(p.BackoffMaxSeconds)*time.Second
	wait := base
	for i := 1; i < count && wait < limit; i++ {
		wait *= 2
	}
	return min(wait, limit)
}

func (p Policy) validate() error {
	if p.BackoffBaseSeconds <= 0 || p.BackoffMaxSeconds < p.BackoffBaseSeconds {
		return &failure.InvalidInputError{Message: fmt.Sprintf("policy needs 0 < backoffBaseSeconds <= backoffMaxSeconds, got %d and %d", p.BackoffBaseSeconds, p.BackoffMaxSeconds)}
	}
	return nil
}

// FailureResult is the answer to a failure action. Every member is always
// present so Choice rules and paths never meet a missing field. For a rate
// limit nothing is recorded: FailureCount and FailureAgeSeconds are 0 and
// WaitSeconds equals RetryAfterSeconds.
type FailureResult struct {
	Code              string `json:"code"`
	Message           string `json:"message"`
	RetryAfterSeconds int64  `json:"retryAfterSeconds"`
	FailureCount      int    `json:"failureCount"`
	FailureAgeSeconds int64  `json:"failureAgeSeconds"`
	WaitSeconds       int64  `json:"waitSeconds"`
	UnpauseURL        string `json:"unpauseURL"`
}

// QuarantineResult is the answer to a quarantine action.
type QuarantineResult struct {
	Quarantined bool   `json:"quarantined"`
	Reason      string `json:"reason"`
}

// IssuedResult is the answer to an issued action.
type IssuedResult struct {
	Domain string `json:"domain"`
	Serial string `json:"serial"`
	Event  string `json:"event"` // the detail-type published
}

// Recorder records failed attempts. *certstore.Store implements it.
// RecordFailure needs the next attempt's time, which depends on the failure
// count after this failure; GetConsistent supplies the count before it.
type Recorder interface {
	GetConsistent(ctx context.Context, domain string) (*certstore.Certificate, error)
	RecordFailure(ctx context.Context, domain string, d failure.Detail, nextAttemptAt, now time.Time) (count int, firstFailureAt time.Time, err error)
}

// Quarantiner stops all attempts for a domain. *certstore.Store implements
// it.
type Quarantiner interface {
	Quarantine(ctx context.Context, domain, reason, message, unpauseURL string) error
}

// Publisher publishes platform events. *notify.Publisher implements it.
type Publisher interface {
	Publish(ctx context.Context, ev notify.Event) error
}

// Handler handles the outcome task.
type Handler struct {
	recorder    Recorder
	quarantiner Quarantiner
	publisher   Publisher
	metrics     *metrics.Emitter
	now         func() time.Time
}

// New returns a Handler. A nil now means time.Now.
func New(r Recorder, q Quarantiner, p Publisher, m *metrics.Emitter, now func() time.Time) *Handler {
	if now == nil {
		now = time.Now
	}
	return &Handler{recorder: r, quarantiner: q, publisher: p, metrics: m, now: now}
}

// Handle dispatches on in.Action and returns a *FailureResult,
// *QuarantineResult or *IssuedResult.
func (h *Handler) Handle(ctx context.Context, in Input) (any, error) {
	if in.Domain == "" {
		return nil, &failure.InvalidInputError{Message: "domain is required"}
	}
	ctx = logging.With(ctx, "domain", in.Domain, "action", in.Action)
	switch in.Action {
	case ActionFailure:
		return h.Failure(ctx, in)
	case ActionQuarantine:
		return h.Quarantine(ctx, in)
	case ActionIssued:
		return h.Issued(ctx, in)
	}
	return nil, &failure.InvalidInputError{Message: fmt.Sprintf("unknown action %q", in.Action)}
}

// Failure records a failed attempt and returns how long to wait before the
// next. A rate limit is the account's, not the domain's: it is not recorded
// and the wait is the CA's Retry-After. Publishing the event is best effort
// (logged on failure), since the failure is already counted and a retry of
// the task would count it twice.
func (h *Handler) Failure(ctx context.Context, in Input) (*FailureResult, error) {
	if in.Error == nil {
		return nil, &failure.InvalidInputError{Message: "failure action without error"}
	}
	d := failure.ParseCause(in.Error.Error, in.Error.Cause)
	h.emit(ctx, metrics.IssuanceFailures, map[string]string{"Code": d.Code})
	if d.Code == failure.CodeRateLimited {
		wait := time.Duration(d.RetryAfterSeconds) * time.Second
		if d.RetryAfterSeconds <= 0 {
			wait = DefaultRetryAfter
		}
		wait = min(max(wait, MinRetryAfter), MaxRetryAfter)
		secs := int64(wait / time.Second)
		return &FailureResult{Code: d.Code, Message: d.Message, RetryAfterSeconds: secs, WaitSeconds: secs, UnpauseURL: d.UnpauseURL}, nil
	}
	if err := in.Policy.validate(); err != nil {
		return nil, err
	}
	cur, err := h.recorder.GetConsistent(ctx, in.Domain)
	if err != nil {
		return nil, fmt.Errorf("record failure of %q: %w", in.Domain, err)
	}
	if cur.Status == certstore.StatusRetired {
		return nil, &failure.DomainRetiredError{Message: in.Domain}
	}
	now := h.now().UTC().Truncate(time.Second)
	wait := in.Policy.Wait(cur.FailureCount + 1)
	count, first, err := h.recorder.RecordFailure(ctx, in.Domain, d, now.Add(wait), now)
	if errors.Is(err, certstore.ErrRetired) {
		return nil, &failure.DomainRetiredError{Message: in.Domain, Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("record failure of %q: %w", in.Domain, err)
	}
	var age int64
	if !first.IsZero() && now.After(first) {
		age = int64(now.Sub(first) / time.Second)
	}
	ev := notify.Event{Type: notify.TypeFailed, Domain: in.Domain, ReasonCode: d.Code, Message: d.Message, FailureCount: count, UnpauseURL: d.UnpauseURL}
	if err := h.publisher.Publish(ctx, ev); err != nil {
		logging.From(ctx).Error("publish failure event", "error", err.Error())
	}
	return &FailureResult{
		Code:              d.Code,
		Message:           d.Message,
		RetryAfterSeconds: d.RetryAfterSeconds,
		FailureCount:      count,
		FailureAgeSeconds: age,
		WaitSeconds:       int64(wait / time.Second),
		UnpauseURL:        d.UnpauseURL,
	}, nil
}

// Quarantine quarantines the domain and publishes the event. Both steps are
// idempotent, so an error (returned) may be retried.
func (h *Handler) Quarantine(ctx context.Context, in Input) (*QuarantineResult, error) {
	var d failure.Detail
	if in.Error != nil {
		d = failure.ParseCause(in.Error.Error, in.Error.Cause)
	}
	reason := in.Reason
	if reason == "" {
		reason = d.Code
	}
	if reason == "" {
		return nil, &failure.InvalidInputError{Message: "quarantine action without reason or error"}
	}
	err := h.quarantiner.Quarantine(ctx, in.Domain, reason, d.Message, d.UnpauseURL)
	if errors.Is(err, certstore.ErrRetired) {
		return nil, &failure.DomainRetiredError{Message: in.Domain, Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("quarantine %q: %w", in.Domain, err)
	}
	ev := notify.Event{Type: notify.TypeQuarantined, Domain: in.Domain, ReasonCode: reason, Message: d.Message, UnpauseURL: d.UnpauseURL}
	if err := h.publisher.Publish(ctx, ev); err != nil {
		return nil, fmt.Errorf("quarantine %q: %w", in.Domain, err)
	}
	h.emit(ctx, metrics.DomainsQuarantined, map[string]string{"Reason": reason})
	return &QuarantineResult{Quarantined: true, Reason: reason}, nil
}

// Issued publishes that a certificate was issued or renewed and counts it.
func (h *Handler) Issued(ctx context.Context, in Input) (*IssuedResult, error) {
	c := in.Certificate
	if c == nil || c.Serial == "" || c.NotAfter.IsZero() {
		return nil, &failure.InvalidInputError{Message: "issued action needs certificate.serial and certificate.notAfter"}
	}
	typ, metric := notify.TypeIssued, metrics.CertificatesIssued
	if c.Renewed {
		typ, metric = notify.TypeRenewed, metrics.CertificatesRenewed
	}
	if err := h.publisher.Publish(ctx, notify.Event{Type: typ, Domain: in.Domain, Serial: c.Serial, NotAfter: c.NotAfter}); err != nil {
		return nil, fmt.Errorf("announce certificate of %q: %w", in.Domain, err)
	}
	h.emit(ctx, metric, nil)
	return &IssuedResult{Domain: in.Domain, Serial: c.Serial, Event: typ}, nil
}

// emit writes a count of one; a metric that cannot be written is logged,
// never a reason to fail the task.
func (h *Handler) emit(ctx context.Context, name string, dims map[string]string) {
	if h.metrics == nil {
		return
	}
	if err := h.metrics.Emit(name, 1, metrics.UnitCount, dims); err != nil {
		logging.From(ctx).Warn("emit metric", "metric", name, "error", err.Error())
	}
}

var (
	_ Recorder    = (*certstore.Store)(nil)
	_ Quarantiner = (*certstore.Store)(nil)
	_ Publisher   = (*notify.Publisher)(nil)
)
