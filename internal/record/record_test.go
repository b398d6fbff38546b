package record

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/metrics"
	"github.com/certflow/certflow/internal/notify"
	"github.com/certflow/certflow/internal/validation"

	"github.com/certflow/certflow/internal/fixtures"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type recordCall struct {
	domain, execution string
	detail            failure.Detail
	wait              bool // RecordWait, not RecordFailure
	outage            bool
	nextAttemptAt     time.Time
	now               time.Time
}

// fakeStore is a Recorder and Quarantiner over one domain's counters.
type fakeStore struct {
	count      int       // failures before the call
	first      time.Time // first failure, zero if none
	outages    int       // outages before the call
	waits      int       // waits of the execution before the call
	status     certstore.Status
	getErr     error
	recordErr  error
	quarErr    error
	records    []recordCall
	quarantine []string // "domain execution reason message unpauseURL"
}

func (f *fakeStore) GetConsistent(_ context.Context, domain string) (*certstore.Certificate, error) {
	if f.getErr != nil {
		return nil, f.getErr
	}
	return &certstore.Certificate{Domain: domain, Status: f.status, FailureCount: f.count, FirstFailureAt: f.first, OutageCount: f.outages, Waits: f.waits}, nil
}

func (f *fakeStore) attempt() certstore.Attempt {
	return certstore.Attempt{FailureCount: f.count, FirstFailureAt: f.first, OutageCount: f.outages, Waits: f.waits}
}

func (f *fakeStore) RecordFailure(_ context.Context, domain, execution string, d failure.Detail, nextAttemptAt, now time.Time) (certstore.Attempt, error) {
	if f.recordErr != nil {
		return certstore.Attempt{}, f.recordErr
	}
	f.records = append(f.records, recordCall{domain, execution, d, false, false, nextAttemptAt, now})
	f.count++
	f.waits++
	if f.first.IsZero() {
		f.first = now
	}
	return f.attempt(), nil
}

func (f *fakeStore) RecordWait(_ context.Context, domain, execution string, d failure.Detail, outage bool, nextAttemptAt, now time.Time) (certstore.Attempt, error) {
	if f.recordErr != nil {
		return certstore.Attempt{}, f.recordErr
	}
	f.records = append(f.records, recordCall{domain, execution, d, true, outage, nextAttemptAt, now})
	f.waits++
	if outage {
		f.outages++
	}
	return f.attempt(), nil
}

func (f *fakeStore) Quarantine(_ context.Context, domain, execution, reason, message, unpauseURL string) error {
	if f.quarErr != nil {
		return f.quarErr
	}
	f.quarantine = append(f.quarantine, strings.Join([]string{domain, execution, reason, message, unpauseURL}, " "))
	return nil
}

type fakePublisher struct {
	events []notify.Event
	err    error
}

func (f *fakePublisher) Publish(_ context.Context, ev notify.Event) error {
	if f.err != nil {
		return f.err
	}
	f.events = append(f.events, ev)
	return nil
}

func cause(t *testing.T, errorType string, d failure.Detail) *flow.Caught {
	t.Helper()
	msg, _ := json.Marshal(d)
	payload, _ := json.Marshal(map[string]string{"errorType": errorType, "errorMessage": string(msg)})
	asString, _ := json.Marshal(string(payload))
	return &flow.Caught{Error: errorType, Cause: asString}
}

var policy = Policy{BackoffBaseSeconds: 1200, BackoffMaxSeconds: 86400, OutageBaseSeconds: 60, OutageMaxSeconds: 3600}

func TestPolicyWait(t *testing.T) {
	tests := []struct {
		count int
		want  time.Duration
	}{
		{1, 20 * time.Minute}, {2, 40 * time.Minute}, {3, 80 * time.Minute}, {5, 320 * time.Minute},
		{7, 1280 * time.Minute}, {8, 24 * time.Hour}, {64, 24 * time.Hour}, {1000, 24 * time.Hour},
	}
	for _, tt := range tests {
		if got := policy.Wait(tt.count); got != tt.want {
			t.Errorf("Wait(%d) = %v, want %v", tt.count, got, tt.want)
		}
	}
}

const execution = "issue-6f8150d5232c83f037ba6e0e821e42ff96dca018"

