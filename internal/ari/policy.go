package ari

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/certflow/certflow/internal/logging"
)

// RenewAt picks a uniformly random point inside the window, as RFC 9773
// section 4.2 recommends, so that a fleet spreads its renewals over the
// window the CA chose. rnd returns a number in [0, 1); nil means
// math/rand/v2.Float64. A point in the past (including every point of a
// window that has already ended) becomes now: renew immediately.
func RenewAt(w Window, now time.Time, rnd func() float64) time.Time {
	if rnd == nil {
		rnd = rand.Float64
	}
	t := w.Start
	if span := w.End.Sub(w.Start); span > 0 {
		f := rnd()
		if f < 0 || f >= 1 {
			f = 0
		}
		t = w.Start.Add(time.Duration(float64(span) * f))
	}
	if t.Before(now) {
		return now
	}
	return t
}

// TwoThirds is the renewal time when the CA gives no window: two thirds of
// the certificate's lifetime (30 days before expiry for a 90-day
// certificate, 2 days before for a 6-day one).
func TwoThirds(notBefore, notAfter time.Time) time.Time {
	return notBefore.Add(notAfter.Sub(notBefore) * 2 / 3)
}

// Latest is the safety clamp: no renewal is scheduled later than
// notAfter minus a tenth of the lifetime (9 days before expiry for a 90-day
// certificate, 14.4 hours for a 6-day one). That margin leaves room for the
// state machine's retries and for DynamoDB TTL, which may delete an expired
// timer hours late (the sweeper covers that), even when the CA suggests a
// window that ends at expiry.
func Latest(notBefore, notAfter time.Time) time.Time {
	return notAfter.Add(-notAfter.Sub(notBefore) / 10)
}

// RenewalInfo fetches the CA's suggested window; *Client implements it.
type RenewalInfo interface {
	Get(ctx context.Context, certID string) (Window, time.Duration, error)
}

var _ RenewalInfo = (*Client)(nil)

// Scheduler decides when a freshly issued certificate is renewed: a random
// point in the CA's ARI window when the CA offers one, two thirds of the
// lifetime otherwise, never after Latest and never before now. The zero
// value of each optional field means the documented default.
type Scheduler struct {
	// Info is the CA's renewal information; nil means always two thirds.
	Info RenewalInfo
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand returns a number in [0, 1); nil means math/rand/v2.Float64.
	Rand func() float64
}

// RenewAt returns when leaf, identified at the CA by ariCertID, should be
// renewed, in UTC truncated to the second (the table's time precision). It
// never fails: when ARI is unsupported or fails, it falls back to two thirds
// of the lifetime.
func (s *Scheduler) RenewAt(ctx context.Context, leaf *x509.Certificate, ariCertID string) time.Time {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := TwoThirds(leaf.NotBefore, leaf.NotAfter)
	if s.Info != nil && ariCertID != "" {
		w, _, err := s.Info.Get(ctx, ariCertID)
		switch {
		case err == nil:
			t = RenewAt(w, now(), s.Rand)
		case errors.Is(err, ErrUnsupported):
		default:
			logging.From(ctx).WarnContext(ctx, "renewal information unavailable, renewing at two thirds of the lifetime",
				slog.String("ariCertID", ariCertID), slog.String("error", err.Error()))
		}
	}
	return Clamp(t, leaf.NotBefore, leaf.NotAfter, now()).UTC().Truncate(time.Second)
}

// Clamp holds a renewal time within [now, Latest(notBefore, notAfter)];
// when Latest is already past, it returns now.
func Clamp(t, notBefore, notAfter, now time.Time) time.Time {
	if latest := Latest(notBefore, notAfter); t.After(latest) {
		t = latest
	}
	if t.Before(now) {
		t = now
	}
	return t
}
