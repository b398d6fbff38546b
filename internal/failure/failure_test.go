package failure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
)

func TestForLambda(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantType string
		want     Detail
	}{
		{"rate limited wrapped", fmt.Errorf("issue %q: %w", "a.example", &RateLimitedError{Message: "too many orders", RetryAfter: 90 * time.Second}),
			"RateLimitedError", Detail{Code: CodeRateLimited, Message: "too many orders", RetryAfterSeconds: 90}},
		{"paused", &AccountPausedError{Message: "paused", UnpauseURL: "https://ca.example/unpause?x=1"},
			"AccountPausedError", Detail{Code: CodeAccountPaused, Message: "paused", UnpauseURL: "https://ca.example/unpause?x=1"}},
		{"challenge", &ChallengeFailedError{Message: "connection refused"}, "ChallengeFailedError", Detail{Code: CodeChallengeFailed, Message: "connection refused"}},
		{"persist record missing", &ChallengeFailedError{Message: "No TXT records found", Reason: ReasonPersistRecordMissing}, "ChallengeFailedError",
			Detail{Code: CodeChallengeFailed, Message: "No TXT records found", Reason: ReasonPersistRecordMissing}},
		{"rejected", &DomainRejectedError{Message: "blocked"}, "DomainRejectedError", Detail{Code: CodeDomainRejected, Message: "blocked"}},
		{"transient", &TransientError{Message: "badNonce"}, "TransientError", Detail{Code: CodeTransient, Message: "badNonce"}},
		{"CA unreachable", &TransientError{Code: CodeCAUnreachable, Message: "connection refused"}, "TransientError", Detail{Code: CodeCAUnreachable, Message: "connection refused"}},
		{"AWS SDK error", fmt.Errorf("store: %w", &fakeOperationError{service: "DynamoDB", operation: "UpdateItem"}), "TransientError", Detail{Code: CodeDependencyError, Message: "DynamoDB UpdateItem failed"}},
		{"deadline", fmt.Errorf("seal: %w", context.DeadlineExceeded), "TransientError", Detail{Code: CodeStepTimeout, Message: "the step ran out of time"}},
		{"superseded", &SupersededError{Message: "issue-x"}, "SupersededError", Detail{Code: CodeSuperseded, Message: "issue-x"}},
		{"needs a slot", &NeedsOrderSlotError{Message: "spent"}, "NeedsOrderSlotError", Detail{Code: CodeNeedsOrderSlot, Message: "spent"}},
		{"replaces refused", &ReplacesRefusedError{Message: "alreadyReplaced"}, "ReplacesRefusedError", Detail{Code: CodeReplacesRefused, Message: "alreadyReplaced"}},
		{"not pointed", &DomainNotPointedError{Message: "resolves to 127.0.0.2"}, "DomainNotPointedError", Detail{Code: CodeDomainNotPointed, Message: "resolves to 127.0.0.2"}},
		{"caa", &CAAForbiddenError{Message: "issue ca.example"}, "CAAForbiddenError", Detail{Code: CodeCAAForbidden, Message: "issue ca.example"}},
		{"invalid", &InvalidInputError{Message: "bad name"}, "InvalidInputError", Detail{Code: CodeInvalidInput, Message: "bad name"}},
		{"retired", &DomainRetiredError{Message: "a.example"}, "DomainRetiredError", Detail{Code: CodeDomainRetired, Message: "a.example"}},
		{"unclassified leaks nothing", errors.New("dial tcp 10.1.2.3:443: secret internals"), ErrorTypeInternal, Detail{Code: CodeInternal, Message: "internal error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ForLambda(tt.err)
			ive, ok := got.(messages.InvokeResponse_Error)
			if !ok {
				t.Fatalf("ForLambda() = %T, want messages.InvokeResponse_Error", got)
			}
			if ive.Type != tt.wantType {
				t.Errorf("ForLambda().Type = %q, want %q", ive.Type, tt.wantType)
			}
			var d Detail
			if err := json.Unmarshal([]byte(ive.Message), &d); err != nil {
				t.Fatalf("message %q is not a Detail: %v", ive.Message, err)
			}
			if d != tt.want {
				t.Errorf("ForLambda() detail = %+v, want %+v", d, tt.want)
			}
		})
	}
	if ForLambda(nil) != nil {
		t.Error("ForLambda(nil) != nil")
	}
}

// fakeOperationError has the methods of an AWS SDK operation error.
type fakeOperationError struct{ service, operation string }

func (e *fakeOperationError) Error() string {
	return "operation error " + e.service + ": " + e.operation + ": secret"
}
func (e *fakeOperationError) Service() string   { return e.service }
func (e *fakeOperationError) Operation() string { return e.operation }

func TestCountsAgainstDomain(t *testing.T) {
	for code, want := range map[string]bool{
		CodeDomainNotPointed: true, CodeChallengeFailed: true, CodeCAAForbidden: true, CodeDomainRejected: true, CodeAccountPaused: true,
		CodeCAUnreachable: false, CodeCAError: false, CodeDependencyError: false, CodeStepTimeout: false, CodeInternal: false, CodeRateLimited: false,
	} {
		if got := CountsAgainstDomain(code); got != want {
			t.Errorf("CountsAgainstDomain(%q) = %v, want %v", code, got, want)
		}
	}
}

func TestParseCause(t *testing.T) {
	detail := `{"code":"rate_limited","message":"slow down","retryAfterSeconds":120}`
	payload, _ := json.Marshal(map[string]string{"errorType": "RateLimitedError", "errorMessage": detail})
	asString, _ := json.Marshal(string(payload))
	tests := []struct {
		name      string
		errorName string
		cause     string
		want      Detail
	}{
		{"AWS: cause is a JSON string", "RateLimitedError", string(asString), Detail{Code: CodeRateLimited, Message: "slow down", RetryAfterSeconds: 120}},
		{"local engine: cause is an object", "RateLimitedError", string(payload), Detail{Code: CodeRateLimited, Message: "slow down", RetryAfterSeconds: 120}},
		{"plain errorMessage", "ChallengeFailedError", `{"errorType":"ChallengeFailedError","errorMessage":"oops"}`, Detail{Code: CodeChallengeFailed, Message: "oops"}},
		{"lambda timeout", "States.Timeout", `"Task timed out"`, Detail{Code: CodeStepTimeout, Message: "Task timed out"}},
		{"lambda service", "Lambda.ServiceException", `"Rate exceeded"`, Detail{Code: CodeDependencyError, Message: "Rate exceeded"}},
		{"empty", "States.Runtime", ``, Detail{Code: CodeInternal, Message: "execution step failed with States.Runtime"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseCause(tt.errorName, json.RawMessage(tt.cause)); got != tt.want {
				t.Errorf("ParseCause(%q, %s) = %+v, want %+v", tt.errorName, tt.cause, got, tt.want)
			}
		})
	}
}