// newHandler is a Handler at testNow whose jitter is none (the full
// backoff), writing metrics to emf.
func newHandler(store *fakeStore, pub *fakePublisher, emf io.Writer) *Handler {
	h := New(store, store, pub, metrics.New(emf, metrics.Namespace, func() time.Time { return testNow }), func() time.Time { return testNow })
	h.rand = func() float64 { return 1 }
	return h
}

func TestRecord(t *testing.T) {
	challenge := failure.Detail{Code: failure.CodeChallengeFailed, Message: "connection refused"}
	caDown := failure.Detail{Code: failure.CodeCAUnreachable, Message: "dial tcp: connection refused"}
	rateLimited := failure.Detail{Code: failure.CodeRateLimited, Message: "too many", RetryAfterSeconds: 90}
	tests := []struct {
		name       string
		store      *fakeStore
		in         Input
		want       Result
		wantCall   *recordCall // the store call, domain and execution aside; nil = none
		wantEvents int
		wantErr    string // substring
		invalid    bool
	}{
		{"first failure", &fakeStore{},
			Input{Action: ActionFailure, Error: cause(t, "ChallengeFailedError", challenge), Policy: policy},
			Result{Code: "challenge_failed", Message: "connection refused", FailureCount: 1, WaitSeconds: 1200},
			&recordCall{detail: challenge, nextAttemptAt: testNow.Add(1200 * time.Second)}, 1, "", false},
		{"third failure", &fakeStore{count: 2, first: testNow.Add(-2 * time.Hour)},
			Input{Action: ActionFailure, Error: cause(t, "ChallengeFailedError", challenge), Policy: policy},
			Result{Code: "challenge_failed", Message: "connection refused", FailureCount: 3, FailureAgeSeconds: 7200, WaitSeconds: 4800},
			&recordCall{detail: challenge, nextAttemptAt: testNow.Add(4800 * time.Second)}, 1, "", false},
		{"capped", &fakeStore{count: 20, first: testNow.Add(-72 * time.Hour)},
			Input{Action: ActionFailure, Error: cause(t, "DomainNotPointedError", failure.Detail{Code: failure.CodeDomainNotPointed, Message: "elsewhere"}), Policy: policy},
			Result{Code: "domain_not_pointed", Message: "elsewhere", FailureCount: 21, FailureAgeSeconds: 259200, WaitSeconds: 86400},
			&recordCall{detail: failure.Detail{Code: failure.CodeDomainNotPointed, Message: "elsewhere"}, nextAttemptAt: testNow.Add(24 * time.Hour)}, 1, "", false},
		{"paused carries the unpause link", &fakeStore{},
			Input{Action: ActionFailure, Error: cause(t, "AccountPausedError", failure.Detail{Code: failure.CodeAccountPaused, Message: "paused", UnpauseURL: "https://ca.example/u"}), Policy: policy},
			Result{Code: "account_paused", Message: "paused", FailureCount: 1, WaitSeconds: 1200, UnpauseURL: "https://ca.example/u"},
			&recordCall{detail: failure.Detail{Code: failure.CodeAccountPaused, Message: "paused", UnpauseURL: "https://ca.example/u"}, nextAttemptAt: testNow.Add(1200 * time.Second)}, 1, "", false},
		{"the bound of waits postpones", &fakeStore{count: 1, first: testNow, waits: 19},
			Input{Action: ActionFailure, Error: cause(t, "ChallengeFailedError", challenge), Policy: withMaxWaits(20)},
			Result{Code: "challenge_failed", Message: "connection refused", FailureCount: 2, WaitSeconds: 2400, Postpone: true},
			&recordCall{detail: challenge, nextAttemptAt: testNow.Add(2400 * time.Second)}, 1, "", false},
		{"a step timeout is an outage, not the domain's failure", &fakeStore{count: 3},
			Input{Action: ActionFailure, Error: &flow.Caught{Error: "States.Timeout", Cause: json.RawMessage(`null`)}, Policy: policy},
			Result{Code: "step_timeout", Message: "execution step failed with States.Timeout", FailureCount: 3, WaitSeconds: 60},
			&recordCall{detail: failure.Detail{Code: failure.CodeStepTimeout, Message: "execution step failed with States.Timeout"}, wait: true, outage: true, nextAttemptAt: testNow.Add(time.Minute)}, 0, "", false},
		{"outage backoff grows", &fakeStore{outages: 3},
			Input{Action: ActionOutage, Error: cause(t, "TransientError", caDown), Policy: policy},
			Result{Code: "ca_unreachable", Message: "dial tcp: connection refused", WaitSeconds: 480},
			&recordCall{detail: caDown, wait: true, outage: true, nextAttemptAt: testNow.Add(8 * time.Minute)}, 0, "", false},
		{"outage backoff capped", &fakeStore{outages: 40},
			Input{Action: ActionOutage, Error: cause(t, "TransientError", caDown), Policy: policy},
			Result{Code: "ca_unreachable", Message: "dial tcp: connection refused", WaitSeconds: 3600},
			&recordCall{detail: caDown, wait: true, outage: true, nextAttemptAt: testNow.Add(time.Hour)}, 0, "", false},
		{"rate limit waits Retry-After", &fakeStore{count: 4},
			Input{Action: ActionRateLimit, Error: cause(t, "RateLimitedError", rateLimited), Policy: policy},
			Result{Code: "rate_limited", Message: "too many", RetryAfterSeconds: 90, FailureCount: 4, WaitSeconds: 90},
			&recordCall{detail: rateLimited, wait: true, nextAttemptAt: testNow.Add(90 * time.Second)}, 0, "", false},
		{"rate limit reaching RecordFailure is still a rate limit", &fakeStore{},
			Input{Action: ActionFailure, Error: cause(t, "RateLimitedError", rateLimited), Policy: policy},
			Result{Code: "rate_limited", Message: "too many", RetryAfterSeconds: 90, WaitSeconds: 90},
			&recordCall{detail: rateLimited, wait: true, nextAttemptAt: testNow.Add(90 * time.Second)}, 0, "", false},
		{"rate limit without Retry-After", &fakeStore{},
			Input{Action: ActionRateLimit, Error: cause(t, "RateLimitedError", failure.Detail{Code: failure.CodeRateLimited, Message: "too many"})},
			Result{Code: "rate_limited", Message: "too many", WaitSeconds: 3600},
			&recordCall{detail: failure.Detail{Code: failure.CodeRateLimited, Message: "too many"}, wait: true, nextAttemptAt: testNow.Add(time.Hour)}, 0, "", false},
		{"rate limit clamped", &fakeStore{},
			Input{Action: ActionRateLimit, Error: cause(t, "RateLimitedError", failure.Detail{Code: failure.CodeRateLimited, Message: "x", RetryAfterSeconds: 7 * 86400})},
			Result{Code: "rate_limited", Message: "x", RetryAfterSeconds: 7 * 86400, WaitSeconds: 86400},
			&recordCall{detail: failure.Detail{Code: failure.CodeRateLimited, Message: "x", RetryAfterSeconds: 7 * 86400}, wait: true, nextAttemptAt: testNow.Add(24 * time.Hour)}, 0, "", false},
		{"no error", &fakeStore{}, Input{Action: ActionFailure, Policy: policy}, Result{}, nil, 0, "without error", true},
		{"no policy", &fakeStore{}, Input{Action: ActionFailure, Error: cause(t, "ChallengeFailedError", challenge)}, Result{}, nil, 0, "policy", true},
		{"another execution owns the domain", &fakeStore{recordErr: certstore.ErrSuperseded},
			Input{Action: ActionFailure, Error: cause(t, "ChallengeFailedError", challenge), Policy: policy}, Result{}, nil, 0, "superseded", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{}
			var emf bytes.Buffer
			tt.in.Domain, tt.in.Execution = "a.example", execution
			got, err := newHandler(tt.store, pub, &emf).Handle(context.Background(), tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Handle() error = %v, want one containing %q", err, tt.wantErr)
				}
				var inv *failure.InvalidInputError
				if errors.As(err, &inv) != tt.invalid {
					t.Errorf("Handle() error = %v, want InvalidInputError %v", err, tt.invalid)
				}
				return
			}
			if err != nil {
				t.Fatalf("Handle() error: %v", err)
			}
			if got != tt.want {
				t.Errorf("Handle() = %+v, want %+v", got, tt.want)
			}
			if tt.wantCall != nil {
				want := *tt.wantCall
				want.domain, want.execution, want.now = "a.example", execution, testNow
				if len(tt.store.records) != 1 || tt.store.records[0] != want {
					t.Errorf("store calls = %+v, want [%+v]", tt.store.records, want)
				}
			}
			if len(pub.events) != tt.wantEvents {
				t.Fatalf("published %d events, want %d", len(pub.events), tt.wantEvents)
			}
			if tt.wantEvents == 1 {
				want := notify.Event{Type: notify.TypeFailed, Domain: "a.example", ReasonCode: tt.want.Code, Message: tt.want.Message, FailureCount: tt.want.FailureCount, UnpauseURL: tt.want.UnpauseURL}
				if pub.events[0] != want {
					t.Errorf("event = %+v, want %+v", pub.events[0], want)
				}
			}
			if !strings.Contains(emf.String(), `"IssuanceFailures":1`) || !strings.Contains(emf.String(), `"Code":"`+tt.want.Code+`"`) {
				t.Errorf("metrics = %s, want IssuanceFailures with Code %s", emf.String(), tt.want.Code)
			}
			if ca := strings.Contains(emf.String(), `"CAUnavailable":1`); ca != strings.HasPrefix(tt.want.Code, "ca_") {
				t.Errorf("CAUnavailable emitted = %v for code %s", ca, tt.want.Code)
			}
		})
	}
}

