// Package record is the issuance state machine's bookkeeping of failed
// attempts, by whose fault they are: the RecordFailure and
// RecordPermanentFailure states (failure.go: evidence about the domain,
// counted towards its quarantine), RecordRateLimit (wait.go: the account's
// rate limit, the CA's Retry-After) and RecordOutage (wait.go: the CA or a
// dependency failing, retried with jittered backoff for as long as it
// takes, never counted), and the Quarantine state (quarantine.go). Every
// write is fenced by the execution's name. The platform hears of failures
// and quarantines through events and metrics.
package record

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/metrics"
	"github.com/certflow/certflow/internal/notify"
	"github.com/certflow/certflow/internal/validation"
)

// Actions of the record step, as the state machine names them.
const (
	ActionFailure    = "failure"    // RecordFailure, RecordPermanentFailure
	ActionRateLimit  = "ratelimit"  // RecordRateLimit
	ActionOutage     = "outage"     // RecordOutage
	ActionQuarantine = "quarantine" // Quarantine
)

// Input is the record step's input, built by the state machine's
// Parameters.
type Input struct {
	Action string `json:"action"`
	Domain string `json:"domain"`
	// Error is the caught error of the failed state.
	Error *flow.Caught `json:"error,omitempty"`
	// Reason is the failure code a domain is quarantined for; empty means
	// the code of Error.
	Reason string `json:"reason,omitempty"`
	// Policy holds the backoff parameters, which live in the state machine
	// definition.
	Policy Policy `json:"policy"`
	// Execution is the Step Functions execution name: it must own the
	// domain for anything to be recorded.
	Execution string `json:"execution"`
	// CA is the CA the execution orders from (flow.CAPrimary when empty).
	CA string `json:"ca,omitempty"`
	// Validation is how the domain proves control: a domain validated by
	// DNS-PERSIST-01 stays on the primary CA, the one its standing record
	// names.
	Validation validation.Method `json:"validation,omitempty"`
}

// LogAttrs are the attributes of every log line of the step.
func (in Input) LogAttrs() []any {
	return flow.Input{Domain: in.Domain, Execution: in.Execution}.LogAttrs()
}

// Result is the answer of the record step. For a failure, a rate limit or
// an outage every member up to Postpone is present, so Choice rules and
// paths never meet a missing field; a quarantine answers its reason as Code
// and sets Quarantined.
type Result struct {
	Code              string `json:"code"`
	Message           string `json:"message"`
	RetryAfterSeconds int64  `json:"retryAfterSeconds"`
	FailureCount      int    `json:"failureCount"`
	FailureAgeSeconds int64  `json:"failureAgeSeconds"`
	WaitSeconds       int64  `json:"waitSeconds"`
	UnpauseURL        string `json:"unpauseURL"`
	// Postpone is set when the execution has waited Policy.MaxWaits times:
	// it ends (its history stays bounded) and the reconciler starts the
	// next run once the wait is over.
	Postpone bool `json:"postpone"`
	// FallbackCA names the CA the execution may turn to (flow.CAFallback)
	// when the deployment has one and the execution is still on its
	// primary; "" otherwise. The state machine decides on which failures
	// it does.
	FallbackCA  string `json:"fallbackCA"`
	Quarantined bool   `json:"quarantined,omitempty"`
}

// Recorder records failed attempts. *certstore.Store implements it.
// RecordFailure needs the next attempt's time, which depends on the failure
// count after this failure; GetConsistent supplies the count before it.
type Recorder interface {
	GetConsistent(ctx context.Context, domain string) (*certstore.Certificate, error)
	RecordFailure(ctx context.Context, domain, execution string, d failure.Detail, nextAttemptAt, now time.Time) (certstore.Attempt, error)
	RecordWait(ctx context.Context, domain, execution string, d failure.Detail, outage bool, nextAttemptAt, now time.Time) (certstore.Attempt, error)
}

// Quarantiner stops all attempts for a domain. *certstore.Store implements
// it.
type Quarantiner interface {
	Quarantine(ctx context.Context, domain, execution, reason, message, unpauseURL string) error
}

