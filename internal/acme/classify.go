package acme

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	legoacme "github.com/go-acme/lego/v4/acme"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/retryafter"
)

const problemPrefix = "urn:ietf:params:acme:error:"

var (
	// Let's Encrypt's paused-hostname detail links to its self-service
	// unpause page (https://acme-v02.api.letsencrypt.org/sfe/v1/unpause?jwt=...).
	unpauseURLPattern = regexp.MustCompile(`https?://[^\s"'<>]+/sfe/v1/unpause[^\s"'<>]*`)
	// Boulder's rate-limit details end with "retry after 2006-01-02 15:04:05 UTC".
	retryAfterPattern = regexp.MustCompile(`(?i)retry after (\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})(?: ?UTC|Z)?`)
	// lego reports a non-JSON error answer as "<status> ::<method> :: <url> :: ...".
	rawStatusPattern = regexp.MustCompile(`^(\d{3}) ::`)
)

// class orders the failure classes: when several problems are found (one
// per name of an order), the most decisive one wins.
type class int

const (
	classNone class = iota
	classTransient
	classChallenge
	classRejected
	classRateLimited
	classPaused
)

// finding is the most decisive problem found in an error tree so far.
type finding struct {
	class      class
	problem    *legoacme.ProblemDetails
	message    string
	retryAfter time.Duration
	unpauseURL string
}

// Classify maps an error returned by lego to the failure type the state
// machine decides on (see package failure). It looks at every problem in
// err's tree: lego joins the per-name failures of an order, and the most
// decisive one (paused > rate limited > rejected name > failed challenge >
// transient) determines the class. An error it cannot classify is returned
// unchanged; nil stays nil. now anchors Retry-After dates.
func Classify(err error, now time.Time) error {
	if err == nil {
		return nil
	}
	if _, ok := failure.Find(err); ok {
		return err
	}
	var best finding
	walk(err, func(e error) {
		if f := inspect(e, now); f.class > best.class {
			best = f
		}
	})
	msg := best.message
	switch best.class {
	case classPaused:
		return &failure.AccountPausedError{Message: msg, UnpauseURL: best.unpauseURL, Err: err}
	case classRateLimited:
		return &failure.RateLimitedError{Message: msg, RetryAfter: best.retryAfter, Err: err}
	case classRejected:
		return &failure.DomainRejectedError{Message: msg, Err: err}
	case classChallenge:
		return &failure.ChallengeFailedError{Message: msg, Err: err}
	case classTransient:
		return &failure.TransientError{Message: msg, Err: err}
	default:
		return err
	}
}

// walk calls fn for err and every error it wraps, depth first, following
// both Unwrap() error and Unwrap() []error (lego's per-domain obtain errors).
func walk(err error, fn func(error)) {
	if err == nil {
		return
	}
	fn(err)
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walk(e, fn)
		}
	case interface{ Unwrap() error }:
		walk(u.Unwrap(), fn)
	}
}

// inspect classifies a single node of an error tree, ignoring what it wraps.
func inspect(e error, now time.Time) finding {
	switch v := e.(type) {
	case *legoacme.RateLimitedError:
		f := problemFinding(v.ProblemDetails, now)
		if f.class == classRateLimited {
			if d, ok := retryafter.Parse(v.RetryAfter, now); ok && d > 0 {
				f.retryAfter = d
			}
		}
		return f
	case *legoacme.NonceError:
		return finding{class: classTransient, problem: v.ProblemDetails, message: problemMessage(v.ProblemDetails)}
	case *legoacme.ProblemDetails:
		return problemFinding(v, now)
	}
	if errors.Is(e, context.DeadlineExceeded) {
		return finding{class: classTransient, message: "timeout talking to the CA"}
	}
	var ne net.Error
	if errors.As(e, &ne) {
		return finding{class: classTransient, message: "network error talking to the CA: " + e.Error()}
	}
	msg := e.Error()
	if m := rawStatusPattern.FindStringSubmatch(msg); m != nil && m[1][0] == '5' {
		return finding{class: classTransient, message: "CA answered " + m[1]}
	}
	// lego's untyped errors: an invalid authorization without a problem
	// document, and its polling loops giving up.
	switch {
	case msg == "invalid authorization":
		return finding{class: classChallenge, message: msg}
	case strings.Contains(msg, "time limit exceeded"), strings.Contains(msg, "didn't respond to our request"):
		return finding{class: classTransient, message: msg}
	}
	return finding{}
}

// problemFinding classifies an ACME problem document, including its
// subproblems (one per rejected identifier).
func problemFinding(p *legoacme.ProblemDetails, now time.Time) finding {
	if p == nil {
		return finding{}
	}
	f := finding{problem: p, message: problemMessage(p)}
	switch typ := strings.TrimPrefix(p.Type, problemPrefix); typ {
	case "rateLimited":
		if u := unpauseURLPattern.FindString(p.Detail); u != "" {
			f.class, f.unpauseURL = classPaused, strings.TrimRight(u, ".,;)")
			return f
		}
		f.class, f.retryAfter = classRateLimited, retryAfterFromDetail(p.Detail, now)
	case "unauthorized", "connection", "dns", "tls", "incorrectResponse":
		f.class = classChallenge
	case "rejectedIdentifier", "caa", "unsupportedIdentifier":
		f.class = classRejected
	case "malformed":
		if aboutIdentifier(p) {
			f.class = classRejected
		}
	case "badNonce", "serverInternal":
		f.class = classTransient
	default:
		if p.HTTPStatus >= 500 {
			f.class = classTransient
		}
	}
	for _, sub := range p.SubProblems {
		sp := &legoacme.ProblemDetails{Type: sub.Type, Detail: sub.Detail, HTTPStatus: p.HTTPStatus}
		if s := problemFinding(sp, now); s.class > f.class {
			s.message = sub.Identifier.Value + ": " + s.message
			f = s
		}
	}
	return f
}

// aboutIdentifier reports whether a malformed problem complains about the
// names of the order rather than about the request.
func aboutIdentifier(p *legoacme.ProblemDetails) bool {
	d := strings.ToLower(p.Detail)
	for _, s := range []string{"identifier", "dns name", "domain name", "invalid character", "public suffix", "wildcard"} {
		if strings.Contains(d, s) {
			return true
		}
	}
	return len(p.SubProblems) > 0
}

func problemMessage(p *legoacme.ProblemDetails) string {
	typ := strings.TrimPrefix(p.Type, problemPrefix)
	if p.Detail == "" {
		return fmt.Sprintf("%s (HTTP %d)", typ, p.HTTPStatus)
	}
	return typ + ": " + p.Detail
}

// retryAfterFromDetail reads Boulder's "retry after <UTC time>" from a
// rate-limit detail; retryafter.DefaultRateLimit if absent or past.
func retryAfterFromDetail(detail string, now time.Time) time.Duration {
	m := retryAfterPattern.FindStringSubmatch(detail)
	if m == nil {
		return retryafter.DefaultRateLimit
	}
	t, err := time.Parse("2006-01-02 15:04:05", strings.Replace(m[1], "T", " ", 1))
	if err != nil {
		return retryafter.DefaultRateLimit
	}
	if d := t.Sub(now); d > 0 {
		return d.Round(time.Second)
	}
	return retryafter.DefaultRateLimit
}
