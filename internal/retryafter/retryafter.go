// Package retryafter reads the waits servers ask for (the Retry-After
// header, RFC 9110 section 10.2.3) and holds every wait certflow takes on
// a server's word within one set of bounds.
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The bounds of every wait taken on a server's word: never shorter than
// Min (a server asking for 0 is polled again after a second, not at once),
// never longer than Max (a day: a bad value must not park a domain for
// weeks).
const (
	Min = time.Second
	Max = 24 * time.Hour
)

// Waits assumed when the server says nothing.
const (
	// DefaultRateLimit is the wait after a CA rate limit that gives no
	// Retry-After and no time in its detail.
	DefaultRateLimit = time.Hour
	// DefaultRenewalInfo is the wait before asking the CA's renewal
	// information (RFC 9773) again, as section 4.3 suggests.
	DefaultRenewalInfo = 6 * time.Hour
)

// Parse reads a Retry-After value: delay-seconds or an HTTP-date (relative
// to now). ok is false when v is empty or unreadable; the wait is not
// clamped (Clamp does that).
func Parse(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(Max/time.Second) {
			return Max, true
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now), true
	}
	return 0, false
}

// Clamp holds d within [Min, Max].
func Clamp(d time.Duration) time.Duration { return min(max(d, Min), Max) }

// Or is Clamp(d) when ok, else Clamp(def): the wait to take from a Parse.
func Or(d time.Duration, ok bool, def time.Duration) time.Duration {
	if !ok {
		d = def
	}
	return Clamp(d)
}