func withMaxWaits(n int) Policy {
	p := policy
	p.MaxWaits = n
	return p
}

// TestOutageJitter: outages of many domains at once come back spread over
// [wait/2, wait], never at once.
func TestOutageJitter(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999} {
		store := &fakeStore{outages: 2}
		h := newHandler(store, &fakePublisher{}, io.Discard)
		h.rand = func() float64 { return r }
		got, err := h.Handle(context.Background(), Input{Action: ActionOutage, Domain: "a.example", Execution: execution, Policy: policy,
			Error: cause(t, "TransientError", failure.Detail{Code: failure.CodeCAError, Message: "500"})})
		if err != nil {
			t.Fatal(err)
		}
		if full := int64(240); got.WaitSeconds < full/2 || got.WaitSeconds > full {
			t.Errorf("rand %v: wait %ds, want within [%d, %d]", r, got.WaitSeconds, full/2, full)
		}
	}
}

// TestRetiredEndsQuietly: a domain the platform retired while its execution
// ran gets nothing recorded and no event; the step answers
// DomainRetiredError, which the state machine ends on.
func TestRetiredEndsQuietly(t *testing.T) {
	challenge := cause(t, "ChallengeFailedError", failure.Detail{Code: failure.CodeChallengeFailed, Message: "x"})
	tests := []struct {
		name  string
		store *fakeStore
		in    Input
	}{
		{"retired before the outage wait", &fakeStore{recordErr: certstore.ErrRetired}, Input{Action: ActionOutage, Error: challenge, Policy: policy}},
		{"retired while recording", &fakeStore{recordErr: certstore.ErrRetired}, Input{Action: ActionFailure, Error: challenge, Policy: policy}},
		{"retired before the quarantine", &fakeStore{quarErr: certstore.ErrRetired}, Input{Action: ActionQuarantine, Reason: "too_many_failures"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{}
			h := newHandler(tt.store, pub, io.Discard)
			tt.in.Domain, tt.in.Execution = "a.example", execution
			_, err := h.Handle(context.Background(), tt.in)
			if f, ok := failure.Find(err); !ok || failure.TypeName(f) != "DomainRetiredError" {
				t.Fatalf("Handle() error = %v, want DomainRetiredError", err)
			}
			if len(tt.store.records) != 0 || len(tt.store.quarantine) != 0 || len(pub.events) != 0 {
				t.Errorf("recorded %v, quarantined %v, published %v; want nothing", tt.store.records, tt.store.quarantine, pub.events)
			}
		})
	}
}

