package sfnlocal

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/record"
)

// pricePerTransition is the Standard workflow price: $0.025 per 1,000 state
// transitions.
const pricePerTransition = 0.025 / 1000

// The path of a new certificate and of an ARI renewal, state by state
// (Defaults fills in what an input may leave out).
var (
	newCertificatePath = []string{"Defaults", "Preflight", "HasOrderSlot", "ReserveOrderSlot", "WaitForOrderSlot", "Issue", "Notify", "CertificateIssued"}
	ariRenewalPath     = []string{"Defaults", "Preflight", "HasOrderSlot", "Issue", "Notify", "CertificateIssued"}
)

// TestIssuanceStateMachine runs the template's definition under the local
// runtime with fake functions answering through the local Lambda Invoke
// API, one subtest per path, and checks that together they visit every
// state.
func TestIssuanceStateMachine(t *testing.T) {
	s := startStack(t)
	maxFailures := parameter(t, "MaxConsecutiveFailures")
	maxWaits := parameter(t, "MaxWaitsPerExecution")
	request := func(domain string) map[string]any {
		return map[string]any{"domain": domain, "sans": []string{"www." + domain}, "reason": flow.ReasonRequest, "generation": 1, "ca": flow.CAPrimary}
	}
	renewal := func(domain string) map[string]any {
		in := request(domain)
		in["reason"], in["replaces"], in["replacesSerial"], in["startedBy"] = flow.ReasonRenewal, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE", "87c1d5", flow.StartedByTimer
		return in
	}
	failIssue := func(n int, err error) func(f *fakeFunctions) {
		return func(f *fakeFunctions) {
			issue := f.issue
			f.issue = func(k int, in flow.Input) (flow.Issued, error) {
				if k <= n {
					return flow.Issued{}, err
				}
				return issue(k, in)
			}
		}
	}
	ran := 0
	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			ran++
			s.fns.reset()
			f(t)
		})
	}

	run("new certificate", func(t *testing.T) {
		ex := s.run(t, request("a.example"))
		assertStatus(t, ex, types.ExecutionStatusSucceeded)
		wantStates(t, ex, newCertificatePath...)
		out := ex.output(t)
		if out["status"] != "issued" || out["domain"] != "a.example" {
			t.Errorf("output = %v, want status issued for a.example", out)
		}
		assertJSON(t, s.fns.callsOf(fnPreflight)[0], `{"domain":"a.example","sans":["www.a.example"],"ca":"primary","validation":"http-01","records":[]}`)
		assertJSON(t, s.fns.callsOf(fnOrderBudget)[0], `{"domain":"a.example","ca":"primary"}`)
		var issue flow.Input
		mustUnmarshal(t, s.fns.callsOf(fnIssue)[0], &issue)
		if issue.Domain != "a.example" || len(issue.SANs) != 1 || issue.Replaces != "" || issue.OrderSlot == nil || issue.OrderSlot.Seq != 1 ||
			issue.Execution != ex.name() || issue.Generation != 1 {
			t.Errorf("issue input = %+v, want a.example with its SAN, generation, execution and order slot 1", issue)
		}
		assertJSON(t, s.fns.callsOf(fnNotify)[0], `{"domain":"a.example","certificate":{"domain":"a.example","serial":"0a1b2c","notBefore":"2026-11-21T16:00:00Z","notAfter":"2027-02-19T16:00:00Z","renewAt":"2027-01-20T16:00:00Z","renewed":false}}`)

		transitions := len(ex.entered())
		t.Logf("state transitions per new certificate: %d; Standard workflow cost per 10,000 issuances: $%.2f", transitions, float64(transitions*10000)*pricePerTransition)
	})

	run("ARI renewal skips the order budget", func(t *testing.T) {
		ex := s.run(t, renewal("renew.example"))
		assertStatus(t, ex, types.ExecutionStatusSucceeded)
		wantStates(t, ex, ariRenewalPath...)
		var issue flow.Input
		mustUnmarshal(t, s.fns.callsOf(fnIssue)[0], &issue)
		if issue.Replaces != "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE" || issue.ReplacesSerial != "87c1d5" || issue.OrderSlot != nil {
			t.Errorf("issue input = %+v, want replaces and replacesSerial of the input, no order slot", issue)
		}
		transitions := len(ex.entered())
		t.Logf("state transitions per ARI renewal: %d; cost per 10,000 renewals: $%.2f", transitions, float64(transitions*10000)*pricePerTransition)
	})

	run("renewal whose replaces the CA refuses becomes a new order under the budget", func(t *testing.T) {
		s.fns.set(failIssue(1, &failure.ReplacesRefusedError{Message: "alreadyReplaced"}))
		ex := s.run(t, renewal("replaced.example"))
		assertStatus(t, ex, types.ExecutionStatusSucceeded)
		wantStates(t, ex, "Defaults", "Preflight", "HasOrderSlot", "Issue", "DropReplaces", "ReserveOrderSlot", "WaitForOrderSlot", "Issue", "Notify", "CertificateIssued")
		var second flow.Input
		mustUnmarshal(t, s.fns.callsOf(fnIssue)[1], &second)
		if second.ARIReplaces() != "" || second.OrderSlot == nil {
			t.Errorf("second issue input = %+v, want replaces refused and an order slot", second)
		}
	})

	run("a slot already spent on an order is replaced by a new one", func(t *testing.T) {
		s.fns.set(failIssue(1, &failure.NeedsOrderSlotError{Message: "the order of slot 1 is invalid"}))
		ex := s.run(t, request("respent.example"))
		assertStatus(t, ex, types.ExecutionStatusSucceeded)
		wantStates(t, ex, "Defaults", "Preflight", "HasOrderSlot", "ReserveOrderSlot", "WaitForOrderSlot", "Issue", "ReserveOrderSlot", "WaitForOrderSlot", "Issue", "Notify", "CertificateIssued")
		var second flow.Input
		mustUnmarshal(t, s.fns.callsOf(fnIssue)[1], &second)
		if second.OrderSlot == nil || second.OrderSlot.Seq != 2 {
			t.Errorf("second issue input = %+v, want order slot 2", second)
		}
	})

	run("transient error is retried in place", func(t *testing.T) {
		s.fns.set(failIssue(1, &failure.TransientError{Message: "badNonce"}))
		ex := s.run(t, request("transient.example"))
		assertStatus(t, ex, types.ExecutionStatusSucceeded)
		wantStates(t, ex, newCertificatePath...)
		if got := len(s.fns.callsOf(fnIssue)); got != 2 {
			t.Errorf("issue calls = %d, want 2", got)
		}
		failed := lambdaFailures(ex)
		if len(failed) != 1 || aws.ToString(failed[0].Error) != "TransientError" {
			t.Fatalf("LambdaFunctionFailed events = %v, want one TransientError", failed)
		}
		d := failure.ParseCause("TransientError", causeJSON(aws.ToString(failed[0].Cause)))
		if d.Code != failure.CodeTransient || d.Message != "badNonce" {
			t.Errorf("history Cause detail = %+v, want transient badNonce", d)
		}
	})

	run("rate limit waits for Retry-After, keeping its slot, never counted", func(t *testing.T) {
		s.fns.set(failIssue(1, &failure.RateLimitedError{Message: "too many new orders", RetryAfter: 90 * time.Second}))
		ex := s.run(t, request("ratelimited.example"))
		assertStatus(t, ex, types.ExecutionStatusSucceeded)
		wantStates(t, ex, "Defaults", "Preflight", "HasOrderSlot", "ReserveOrderSlot", "WaitForOrderSlot", "Issue", "RecordRateLimit", "FallBackOrRetry", "PostponeOrRetry",
			"WaitBeforeRetry", "Preflight", "HasOrderSlot", "Issue", "Notify", "CertificateIssued")
		waits := ex.inputsOf(t, "WaitBeforeRetry")
		if got := number(waits[0], "failure", "waitSeconds"); got != 90 {
			t.Errorf("WaitBeforeRetry waited %v s, want the CA's Retry-After of 90 s", got)
		}
		var in record.Input
		mustUnmarshal(t, s.fns.callsOf(fnRecord)[0], &in)
		if in.Action != record.ActionRateLimit || in.Execution != ex.name() {
			t.Errorf("record input = %+v, want action ratelimit for %s", in, ex.name())
		}
	})

	run("a CA outage is retried with backoff, never counted against the domain", func(t *testing.T) {
		outage := &failure.TransientError{Code: failure.CodeCAUnreachable, Message: "connection refused"}
		// Issue's own retries (3) are spent twice before the CA answers.
		s.fns.set(failIssue(8, outage))
		ex := s.run(t, request("outage.example"))
		assertStatus(t, ex, types.ExecutionStatusSucceeded)
		if got := count(ex.entered(), "RecordOutage"); got != 2 {
			t.Errorf("RecordOutage entered %d times, want 2 (states %v)", got, ex.entered())
		}
		if slices.Contains(ex.entered(), "RecordFailure") || slices.Contains(ex.entered(), "Quarantine") {
			t.Errorf("an outage was counted against the domain: %v", ex.entered())
		}
		var waits []int64
		for _, in := range ex.inputsOf(t, "WaitBeforeRetry") {
			waits = append(waits, int64(number(in, "failure", "waitSeconds")))
		}
		base := int64(parameter(t, "OutageBackoffBaseSeconds"))
		if want := []int64{base, 2 * base}; !slices.Equal(waits, want) {
			t.Errorf("outage waits = %v, want %v", waits, want)
		}
	})

	run("an outage that outlasts the bound of waits ends postponed, never quarantined", func(t *testing.T) {
		s.fns.set(func(f *fakeFunctions) {
			f.preflight = func(int, preflightInput) (preflightOutput, error) {
				return preflightOutput{}, &failure.TransientError{Code: failure.CodeDependencyError, Message: "resolver timeout"}
			}
		})
		ex := s.run(t, request("longoutage.example"))
		assertStatus(t, ex, types.ExecutionStatusSucceeded)
		out := ex.output(t)
		if out["status"] != "postponed" {
			t.Errorf("output = %v, want status postponed", out)
		}
		if got := count(ex.entered(), "RecordOutage"); got != maxWaits {
			t.Errorf("RecordOutage entered %d times, want MaxWaitsPerExecution = %d", got, maxWaits)
		}
		if slices.Contains(ex.entered(), "Quarantine") {
			t.Error("an outage quarantined the domain")
		}
		t.Logf("history events of an execution that waits %d times: %d (Step Functions ends an execution at 25,000)", maxWaits, len(ex.events))
	})

	run("domain not pointed is quarantined without an order", func(t *testing.T) {
		s.fns.set(func(f *fakeFunctions) {
			f.preflight = func(int, preflightInput) (preflightOutput, error) {
				return preflightOutput{}, &failure.DomainNotPointedError{Message: "resolves to 127.0.0.2"}
			}
		})
		ex := s.run(t, request("elsewhere.example"))
		assertQuarantined(t, ex, failure.CodeDomainNotPointed)
		if got := len(s.fns.callsOf(fnPreflight)); got != maxFailures {
			t.Errorf("preflight calls = %d, want MaxConsecutiveFailures = %d", got, maxFailures)
		}
		if got := len(s.fns.callsOf(fnIssue)) + len(s.fns.callsOf(fnOrderBudget)); got != 0 {
			t.Errorf("issue and order budget calls = %d, want 0", got)
		}
	})

	run("retired while issuing ends without a record", func(t *testing.T) {
		s.fns.set(failIssue(1, &failure.DomainRetiredError{Message: "retired.example"}))
		ex := s.run(t, request("retired.example"))
		assertStatus(t, ex, types.ExecutionStatusSucceeded)
		wantStates(t, ex, "Defaults", "Preflight", "HasOrderSlot", "ReserveOrderSlot", "WaitForOrderSlot", "Issue", "DomainRetired")
		if out := ex.output(t); out["status"] != "retired" || out["domain"] != "retired.example" {
			t.Errorf("output = %v, want status retired", out)
		}
		if got := len(s.fns.callsOf(fnRecord)); got != 0 {
			t.Errorf("record calls = %d, want none", got)
		}
	})

	run("retired while backing off ends at the next record", func(t *testing.T) {
		s.fns.set(func(f *fakeFunctions) {
			f.preflight = func(int, preflightInput) (preflightOutput, error) {
				return preflightOutput{}, &failure.DomainNotPointedError{Message: "resolves to 127.0.0.2"}
			}
			f.retired["gone.example"] = true
		})
		ex := s.run(t, request("gone.example"))
		assertStatus(t, ex, types.ExecutionStatusSucceeded)
		wantStates(t, ex, "Defaults", "Preflight", "RecordFailure", "DomainRetired")
	})

	run("superseded by another execution ends quietly", func(t *testing.T) {
		s.fns.set(failIssue(1, &failure.SupersededError{Message: "another run owns the domain"}))
		ex := s.run(t, request("superseded.example"))
		assertStatus(t, ex, types.ExecutionStatusSucceeded)
		wantStates(t, ex, "Defaults", "Preflight", "HasOrderSlot", "ReserveOrderSlot", "WaitForOrderSlot", "Issue", "Superseded")
		if out := ex.output(t); out["status"] != "superseded" {
			t.Errorf("output = %v, want status superseded", out)
		}
	})

	run("superseded while reserving a slot ends quietly", func(t *testing.T) {
		s.fns.set(func(f *fakeFunctions) {
			f.budget = func(int, flow.Input) (flow.OrderSlot, error) {
				return flow.OrderSlot{}, &failure.SupersededError{Message: "another run owns the domain"}
			}
		})
		ex := s.run(t, request("superseded2.example"))
		wantStates(t, ex, "Defaults", "Preflight", "HasOrderSlot", "ReserveOrderSlot", "Superseded")
	})

	run("challenge failures back off and quarantine", func(t *testing.T) {
		s.fns.set(failIssue(1000, &failure.ChallengeFailedError{Message: "connection refused"}))
		ex := s.run(t, request("unreachable.example"))
		assertQuarantined(t, ex, failure.CodeChallengeFailed)
		issues := len(s.fns.callsOf(fnIssue))
		if issues != maxFailures {
			t.Errorf("issue calls = %d, want MaxConsecutiveFailures = %d", issues, maxFailures)
		}
		// Attempt k+1 starts waitSeconds after attempt k (plus the time the
		// steps take, which only spreads attempts further apart).
		var waits []int64
		for _, in := range ex.inputsOf(t, "WaitBeforeRetry") {
			waits = append(waits, int64(number(in, "failure", "waitSeconds")))
		}
		if want := []int64{1200, 2400, 4800, 9600, 19200}; !slices.Equal(waits, want) {
			t.Errorf("backoff waits = %v, want %v", waits, want)
		}
		attempts := []int64{0}
		for _, w := range waits {
			attempts = append(attempts, attempts[len(attempts)-1]+w)
		}
		if len(attempts) != issues {
			t.Fatalf("%d attempt times for %d issue calls", len(attempts), issues)
		}
		for i, start := range attempts {
			n := 0
			for _, a := range attempts[i:] {
				if a < start+3600 {
					n++
				}
			}
			if n > 3 {
				t.Errorf("%d issue attempts within the hour from %d s (attempts at %v), want at most 3", n, start, attempts)
			}
		}
		if got := len(s.fns.callsOf(fnOrderBudget)); got != 1 {
			t.Errorf("order budget calls = %d, want 1: the execution keeps its slot across retries", got)
		}
	})

	run("failing for too long is quarantined", func(t *testing.T) {
		s.fns.set(func(f *fakeFunctions) {
			f.ageStep = 300000
			f.preflight = func(int, preflightInput) (preflightOutput, error) {
				return preflightOutput{}, &failure.DomainNotPointedError{Message: "resolves to 127.0.0.2"}
			}
		})
		ex := s.run(t, request("flaky.example"))
		assertQuarantined(t, ex, failure.CodeDomainNotPointed)
		if got := len(ex.inputsOf(t, "WaitBeforeRetry")); got != 1 {
			t.Errorf("WaitBeforeRetry entered %d times, want 1 (quarantined when the failure age passed MaxFailureAgeSeconds)", got)
		}
	})

	run("account paused quarantines at once with the unpause link", func(t *testing.T) {
		const link = "https://acme.example/sfe/v1/unpause?jwt=abc"
		s.fns.set(failIssue(1, &failure.AccountPausedError{Message: "paused for this hostname", UnpauseURL: link}))
		ex := s.run(t, request("paused.example"))
		out := assertQuarantined(t, ex, failure.CodeAccountPaused)
		if got := len(s.fns.callsOf(fnIssue)); got != 1 {
			t.Errorf("issue calls = %d, want 1", got)
		}
		if f, _ := out["failure"].(map[string]any); f["unpauseURL"] != link {
			t.Errorf("output failure = %v, want unpauseURL %q", out["failure"], link)
		}
	})

	run("domain rejected is quarantined without retries", func(t *testing.T) {
		s.fns.set(failIssue(1, &failure.DomainRejectedError{Message: "rejectedIdentifier"}))
		ex := s.run(t, request("blocked.example"))
		assertQuarantined(t, ex, failure.CodeDomainRejected)
		wantStates(t, ex, "Defaults", "Preflight", "HasOrderSlot", "ReserveOrderSlot", "WaitForOrderSlot", "Issue", "RecordPermanentFailure", "FallBackOrQuarantine", "Quarantine", "DomainQuarantined")
	})

	run("CAA forbidding the CA is quarantined without retries", func(t *testing.T) {
		s.fns.set(func(f *fakeFunctions) {
			f.preflight = func(int, preflightInput) (preflightOutput, error) {
				return preflightOutput{}, &failure.CAAForbiddenError{Message: `0 issue "other-ca.example"`}
			}
		})
		ex := s.run(t, request("caa.example"))
		assertQuarantined(t, ex, failure.CodeCAAForbidden)
		if got := len(s.fns.callsOf(fnPreflight)); got != 1 {
			t.Errorf("preflight calls = %d, want 1", got)
		}
		if got := len(s.fns.callsOf(fnIssue)); got != 0 {
			t.Errorf("issue calls = %d, want 0", got)
		}
	})

	run("the primary CA down: the execution turns to the fallback CA, with its own budget", func(t *testing.T) {
		outage := &failure.TransientError{Code: failure.CodeCAUnreachable, Message: "connection refused"}
		s.fns.set(func(f *fakeFunctions) {
			f.fallback = true
			issue := f.issue
			f.issue = func(k int, in flow.Input) (flow.Issued, error) {
				if in.CA == flow.CAPrimary {
					return flow.Issued{}, outage
				}
				out, err := issue(k, in)
				out.CA = in.CA
				return out, err
			}
		})
		ex := s.run(t, request("fallback.example"))
		assertStatus(t, ex, types.ExecutionStatusSucceeded)
		entered := ex.entered()
		i := slices.Index(entered, "UseFallbackCA")
		if i < 0 || !slices.Equal(entered[i:], []string{"UseFallbackCA", "Preflight", "HasOrderSlot", "ReserveOrderSlot", "WaitForOrderSlot", "Issue", "Notify", "CertificateIssued"}) {
			t.Errorf("states = %v, want the fallback CA after the outage, with a slot of its budget", entered)
		}
		budgets := s.fns.callsOf(fnOrderBudget)
		var second flow.Input
		mustUnmarshal(t, budgets[len(budgets)-1], &second)
		if second.CA != flow.CAFallback {
			t.Errorf("the second slot was reserved for CA %q, want the fallback's budget", second.CA)
		}
		var pre preflightInput
		mustUnmarshal(t, s.fns.callsOf(fnPreflight)[1], &pre)
		if pre.CA != flow.CAFallback {
			t.Errorf("the preflight after the switch checked CAA for %q, want the fallback", pre.CA)
		}
	})

	run("a name the primary CA refuses is tried with the fallback before quarantine", func(t *testing.T) {
		s.fns.set(func(f *fakeFunctions) {
			f.fallback = true
			issue := f.issue
			f.issue = func(k int, in flow.Input) (flow.Issued, error) {
				if in.CA == flow.CAPrimary {
					return flow.Issued{}, &failure.DomainRejectedError{Message: "rejectedIdentifier"}
				}
				return issue(k, in)
			}
		})
		ex := s.run(t, request("refused.example"))
		assertStatus(t, ex, types.ExecutionStatusSucceeded)
		if !slices.Contains(ex.entered(), "FallBackOrQuarantine") || slices.Contains(ex.entered(), "Quarantine") {
			t.Errorf("states = %v, want the fallback tried and no quarantine", ex.entered())
		}
	})

	run("bookkeeping that cannot be done ends interrupted, not failed", func(t *testing.T) {
		s.fns.set(func(f *fakeFunctions) {
			f.issue = func(int, flow.Input) (flow.Issued, error) {
				return flow.Issued{}, &failure.ChallengeFailedError{Message: "connection refused"}
			}
			f.recordErr = func(record.Input) error {
				return &failure.TransientError{Code: failure.CodeDependencyError, Message: "DynamoDB throttled"}
			}
		})
		ex := s.run(t, request("interrupted.example"))
		assertStatus(t, ex, types.ExecutionStatusSucceeded)
		out := ex.output(t)
		if out["status"] != "interrupted" {
			t.Errorf("output = %v, want status interrupted", out)
		}
		wantStates(t, ex, "Defaults", "Preflight", "HasOrderSlot", "ReserveOrderSlot", "WaitForOrderSlot", "Issue", "RecordFailure", "Interrupted")
	})

	run("a notification that cannot be sent does not fail the issuance", func(t *testing.T) {
		s.fns.set(func(f *fakeFunctions) {
			f.notifyErr = &failure.InvalidInputError{Message: "event bus gone"}
		})
		ex := s.run(t, request("quiet.example"))
		assertStatus(t, ex, types.ExecutionStatusSucceeded)
		wantStates(t, ex, newCertificatePath...)
		if out := ex.output(t); out["status"] != "issued" {
			t.Errorf("output = %v, want status issued", out)
		}
	})

	if ran < 22 {
		t.Logf("state coverage not checked: only %d paths ran", ran)
		return
	}
	all := definitionStates(t, s.def)
	visited := maps.Clone(s.visited)
	if !maps.Equal(all, visited) {
		var missing []string
		for name := range all {
			if !visited[name] {
				missing = append(missing, name)
			}
		}
		sort.Strings(missing)
		t.Errorf("states never visited: %v", missing)
	}
}

