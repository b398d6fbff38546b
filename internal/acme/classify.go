package acme

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
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

// transportTexts are what transport failures read like once flattened to
// text: go-jose formats the error of lego's nonce fetch with %v
// (notes/lego.md), so nothing typed is left to find.
var transportTexts = []string{
	"connection refused", "no such host", "i/o timeout", "connection reset",
	"EOF", "TLS handshake", "Error generating nonce", "network is unreachable",
}

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
	code       string // of a TransientError
	reason     string // of a ChallengeFailedError
	message    string
	retryAfter time.Duration
	unpauseURL string
}

// Classify maps an error of a request to the CA to the failure type the
// state machine decides on (see package failure), answering whose fault it
// is. It looks at every problem in err's tree (the failures of an order's
// names are joined) and the most decisive one (paused > rate limited >
// rejected name > failed challenge > transient) determines the class:
//
//   - the CA not reached (connection refused or reset, DNS, TLS, a
//     timeout, the text of such an error): TransientError CodeCAUnreachable;
//   - the CA failing (5xx, serverInternal, badNonce after retries, an
//     answer that cannot be read): TransientError CodeCAError;
//   - a challenge the CA judged (unauthorized, connection, dns, tls,
//     incorrectResponse): ChallengeFailedError, with a Reason for
//     dns-persist-01 records;
//   - rejectedIdentifier, caa, unsupportedIdentifier: DomainRejectedError;
//   - rateLimited: RateLimitedError (Retry-After from the header or the
//     detail), or AccountPausedError when it links to an unpause page.
//
// An error it cannot classify is returned unchanged, and one already
// classified as well; nil stays nil. now anchors Retry-After dates.
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
		return &failure.ChallengeFailedError{Message: msg, Reason: best.reason, Err: err}
	case classTransient:
		return &failure.TransientError{Code: best.code, Message: msg, Err: err}
	default:
		return err
	}
}

// walk calls fn for err and every error it wraps, depth first, following
// both Unwrap() error and Unwrap() []error (the per-name errors of an
// order).
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

// errNotSent marks a phase that was not begun: nothing reached the CA.
var errNotSent = errors.New("acme: not sent")

// NotSent reports whether the request that failed with err certainly never
// reached the CA: the phase was not begun (too close to the deadline), or
// no connection to the CA could be made. A request that may have been
// received (a reset, a timeout, an answer lost) is not NotSent: newOrder
// may have created an order.
func NotSent(err error) bool {
	if errors.Is(err, errNotSent) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func unreachable(msg string) finding {
	return finding{class: classTransient, code: failure.CodeCAUnreachable, message: msg}
}

func caError(msg string) finding {
	return finding{class: classTransient, code: failure.CodeCAError, message: msg}
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
		return caError(problemMessage(v.ProblemDetails))
	case *legoacme.ProblemDetails:
		return problemFinding(v, now)
	case *answerError:
		return caError(v.Error())
	case *url.Error:
		return unreachable("CA unreachable: " + v.Error())
	}
	if errors.Is(e, context.DeadlineExceeded) {
		return unreachable("timeout talking to the CA: " + e.Error())
	}
	var ne net.Error
	if errors.As(e, &ne) {
		return unreachable("network error talking to the CA: " + e.Error())
	}
	msg := e.Error()
	if m := rawStatusPattern.FindStringSubmatch(msg); m != nil && m[1][0] == '5' {
		return caError("CA answered " + m[1])
	}
	for _, s := range transportTexts {
		if strings.Contains(msg, s) {
			return unreachable("CA unreachable: " + msg)
		}
	}
	switch {
	case msg == "invalid authorization":
		return finding{class: classChallenge, message: msg}
	case strings.Contains(msg, "time limit exceeded"):
		// lego's DNS-01 propagation wait: the DNS provider is slow.
		return finding{class: classTransient, code: failure.CodeDependencyError, message: msg}
	}
	return finding{}
}

// problemFinding classifies an ACME problem document, including its
// subproblems (one per rejected identifier).
func problemFinding(p *legoacme.ProblemDetails, now time.Time) finding {
	if p == nil {
		return finding{}
	}
	f := finding{message: problemMessage(p)}
	if r := persistReason(p.Detail); r != "" {
		f.class, f.reason = classChallenge, r
		return f
	}
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
	case "badNonce", "serverInternal", "accountDoesNotExist":
		f.class, f.code = classTransient, failure.CodeCAError
	default:
		if p.HTTPStatus >= 500 {
			f.class, f.code = classTransient, failure.CodeCAError
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

// replacesRefused reports whether err is the CA refusing the "replaces"
// of a new order (RFC 9773 section 5) rather than the order itself:
// alreadyReplaced, and how CAs word an unknown or foreign certificate
// (Boulder: malformed or conflict about the replaces field; Pebble:
// serverInternal "could not find an order for the given certificate",
// unauthorized "did not request the certificate being replaced").
func replacesRefused(err error) bool {
	var ar *legoacme.AlreadyReplacedError
	if errors.As(err, &ar) {
		return true
	}
	var p *legoacme.ProblemDetails
	if !errors.As(err, &p) {
		return false
	}
	switch strings.TrimPrefix(p.Type, problemPrefix) {
	case "alreadyReplaced":
		return true
	case "malformed", "conflict", "serverInternal", "unauthorized":
	default:
		return false
	}
	d := strings.ToLower(p.Detail)
	for _, s := range []string{"replace", "certid", "certificate", "existing order"} {
		if strings.Contains(d, s) {
			return true
		}
	}
	return false
}