func TestFailurePublishErrorIsNotFatal(t *testing.T) {
	store := &fakeStore{}
	h := New(store, store, &fakePublisher{err: errors.New("bus down")}, nil, func() time.Time { return testNow })
	_, err := h.Handle(context.Background(), Input{Action: ActionFailure, Domain: "a.example", Execution: execution, Policy: policy,
		Error: cause(t, "ChallengeFailedError", failure.Detail{Code: failure.CodeChallengeFailed, Message: "x"})})
	if err != nil {
		t.Errorf("Handle() error = %v, want nil: the failure is recorded, the event is best effort", err)
	}
}

func TestQuarantine(t *testing.T) {
	paused := failure.Detail{Code: failure.CodeAccountPaused, Message: "paused", UnpauseURL: "https://ca.example/u"}
	tests := []struct {
		name      string
		store     *fakeStore
		pub       *fakePublisher
		in        Input
		want      Result
		wantStore string
		wantErr   bool
	}{
		{"reason and error", &fakeStore{}, &fakePublisher{}, Input{Reason: "account_paused", Error: cause(t, "AccountPausedError", paused)},
			Result{Code: "account_paused", Message: "paused", UnpauseURL: "https://ca.example/u", Quarantined: true}, "a.example " + execution + " account_paused paused https://ca.example/u", false},
		{"reason from error", &fakeStore{}, &fakePublisher{}, Input{Error: cause(t, "DomainRejectedError", failure.Detail{Code: failure.CodeDomainRejected, Message: "blocked"})},
			Result{Code: "domain_rejected", Message: "blocked", Quarantined: true}, "a.example " + execution + " domain_rejected blocked ", false},
		{"reason only", &fakeStore{}, &fakePublisher{}, Input{Reason: "too_many_failures"},
			Result{Code: "too_many_failures", Quarantined: true}, "a.example " + execution + " too_many_failures  ", false},
		{"nothing", &fakeStore{}, &fakePublisher{}, Input{}, Result{}, "", true},
		{"store fails", &fakeStore{quarErr: certstore.ErrRetired}, &fakePublisher{}, Input{Reason: "x"}, Result{}, "", true},
		{"publish fails after the quarantine", &fakeStore{}, &fakePublisher{err: &failure.TransientError{Message: "throttled"}}, Input{Reason: "x"}, Result{Code: "x", Quarantined: true}, "a.example " + execution + " x  ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var emf bytes.Buffer
			h := newHandler(tt.store, tt.pub, &emf)
			tt.in.Action, tt.in.Domain, tt.in.Execution = ActionQuarantine, "a.example", execution
			got, err := h.Handle(context.Background(), tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Handle() error = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantStore != "" && (len(tt.store.quarantine) != 1 || tt.store.quarantine[0] != tt.wantStore) {
				t.Errorf("Quarantine calls = %q, want [%q]", tt.store.quarantine, tt.wantStore)
			}
			if err != nil {
				return
			}
			if got != tt.want {
				t.Errorf("Handle() = %+v, want %+v", got, tt.want)
			}
			if tt.pub.err == nil && (len(tt.pub.events) != 1 || tt.pub.events[0].Type != notify.TypeQuarantined || tt.pub.events[0].ReasonCode != tt.want.Code) {
				t.Errorf("events = %+v, want one %q with reason %q", tt.pub.events, notify.TypeQuarantined, tt.want.Code)
			}
			if !strings.Contains(emf.String(), `"DomainsQuarantined":1`) {
				t.Errorf("metrics = %s, want DomainsQuarantined", emf.String())
			}
		})
	}
}

