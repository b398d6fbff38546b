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

	"github.com/certflow/certflow/internal/fixtures"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type recordCall struct {
	domain        string
	detail        failure.Detail
	nextAttemptAt time.Time
	now           time.Time
}

// fakeStore is a Recorder and Quarantiner over one domain's counters.
type fakeStore struct {
	count      int       // failures before the call
	first      time.Time // first failure, zero if none
	status     certstore.Status
	getErr     error
	recordErr  error
	quarErr    error
	records    []recordCall
	quarantine []string // "domain reason message unpauseURL"
}

func (f *fakeStore) GetConsistent(_ context.Context, domain string) (*certstore.Certificate, error) {
	if f.getErr != nil {
		return nil, f.getErr
	}
	return &certstore.Certificate{Domain: domain, Status: f.status, FailureCount: f.count, FirstFailureAt: f.first}, nil
}

func (f *fakeStore) RecordFailure(_ context.Context, domain string, d failure.Detail, nextAttemptAt, now time.Time) (int, time.Time, error) {
	if f.recordErr != nil {
		return 0, time.Time{}, f.recordErr
	}
	f.records = append(f.records, recordCall{domain, d, nextAttemptAt, now})
	f.count++
	if f.first.IsZero() {
		f.first = now
	}
	return f.count, f.first, nil
}

