package caproxy

import (
	"cmp"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Kind names a fault.
type Kind string

// The faults a Rule injects.
const (
	// RateLimited answers 429 with a rateLimited problem and a Retry-After
	// header, without forwarding.
	RateLimited Kind = "rateLimited"
	// ServerError answers 500 (or Rule.Status 503) with a serverInternal
	// problem, without forwarding.
	ServerError Kind = "serverInternal"
	// BadNonce answers 400 with a badNonce problem and a fresh Replay-Nonce
	// from the CA, without forwarding. Clients retry it (RFC 8555 section
	// 6.5).
	BadNonce Kind = "badNonce"
	// Reset cuts the connection without an answer, without forwarding. A
	// client's HTTP library may resend a GET or HEAD cut on a reused
	// connection by itself; a POST it does not.
	Reset Kind = "reset"
	// DropResponse forwards the request, then cuts the connection instead of
	// passing the CA's answer on: the CA acted, the client never heard.
	DropResponse Kind = "dropResponse"
)

// The other faults, as recorded in Injection.Kind; rules do not take them.
const (
	// RetryAfter is Faults.PollRetryAfter setting a Retry-After header.
	RetryAfter Kind = "retryAfter"
	// Freeze is a request held by Proxy.Freeze.
	Freeze Kind = "freeze"
	// Down is Proxy.Down closing the listener.
	Down Kind = "down"
)

// Problem types (RFC 8555 section 6.7).
const (
	problemRateLimited    = "urn:ietf:params:acme:error:rateLimited"
	problemServerInternal = "urn:ietf:params:acme:error:serverInternal"
	problemBadNonce       = "urn:ietf:params:acme:error:badNonce"
)

// defaultFreeze bounds a Freeze given no bound.
const defaultFreeze = time.Minute

// Rule injects one kind of fault into the requests it matches.
type Rule struct {
	Kind Kind
	// Ops are the operations the rule applies to; empty means any.
	Ops []Op
	// Probability is the chance that a matching request gets the fault;
	// zero means every one.
	Probability float64
	// Count caps how many times the rule fires; zero means no cap.
	Count int
	// Status is the HTTP status of ServerError: 500 (zero means 500) or 503.
	Status int
	// RetryAfter is the Retry-After of RateLimited answers (zero means one
	// second) and of ServerError answers (zero means none).
	RetryAfter time.Duration
}

// Faults is what the proxy injects. The zero value injects nothing.
type Faults struct {
	// Rules are tried in order for each request; the first that fires
	// decides its fault.
	Rules []Rule
	// PollRetryAfter, when positive, sets "Retry-After: N" (N its whole
	// seconds, rounded up) on the CA's 200 answers about an order, an
	// authorization or a challenge whose status is not final: POST-as-GETs
	// of them and the answer to a challenge POST, which is where lego and
	// certflow read the first polling delay from.
	PollRetryAfter time.Duration
}

func (f Faults) validate() error {
	for i, r := range f.Rules {
		switch r.Kind {
		case RateLimited, BadNonce, Reset, DropResponse:
		case ServerError:
			if r.Status != 0 && r.Status != http.StatusInternalServerError && r.Status != http.StatusServiceUnavailable {
				return fmt.Errorf("caproxy rule %d: status %d, want 500 or 503", i, r.Status)
			}
		default:
			return fmt.Errorf("caproxy rule %d: unknown kind %q", i, r.Kind)
		}
		if r.Probability < 0 || r.Probability > 1 {
			return fmt.Errorf("caproxy rule %d: probability %v, want 0 to 1", i, r.Probability)
		}
		if r.Count < 0 || r.RetryAfter < 0 {
			return fmt.Errorf("caproxy rule %d: negative count or Retry-After", i)
		}
	}
	return nil
}

// problem returns the HTTP status, problem type and Retry-After (empty for
// none) of an answering rule.
func (r Rule) problem() (status int, typ, retryAfter string) {
	switch r.Kind {
	case RateLimited:
		return http.StatusTooManyRequests, problemRateLimited, seconds(cmp.Or(r.RetryAfter, time.Second))
	case BadNonce:
		return http.StatusBadRequest, problemBadNonce, ""
	default:
		status = cmp.Or(r.Status, http.StatusInternalServerError)
		if r.RetryAfter > 0 {
			retryAfter = seconds(r.RetryAfter)
		}
		return status, problemServerInternal, retryAfter
	}
}

// seconds formats d as a Retry-After delay (RFC 9110 section 10.2.3):
// whole seconds, rounded up.
func seconds(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}

// faultState holds the faults in force and how often each rule fired. It
// is safe for concurrent use.
type faultState struct {
	mu     sync.Mutex
	faults Faults
	fired  []int
}

func (s *faultState) set(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.Rules = slices.Clone(f.Rules)
	s.faults = f
	s.fired = make([]int, len(f.Rules))
}

// pick returns the rule that fires for a request of op, if any.
func (s *faultState) pick(op Op) (Rule, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.faults.Rules {
		if len(r.Ops) > 0 && !slices.Contains(r.Ops, op) {
			continue
		}
		if r.Count > 0 && s.fired[i] >= r.Count {
			continue
		}
		if r.Probability > 0 && rand.Float64() >= r.Probability {
			continue
		}
		s.fired[i]++
		return r, true
	}
	return Rule{}, false
}

func (s *faultState) pollRetryAfter() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.PollRetryAfter
}

// pollRetryAfter returns the Retry-After to set on the CA's answer to a
// request of op, when d is positive and the answer is about an order,
// authorization or challenge that is not final (RFC 8555 section 7.1.6).
func pollRetryAfter(op Op, status int, body []byte, d time.Duration) (string, bool) {
	if d <= 0 || status != http.StatusOK {
		return "", false
	}
	switch op {
	case OpOrder, OpAuthz, OpChallenge, OpChallengePoll:
	default:
		return "", false
	}
	var resource struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(body, &resource) != nil || resource.Status == "" {
		return "", false
	}
	switch resource.Status {
	case "valid", "invalid", "deactivated", "expired", "revoked":
		return "", false
	}
	return seconds(d), true
}

// freezer holds requests while frozen. It is safe for concurrent use.
type freezer struct {
	mu     sync.Mutex
	thawed chan struct{} // closed by thaw; nil when not frozen
	timer  *time.Timer
}

func (f *freezer) freeze(limit time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.thawed == nil {
		f.thawed = make(chan struct{})
	} else {
		f.timer.Stop()
	}
	f.timer = time.AfterFunc(cmp.Or(limit, defaultFreeze), f.thaw)
}

func (f *freezer) thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.thawed == nil {
		return
	}
	f.timer.Stop()
	close(f.thawed)
	f.thawed = nil
}

// frozen returns a channel closed when the freeze ends, or nil when not
// frozen.
func (f *freezer) frozen() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.thawed
}

// writeProblem answers with an RFC 7807 problem document.
func writeProblem(w http.ResponseWriter, status int, typ, detail string) {
	b, _ := json.Marshal(map[string]any{"type": typ, "detail": detail, "status": status})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// reset cuts the client's connection without an answer. The TCP connection
// under TLS is closed with SO_LINGER 0, so the client reads a reset rather
// than an orderly TLS close.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		writeProblem(w, http.StatusBadGateway, problemServerInternal, "caproxy: cannot cut this connection")
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
