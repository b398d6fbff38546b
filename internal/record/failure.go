package record

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/metrics"
	"github.com/certflow/certflow/internal/notify"
	"github.com/certflow/certflow/internal/retryafter"
)

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

// Failure records a failed attempt and returns how long to wait before the
// next. A rate limit is the account's, not the domain's: it is not recorded
// and the wait is the CA's Retry-After (RecordRateLimit). Publishing the
// event is best effort (logged on failure), since the failure is already
// counted and a retry of the step would count it twice.
func (h *Handler) Failure(ctx context.Context, in Input) (Result, error) {
	if in.Error == nil {
		return Result{}, &failure.InvalidInputError{Message: "failure action without error"}
	}
	d := failure.ParseCause(in.Error.Error, in.Error.Cause)
	h.emit(ctx, metrics.IssuanceFailures, map[string]string{"Code": d.Code})
	if d.Code == failure.CodeRateLimited {
		wait := retryafter.Or(time.Duration(d.RetryAfterSeconds)*time.Second, d.RetryAfterSeconds > 0, retryafter.DefaultRateLimit)
		secs := int64(wait / time.Second)
		return Result{Code: d.Code, Message: d.Message, RetryAfterSeconds: secs, WaitSeconds: secs, UnpauseURL: d.UnpauseURL}, nil
	}
	if err := in.Policy.validate(); err != nil {
		return Result{}, err
	}
	cur, err := h.recorder.GetConsistent(ctx, in.Domain)
	if err != nil {
		return Result{}, fmt.Errorf("record failure of %q: %w", in.Domain, err)
	}
	if cur.Status == certstore.StatusRetired {
		return Result{}, &failure.DomainRetiredError{Message: in.Domain}
	}
	now := h.now().UTC().Truncate(time.Second)
	wait := in.Policy.Wait(cur.FailureCount + 1)
	count, first, err := h.recorder.RecordFailure(ctx, in.Domain, d, now.Add(wait), now)
	if errors.Is(err, certstore.ErrRetired) {
		return Result{}, &failure.DomainRetiredError{Message: in.Domain, Err: err}
	}
	if err != nil {
		return Result{}, fmt.Errorf("record failure of %q: %w", in.Domain, err)
	}
	var age int64
	if !first.IsZero() && now.After(first) {
		age = int64(now.Sub(first) / time.Second)
	}
	ev := notify.Event{Type: notify.TypeFailed, Domain: in.Domain, ReasonCode: d.Code, Message: d.Message, FailureCount: count, UnpauseURL: d.UnpauseURL}
	if err := h.publisher.Publish(ctx, ev); err != nil {
		logging.From(ctx).Error("publish failure event", "error", err.Error())
	}
	return Result{
		Code:              d.Code,
		Message:           d.Message,
		RetryAfterSeconds: d.RetryAfterSeconds,
		FailureCount:      count,
		FailureAgeSeconds: age,
		WaitSeconds:       int64(wait / time.Second),
		UnpauseURL:        d.UnpauseURL,
	}, nil
}