// Publisher publishes platform events. *notify.Publisher implements it.
type Publisher interface {
	Publish(ctx context.Context, ev notify.Event) error
}

var (
	_ Recorder    = (*certstore.Store)(nil)
	_ Quarantiner = (*certstore.Store)(nil)
	_ Publisher   = (*notify.Publisher)(nil)
)

// Handler handles the record step.
type Handler struct {
	recorder    Recorder
	quarantiner Quarantiner
	publisher   Publisher
	metrics     *metrics.Emitter
	now         func() time.Time
	rand        func() float64
	fallback    bool
}

// WithFallbackCA tells the handler the deployment has a fallback CA, so it
// can say when an execution may turn to it (Result.FallbackCA).
func (h *Handler) WithFallbackCA() *Handler {
	h.fallback = true
	return h
}

// fallbackCA is Result.FallbackCA for in: the fallback for an execution on
// the primary, unless the domain's DNS-PERSIST-01 record names the primary
// (another CA would find no record for it and fail the domain).
func (h *Handler) fallbackCA(in Input) string {
	if h.fallback && (in.CA == "" || in.CA == flow.CAPrimary) && in.Validation != validation.DNSPersist01 {
		return flow.CAFallback
	}
	return ""
}

// New returns a Handler. A nil now means time.Now.
func New(r Recorder, q Quarantiner, p Publisher, m *metrics.Emitter, now func() time.Time) *Handler {
	if now == nil {
		now = time.Now
	}
	return &Handler{recorder: r, quarantiner: q, publisher: p, metrics: m, now: now, rand: rand.Float64}
}

// Handle dispatches on in.Action.
func (h *Handler) Handle(ctx context.Context, in Input) (Result, error) {
	if in.Domain == "" || in.Execution == "" {
		return Result{}, &failure.InvalidInputError{Message: "domain and execution are required"}
	}
	var (
		res Result
		err error
	)
	switch in.Action {
	case ActionFailure:
		res, err = h.Failure(ctx, in)
	case ActionRateLimit:
		res, err = h.RateLimit(ctx, in)
	case ActionOutage:
		res, err = h.Outage(ctx, in)
	case ActionQuarantine:
		res, err = h.Quarantine(ctx, in)
	default:
		return Result{}, &failure.InvalidInputError{Message: fmt.Sprintf("unknown action %q", in.Action)}
	}
	if err == nil && !res.Quarantined {
		res.FallbackCA = h.fallbackCA(in)
	}
	return res, stepError(in, err)
}

// stepError turns a store refusing the write into the failure the state
// machine ends on: retired, or superseded by another execution (a
// quarantined domain is no execution's).
func stepError(in Input, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, certstore.ErrRetired):
		return &failure.DomainRetiredError{Message: in.Domain, Err: err}
	case errors.Is(err, certstore.ErrSuperseded), errors.Is(err, certstore.ErrQuarantined), errors.Is(err, certstore.ErrNotFound):
		return &failure.SupersededError{Message: in.Execution, Err: err}
	}
	return err
}

// detail is the Detail of the caught error; InvalidInputError without one.
func (in Input) detail() (failure.Detail, error) {
	if in.Error == nil {
		return failure.Detail{}, &failure.InvalidInputError{Message: in.Action + " action without error"}
	}
	return failure.ParseCause(in.Error.Error, in.Error.Cause), nil
}

// emitCode counts a failed attempt by its code.
func (h *Handler) emitCode(ctx context.Context, code string) {
	h.emit(ctx, metrics.IssuanceFailures, map[string]string{"Code": code})
}

// emit writes a count of one; a metric that cannot be written is logged,
// never a reason to fail the step.
func (h *Handler) emit(ctx context.Context, name string, dims map[string]string) {
	if h.metrics == nil {
		return
	}
	if err := h.metrics.Emit(name, 1, metrics.UnitCount, dims); err != nil {
		logging.From(ctx).Warn("emit metric", "metric", name, "error", err.Error())
	}
}
