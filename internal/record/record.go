// Package record is the issuance state machine's bookkeeping of failures:
// the RecordFailure, RecordRateLimit and RecordPermanentFailure states
// (failure.go: count the failure on the certificate item and compute the
// wait before the next attempt) and the Quarantine state (quarantine.go).
// The platform hears of both through events and metrics.
package record

import (
	"context"
	"fmt"
	"time"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/metrics"
	"github.com/certflow/certflow/internal/notify"
)

// Actions of the record step, as the state machine names them.
const (
	ActionFailure    = "failure"    // RecordFailure, RecordRateLimit, RecordPermanentFailure
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
	// definition (failure).
	Policy Policy `json:"policy"`
	// Execution is the Step Functions execution name, for logs.
	Execution string `json:"execution,omitempty"`
}

// LogAttrs are the attributes of every log line of the step.
func (in Input) LogAttrs() []any {
	return flow.Input{Domain: in.Domain, Execution: in.Execution}.LogAttrs()
}

// Result is the answer of the record step. For a failure every member up to
// UnpauseURL is present, so Choice rules and paths never meet a missing
// field; a quarantine answers its reason as Code and sets Quarantined.
type Result struct {
	Code              string `json:"code"`
	Message           string `json:"message"`
	RetryAfterSeconds int64  `json:"retryAfterSeconds"`
	FailureCount      int    `json:"failureCount"`
	FailureAgeSeconds int64  `json:"failureAgeSeconds"`
	WaitSeconds       int64  `json:"waitSeconds"`
	UnpauseURL        string `json:"unpauseURL"`
	Quarantined       bool   `json:"quarantined,omitempty"`
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
}

// New returns a Handler. A nil now means time.Now.
func New(r Recorder, q Quarantiner, p Publisher, m *metrics.Emitter, now func() time.Time) *Handler {
	if now == nil {
		now = time.Now
	}
	return &Handler{recorder: r, quarantiner: q, publisher: p, metrics: m, now: now}
}

// Handle dispatches on in.Action.
func (h *Handler) Handle(ctx context.Context, in Input) (Result, error) {
	if in.Domain == "" {
		return Result{}, &failure.InvalidInputError{Message: "domain is required"}
	}
	switch in.Action {
	case ActionFailure:
		return h.Failure(ctx, in)
	case ActionQuarantine:
		return h.Quarantine(ctx, in)
	}
	return Result{}, &failure.InvalidInputError{Message: fmt.Sprintf("unknown action %q", in.Action)}
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