func count(names []string, name string) int {
	n := 0
	for _, x := range names {
		if x == name {
			n++
		}
	}
	return n
}

func assertStatus(t *testing.T, ex *execution, want types.ExecutionStatus) {
	t.Helper()
	if ex.describe.Status != want {
		t.Fatalf("execution status = %s (error %q, cause %q), want %s; states %v", ex.describe.Status,
			aws.ToString(ex.describe.Error), aws.ToString(ex.describe.Cause), want, ex.entered())
	}
}

func assertQuarantined(t *testing.T, ex *execution, reason string) map[string]any {
	t.Helper()
	assertStatus(t, ex, types.ExecutionStatusSucceeded)
	out := ex.output(t)
	if out["status"] != "quarantined" || out["reason"] != reason {
		t.Errorf("output = %v, want status quarantined, reason %s", out, reason)
	}
	q := ex.inputsOf(t, "Quarantine")
	if len(q) != 1 {
		t.Fatalf("Quarantine entered %d times, want 1", len(q))
	}
	return out
}

func wantStates(t *testing.T, ex *execution, want ...string) {
	t.Helper()
	if got := ex.entered(); !slices.Equal(got, want) {
		t.Errorf("states = %v, want %v", got, want)
	}
}

func lambdaFailures(ex *execution) []*types.LambdaFunctionFailedEventDetails {
	var out []*types.LambdaFunctionFailedEventDetails
	for _, ev := range ex.events {
		if ev.Type == types.HistoryEventTypeLambdaFunctionFailed {
			out = append(out, ev.LambdaFunctionFailedEventDetails)
		}
	}
	return out
}

// causeJSON returns a history Cause as the JSON string value a Catch puts
// into $.error.Cause.
func causeJSON(cause string) json.RawMessage {
	b, _ := json.Marshal(cause)
	return b
}

func number(m map[string]any, path ...string) float64 {
	var v any = m
	for _, p := range path {
		obj, _ := v.(map[string]any)
		v = obj[p]
	}
	f, _ := v.(float64)
	return f
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
}

// assertJSON compares a step's input with want; the execution name every
// step is given ($$.Execution.Name) must be there and is not compared.
func assertJSON(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	var g map[string]any
	var w any
	mustUnmarshal(t, got, &g)
	mustUnmarshal(t, []byte(want), &w)
	if name, _ := g["execution"].(string); name == "" {
		t.Errorf("payload = %s: no execution name", got)
	}
	delete(g, "execution")
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("payload = %s, want %s", gb, wb)
	}
}