func TestHandleInvalid(t *testing.T) {
	h := New(&fakeStore{}, &fakeStore{}, &fakePublisher{}, nil, nil)
	for _, in := range []Input{{Action: "failure"}, {Action: "explode", Domain: "a.example"}} {
		_, err := h.Handle(context.Background(), in)
		var inv *failure.InvalidInputError
		if !errors.As(err, &inv) {
			t.Errorf("Handle(%+v) error = %v, want InvalidInputError", in, err)
		}
	}
}

// TestFixtures runs the events/record-*.json fixtures (also used with sam
// local invoke) through Handle and checks the JSON the state machine gets.
func TestFixtures(t *testing.T) {
	tests := []struct {
		file       string
		store      *fakeStore
		want       string
		wantEvent  *notify.Event
		wantRecord string // code recorded, if any
	}{
		{"record-failure.json", &fakeStore{count: 1, first: testNow.Add(-30 * time.Minute)},
			`{"code":"challenge_failed","message":"127.0.0.2: Invalid response from http://blog.customer.example/.well-known/acme-challenge/x: 404","retryAfterSeconds":0,"failureCount":2,"failureAgeSeconds":1800,"waitSeconds":2400,"unpauseURL":"","postpone":false,"fallbackCA":""}`,
			&notify.Event{Type: notify.TypeFailed, Domain: "blog.customer.example", ReasonCode: "challenge_failed",
				Message: "127.0.0.2: Invalid response from http://blog.customer.example/.well-known/acme-challenge/x: 404", FailureCount: 2},
			"challenge_failed"},
		{"record-quarantine.json", &fakeStore{},
			`{"code":"account_paused","message":"issuance paused for blog.customer.example after too many failed validations","retryAfterSeconds":0,"failureCount":0,"failureAgeSeconds":0,"waitSeconds":0,"unpauseURL":"https://acme.example/unpause?account=1\u0026hostname=blog.customer.example","postpone":false,"fallbackCA":"","quarantined":true}`,
			&notify.Event{Type: notify.TypeQuarantined, Domain: "blog.customer.example", ReasonCode: "account_paused",
				Message: "issuance paused for blog.customer.example after too many failed validations", UnpauseURL: "https://acme.example/unpause?account=1&hostname=blog.customer.example"},
			""},
		{"record-outage.json", &fakeStore{outages: 1},
			`{"code":"ca_unreachable","message":"ACME directory https://127.0.0.1:14000/dir: dial tcp 127.0.0.1:14000: connect: connection refused","retryAfterSeconds":0,"failureCount":0,"failureAgeSeconds":0,"waitSeconds":120,"unpauseURL":"","postpone":false,"fallbackCA":""}`,
			nil, "ca_unreachable"},
		{"record-ratelimit.json", &fakeStore{},
			`{"code":"rate_limited","message":"too many new orders (300) from this account in the last 3h0m0s","retryAfterSeconds":1800,"failureCount":0,"failureAgeSeconds":0,"waitSeconds":1800,"unpauseURL":"","postpone":false,"fallbackCA":""}`,
			nil, "rate_limited"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in := fixtures.StrictEvent[Input](t, tt.file)
			pub := &fakePublisher{}
			got, err := newHandler(tt.store, pub, io.Discard).Handle(context.Background(), in)
			if err != nil {
				t.Fatalf("Handle(%s) error: %v", tt.file, err)
			}
			out, _ := json.Marshal(got)
			if string(out) != tt.want {
				t.Errorf("Handle(%s) = %s, want %s", tt.file, out, tt.want)
			}
			switch {
			case tt.wantEvent == nil && len(pub.events) != 0:
				t.Errorf("events = %+v, want none", pub.events)
			case tt.wantEvent != nil && (len(pub.events) != 1 || !reflect.DeepEqual(pub.events[0], *tt.wantEvent)):
				t.Errorf("events = %+v, want [%+v]", pub.events, *tt.wantEvent)
			}
			if tt.wantRecord != "" && (len(tt.store.records) != 1 || tt.store.records[0].detail.Code != tt.wantRecord) {
				t.Errorf("store calls = %+v, want one with code %q", tt.store.records, tt.wantRecord)
			}
		})
	}
}

