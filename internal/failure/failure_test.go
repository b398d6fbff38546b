package failure

import (
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
		{"rejected", &DomainRejectedError{Message: "blocked"}, "DomainRejectedError", Detail{Code: CodeDomainRejected, Message: "blocked"}},
		{"transient", &TransientError{Message: "badNonce"}, "TransientError", Detail{Code: CodeTransient, Message: "badNonce"}},
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
		{"lambda timeout", "States.Timeout", `"Task timed out"`, Detail{Code: CodeInternal, Message: "Task timed out"}},
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
