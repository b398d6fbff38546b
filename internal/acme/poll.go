package acme

import (
	"context"
	"fmt"
	"time"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/retryafter"
)

// Polling of an authorization whose challenge was submitted, and of an
// order the CA is processing (RFC 8555 sections 7.5.1 and 7.4): never
// sooner than the CA's Retry-After, otherwise early and then less often,
// because Let's Encrypt sends no Retry-After and usually decides within a
// second or two.
const (
	firstPoll = 250 * time.Millisecond
	maxPoll   = 2 * time.Second
	// pollTimeout bounds one wait for the CA: one that has not decided by
	// then is failing, and the step is tried again later.
	pollTimeout = 2 * time.Minute
)

// schedule spaces the polls of one resource.
type schedule struct {
	backoff time.Duration // the next wait when the CA says nothing
	rand    func() float64
}

func newSchedule(rand func() float64) *schedule {
	return &schedule{backoff: firstPoll, rand: rand}
}

// next returns the wait before the next poll, given the Retry-After of the
// last answer (read at now). The CA's wait is taken in full, within
// retryafter's bounds, plus up to a tenth of it (at most a second) so that
// parallel polls spread out. Without one, the wait doubles from firstPoll
// to maxPoll, less up to a quarter.
func (s *schedule) next(ra string, now time.Time) time.Duration {
	if d, ok := retryafter.Parse(ra, now); ok {
		d = retryafter.Clamp(d)
		return d + time.Duration(s.rand()*float64(min(d/10, time.Second)))
	}
	d := s.backoff
	s.backoff = min(2*s.backoff, maxPoll)
	return d - time.Duration(s.rand()*float64(d/4))
}

// poller waits between polls. Its clock, sleep and randomness are fields
// so that tests can replace them.
type poller struct {
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	rand  func() float64 // in [0, 1)
	// margin is the time kept free before ctx's deadline: a poll that
	// would come later is not waited for.
	margin time.Duration
}

// until calls get until it reports done, waiting between calls as the CA
// asks; ra is the Retry-After of the answer that started the wait. It
// returns get's error, or a TransientError when the CA does not decide
// within pollTimeout (CodeCAError) or when the next poll would come too
// close to ctx's deadline (CodeStepTimeout: the caller resumes later).
func (p poller) until(ctx context.Context, what, ra string, get func(context.Context) (done bool, ra string, err error)) error {
	s := newSchedule(p.rand)
	giveUp := p.now().Add(pollTimeout)
	for {
		now := p.now()
		wait := s.next(ra, now)
		if deadline, ok := ctx.Deadline(); ok && deadline.Sub(now) < wait+p.margin {
			return &failure.TransientError{Code: failure.CodeStepTimeout,
				Message: fmt.Sprintf("%s: the next poll (in %s) would come within %s of the step's deadline", what, wait.Round(time.Millisecond), p.margin)}
		}
		if now.Add(wait).After(giveUp) {
			return &failure.TransientError{Code: failure.CodeCAError, Message: fmt.Sprintf("%s: the CA did not decide within %s", what, pollTimeout)}
		}
		if err := p.sleep(ctx, wait); err != nil {
			return cut(ctx, what, err)
		}
		done, next, err := get(ctx)
		if err != nil || done {
			return err
		}
		ra = next
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