// TestFallbackCA: with a fallback CA configured, a failed attempt of an
// execution on the primary says where it may turn; on the fallback,
// without one, or for a domain whose DNS-PERSIST-01 record names the
// primary's account, it says nothing.
func TestFallbackCA(t *testing.T) {
	outage := cause(t, "TransientError", failure.Detail{Code: failure.CodeCAUnreachable, Message: "refused"})
	tests := []struct {
		name       string
		fallback   bool
		ca         string
		validation validation.Method
		want       string
	}{
		{"on the primary, fallback configured", true, flow.CAPrimary, "", flow.CAFallback},
		{"no CA named yet", true, "", "", flow.CAFallback},
		{"validated by DNS-01", true, flow.CAPrimary, validation.DNS01, flow.CAFallback},
		{"validated by DNS-PERSIST-01", true, flow.CAPrimary, validation.DNSPersist01, ""},
		{"already on the fallback", true, flow.CAFallback, "", ""},
		{"no fallback configured", false, flow.CAPrimary, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHandler(&fakeStore{}, &fakePublisher{}, io.Discard)
			if tt.fallback {
				h.WithFallbackCA()
			}
			got, err := h.Handle(context.Background(), Input{Action: ActionOutage, Domain: "a.example", Execution: execution, CA: tt.ca, Validation: tt.validation, Error: outage, Policy: policy})
			if err != nil || got.FallbackCA != tt.want {
				t.Errorf("Handle() = %+v, %v; want fallbackCA %q", got, err, tt.want)
			}
		})
	}
}
