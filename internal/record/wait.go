package record

import (
	"context"
	"strings"
	"time"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/metrics"
	"github.com/certflow/certflow/internal/retryafter"
)

// RateLimit records the CA's rate limit of the account (RecordRateLimit):
// the account's, not the domain's, so nothing counts towards quarantine;
// the wait is the CA's Retry-After within retryafter's bounds.
func (h *Handler) RateLimit(ctx context.Context, in Input) (Result, error) {
	d, err := in.detail()
	if err != nil {
		return Result{}, err
	}
	return h.wait(ctx, in, d, false)
}

// Outage records an attempt that failed on the CA's or certflow's side
// (RecordOutage: the CA unreachable or erroring, a dependency failing, a
// step timing out, anything unclassified): never counted against the
// domain, retried after a backoff with jitter that grows with the number
// of consecutive outages, for as long as it takes. The alarm on the
// CAUnavailable metric says when the CA is the problem.
func (h *Handler) Outage(ctx context.Context, in Input) (Result, error) {
	d, err := in.detail()
	if err != nil {
		return Result{}, err
	}
	return h.wait(ctx, in, d, true)
}

// wait records a wait that does not count against the domain.
func (h *Handler) wait(ctx context.Context, in Input, d failure.Detail, outage bool) (Result, error) {
	h.emitCode(ctx, d.Code)
	if strings.HasPrefix(d.Code, "ca_") {
		h.emit(ctx, metrics.CAUnavailable, map[string]string{"Code": d.Code})
	}
	now := h.now().UTC().Truncate(time.Second)
	var wait time.Duration
	if !outage {
		wait = retryafter.Or(time.Duration(d.RetryAfterSeconds)*time.Second, d.RetryAfterSeconds > 0, retryafter.DefaultRateLimit)
	}
	if outage && d.Code == failure.CodeRateLimited {
		outage = false // a rate limit caught by States.ALL is still a rate limit
		wait = retryafter.Or(time.Duration(d.RetryAfterSeconds)*time.Second, d.RetryAfterSeconds > 0, retryafter.DefaultRateLimit)
	}
	if outage {
		cur, err := h.recorder.GetConsistent(ctx, in.Domain)
		if err != nil {
			return Result{}, err
		}
		wait = h.jitter(backoff(in.Policy.outageBase(), in.Policy.outageMax(), cur.OutageCount+1))
	}
	a, err := h.recorder.RecordWait(ctx, in.Domain, in.Execution, d, outage, now.Add(wait), now)
	if err != nil {
		return Result{}, err
	}
	return Result{
		Code:              d.Code,
		Message:           d.Message,
		RetryAfterSeconds: d.RetryAfterSeconds,
		FailureCount:      a.FailureCount,
		WaitSeconds:       int64(wait / time.Second),
		UnpauseURL:        d.UnpauseURL,
		Postpone:          in.Policy.postpone(a.Waits),
	}, nil
}

// Defaults of the outage backoff when the policy gives none.
const (
	defaultOutageBase = 30 * time.Second
	defaultOutageMax  = time.Hour
)

func (p Policy) outageBase() int64 {
	if p.OutageBaseSeconds > 0 {
		return p.OutageBaseSeconds
	}
	return int64(defaultOutageBase / time.Second)
}

func (p Policy) outageMax() int64 {
	if p.OutageMaxSeconds >= p.outageBase() {
		return p.OutageMaxSeconds
	}
	return max(p.outageBase(), int64(defaultOutageMax/time.Second))
}

// jitter spreads d over [d/2, d] ("equal jitter"), so that domains failing
// together on one outage do not come back together; at least a second.
func (h *Handler) jitter(d time.Duration) time.Duration {
	half := d / 2
	return max(time.Second, (half + time.Duration(h.rand()*float64(d-half))).Truncate(time.Second))
}