func (f *fakeStore) Quarantine(_ context.Context, domain, reason, message, unpauseURL string) error {
	if f.quarErr != nil {
		return f.quarErr
	}
	f.quarantine = append(f.quarantine, strings.Join([]string{domain, reason, message, unpauseURL}, " "))
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

var policy = Policy{BackoffBaseSeconds: 1200, BackoffMaxSeconds: 86400}

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

func TestFailure(t *testing.T) {
	challenge := failure.Detail{Code: failure.CodeChallengeFailed, Message: "connection refused"}
	tests := []struct {
		name       string
		store      *fakeStore
		in         Input
		want       Result
		wantNext   time.Time // recorded nextAttemptAt; zero = nothing recorded
		wantEvents int
		wantErr    string // substring
		invalid    bool
	}{
		{"first failure", &fakeStore{},
			Input{Error: cause(t, "ChallengeFailedError", challenge), Policy: policy},
			Result{Code: "challenge_failed", Message: "connection refused", FailureCount: 1, WaitSeconds: 1200},
			testNow.Add(1200 * time.Second), 1, "", false},
		{"third failure", &fakeStore{count: 2, first: testNow.Add(-2 * time.Hour)},
			Input{Error: cause(t, "ChallengeFailedError", challenge), Policy: policy},
			Result{Code: "challenge_failed", Message: "connection refused", FailureCount: 3, FailureAgeSeconds: 7200, WaitSeconds: 4800},
			testNow.Add(4800 * time.Second), 1, "", false},
		{"capped", &fakeStore{count: 20, first: testNow.Add(-72 * time.Hour)},
			Input{Error: cause(t, "DomainNotPointedError", failure.Detail{Code: failure.CodeDomainNotPointed, Message: "elsewhere"}), Policy: policy},
			Result{Code: "domain_not_pointed", Message: "elsewhere", FailureCount: 21, FailureAgeSeconds: 259200, WaitSeconds: 86400},
			testNow.Add(24 * time.Hour), 1, "", false},
		{"paused carries the unpause link", &fakeStore{},
			Input{Error: cause(t, "AccountPausedError", failure.Detail{Code: failure.CodeAccountPaused, Message: "paused", UnpauseURL: "https://ca.example/u"}), Policy: policy},
			Result{Code: "account_paused", Message: "paused", FailureCount: 1, WaitSeconds: 1200, UnpauseURL: "https://ca.example/u"},
			testNow.Add(1200 * time.Second), 1, "", false},
		{"lambda timeout without detail", &fakeStore{},
			Input{Error: &flow.Caught{Error: "States.Timeout", Cause: json.RawMessage(`null`)}, Policy: policy},
			Result{Code: "internal", Message: "execution step failed with States.Timeout", FailureCount: 1, WaitSeconds: 1200},
			testNow.Add(1200 * time.Second), 1, "", false},
		{"rate limited is not recorded", &fakeStore{count: 4},
			Input{Error: cause(t, "RateLimitedError", failure.Detail{Code: failure.CodeRateLimited, Message: "too many", RetryAfterSeconds: 90}), Policy: policy},
			Result{Code: "rate_limited", Message: "too many", RetryAfterSeconds: 90, WaitSeconds: 90},
			time.Time{}, 0, "", false},
		{"rate limit without Retry-After", &fakeStore{},
			Input{Error: cause(t, "RateLimitedError", failure.Detail{Code: failure.CodeRateLimited, Message: "too many"})},
			Result{Code: "rate_limited", Message: "too many", RetryAfterSeconds: 3600, WaitSeconds: 3600},
			time.Time{}, 0, "", false},
		{"rate limit clamped", &fakeStore{},
			Input{Error: cause(t, "RateLimitedError", failure.Detail{Code: failure.CodeRateLimited, Message: "x", RetryAfterSeconds: 7 * 86400})},
			Result{Code: "rate_limited", Message: "x", RetryAfterSeconds: 86400, WaitSeconds: 86400},
			time.Time{}, 0, "", false},
		{"no error", &fakeStore{}, Input{Policy: policy}, Result{}, time.Time{}, 0, "without error", true},
		{"no policy", &fakeStore{}, Input{Error: cause(t, "ChallengeFailedError", challenge)}, Result{}, time.Time{}, 0, "policy", true},
		{"store refuses", &fakeStore{recordErr: certstore.ErrQuarantined},
			Input{Error: cause(t, "ChallengeFailedError", challenge), Policy: policy}, Result{}, time.Time{}, 0, "quarantined", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{}
			var emf bytes.Buffer
			h := New(tt.store, tt.store, pub, metrics.New(&emf, metrics.Namespace, func() time.Time { return testNow }), func() time.Time { return testNow })
			tt.in.Action, tt.in.Domain = ActionFailure, "a.example"
			got, err := h.Handle(context.Background(), tt.in)
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
			switch {
			case tt.wantNext.IsZero() && len(tt.store.records) != 0:
				t.Errorf("RecordFailure called %d times, want none", len(tt.store.records))
			case !tt.wantNext.IsZero() && (len(tt.store.records) != 1 || !tt.store.records[0].nextAttemptAt.Equal(tt.wantNext) || !tt.store.records[0].now.Equal(testNow)):
				t.Errorf("RecordFailure calls = %+v, want one with nextAttemptAt %v", tt.store.records, tt.wantNext)
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
		})
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
		{"failure of a retired domain", &fakeStore{status: certstore.StatusRetired}, Input{Action: ActionFailure, Error: challenge, Policy: policy}},
		{"retired while recording", &fakeStore{recordErr: certstore.ErrRetired}, Input{Action: ActionFailure, Error: challenge, Policy: policy}},
		{"retired before the quarantine", &fakeStore{quarErr: certstore.ErrRetired}, Input{Action: ActionQuarantine, Reason: "too_many_failures"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{}
			h := New(tt.store, tt.store, pub, metrics.New(io.Discard, metrics.Namespace, nil), func() time.Time { return testNow })
			tt.in.Domain = "a.example"
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
	_, err := h.Handle(context.Background(), Input{Action: ActionFailure, Domain: "a.example", Policy: policy,
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
			Result{Code: "account_paused", Message: "paused", UnpauseURL: "https://ca.example/u", Quarantined: true}, "a.example account_paused paused https://ca.example/u", false},
		{"reason from error", &fakeStore{}, &fakePublisher{}, Input{Error: cause(t, "DomainRejectedError", failure.Detail{Code: failure.CodeDomainRejected, Message: "blocked"})},
			Result{Code: "domain_rejected", Message: "blocked", Quarantined: true}, "a.example domain_rejected blocked ", false},
		{"reason only", &fakeStore{}, &fakePublisher{}, Input{Reason: "too_many_failures"},
			Result{Code: "too_many_failures", Quarantined: true}, "a.example too_many_failures  ", false},
		{"nothing", &fakeStore{}, &fakePublisher{}, Input{}, Result{}, "", true},
		{"store fails", &fakeStore{quarErr: certstore.ErrRetired}, &fakePublisher{}, Input{Reason: "x"}, Result{}, "", true},
		{"publish fails", &fakeStore{}, &fakePublisher{err: &failure.TransientError{Message: "throttled"}}, Input{Reason: "x"}, Result{}, "a.example x  ", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var emf bytes.Buffer
			h := New(tt.store, tt.store, tt.pub, metrics.New(&emf, metrics.Namespace, nil), func() time.Time { return testNow })
			tt.in.Action, tt.in.Domain = ActionQuarantine, "a.example"
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
			ev := tt.pub.events[0]
			if ev.Type != notify.TypeQuarantined || ev.ReasonCode != tt.want.Code {
				t.Errorf("event = %+v, want %q with reason %q", ev, notify.TypeQuarantined, tt.want.Code)
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
		wantEvent  notify.Event
		wantRecord string // code recorded, if any
	}{
		{"record-failure.json", &fakeStore{count: 1, first: testNow.Add(-30 * time.Minute)},
			`{"code":"challenge_failed","message":"127.0.0.2: Invalid response from http://blog.customer.example/.well-known/acme-challenge/x: 404","retryAfterSeconds":0,"failureCount":2,"failureAgeSeconds":1800,"waitSeconds":2400,"unpauseURL":""}`,
			notify.Event{Type: notify.TypeFailed, Domain: "blog.customer.example", ReasonCode: "challenge_failed",
				Message: "127.0.0.2: Invalid response from http://blog.customer.example/.well-known/acme-challenge/x: 404", FailureCount: 2},
			"challenge_failed"},
		{"record-quarantine.json", &fakeStore{},
			`{"code":"account_paused","message":"issuance paused for blog.customer.example after too many failed validations","retryAfterSeconds":0,"failureCount":0,"failureAgeSeconds":0,"waitSeconds":0,"unpauseURL":"https://acme.example/unpause?account=1\u0026hostname=blog.customer.example","quarantined":true}`,
			notify.Event{Type: notify.TypeQuarantined, Domain: "blog.customer.example", ReasonCode: "account_paused",
				Message: "issuance paused for blog.customer.example after too many failed validations", UnpauseURL: "https://acme.example/unpause?account=1&hostname=blog.customer.example"},
			""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in := fixtures.StrictEvent[Input](t, tt.file)
			pub := &fakePublisher{}
			h := New(tt.store, tt.store, pub, metrics.New(&bytes.Buffer{}, metrics.Namespace, nil), func() time.Time { return testNow })
			got, err := h.Handle(context.Background(), in)
			if err != nil {
				t.Fatalf("Handle(%s) error: %v", tt.file, err)
			}
			out, _ := json.Marshal(got)
			if string(out) != tt.want {
				t.Errorf("Handle(%s) = %s, want %s", tt.file, out, tt.want)
			}
			if len(pub.events) != 1 || !reflect.DeepEqual(pub.events[0], tt.wantEvent) {
				t.Errorf("events = %+v, want [%+v]", pub.events, tt.wantEvent)
			}
			if tt.wantRecord != "" && (len(tt.store.records) != 1 || tt.store.records[0].detail.Code != tt.wantRecord) {
				t.Errorf("RecordFailure calls = %+v, want one with code %q", tt.store.records, tt.wantRecord)
			}
		})
	}
}
