package record

import (
	"context"
	"fmt"
	"time"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/notify"
)

// Policy is the backoff between attempts and the bound on one execution's
// waits; it lives in the state machine definition (template parameters).
type Policy struct {
	// BackoffBaseSeconds and BackoffMaxSeconds: the wait after the n-th
	// consecutive failure that counts against the domain is
	// base * 2^(n-1), at most max.
	BackoffBaseSeconds int64 `json:"backoffBaseSeconds"`
	BackoffMaxSeconds  int64 `json:"backoffMaxSeconds"`
	// OutageBaseSeconds and OutageMaxSeconds: the same for consecutive
	// failures of the CA or a dependency, with jitter.
	OutageBaseSeconds int64 `json:"outageBaseSeconds"`
	OutageMaxSeconds  int64 `json:"outageMaxSeconds"`
	// MaxWaits bounds the waits of one execution; zero means no bound.
	MaxWaits int `json:"maxWaits"`
}

// Wait returns the wait after the count-th consecutive failure:
// base * 2^(count-1), at most max.
func (p Policy) Wait(count int) time.Duration {
	return backoff(p.BackoffBaseSeconds, p.BackoffMaxSeconds, count)
}

func backoff(baseSeconds, maxSeconds int64, count int) time.Duration {
	base, limit := time.Duration(baseSeconds)*time.Second, time.Duration(maxSeconds)*time.Second
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

// postpone reports whether an execution that has waited waits times has
// reached the bound.
func (p Policy) postpone(waits int) bool { return p.MaxWaits > 0 && waits >= p.MaxWaits }

// Failure records an attempt that failed for a reason that counts against
// the domain (RecordFailure, RecordPermanentFailure) and returns how long
// to wait before the next. A failure that does not count against the
// domain (a CA outage reaching this state through States.ALL, say) is
// recorded as an outage instead. Publishing the event is best effort
// (logged on failure), since the failure is already counted and a retry of
// the step would count it twice.
func (h *Handler) Failure(ctx context.Context, in Input) (Result, error) {
	d, err := in.detail()
	if err != nil {
		return Result{}, err
	}
	if !failure.CountsAgainstDomain(d.Code) {
		return h.wait(ctx, in, d, true)
	}
	if err := in.Policy.validate(); err != nil {
		return Result{}, err
	}
	h.emitCode(ctx, d.Code)
	cur, err := h.recorder.GetConsistent(ctx, in.Domain)
	if err != nil {
		return Result{}, fmt.Errorf("record failure of %q: %w", in.Domain, err)
	}
	now := h.now().UTC().Truncate(time.Second)
	wait := in.Policy.Wait(cur.FailureCount + 1)
	a, err := h.recorder.RecordFailure(ctx, in.Domain, in.Execution, d, now.Add(wait), now)
	if err != nil {
		return Result{}, err
	}
	var age int64
	if !a.FirstFailureAt.IsZero() && now.After(a.FirstFailureAt) {
		age = int64(now.Sub(a.FirstFailureAt) / time.Second)
	}
	ev := notify.Event{Type: notify.TypeFailed, Domain: in.Domain, ReasonCode: d.Code, Message: d.Message, FailureCount: a.FailureCount, UnpauseURL: d.UnpauseURL}
	if err := h.publisher.Publish(ctx, ev); err != nil {
		logging.From(ctx).Error("publish failure event", "error", err.Error())
	}
	return Result{
		Code:              d.Code,
		Message:           d.Message,
		RetryAfterSeconds: d.RetryAfterSeconds,
		FailureCount:      a.FailureCount,
		FailureAgeSeconds: age,
		WaitSeconds:       int64(wait / time.Second),
		UnpauseURL:        d.UnpauseURL,
		Postpone:          in.Policy.postpone(a.Waits),
	}, nil
}
