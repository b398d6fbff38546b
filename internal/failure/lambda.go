package failure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/aws/aws-lambda-go/lambda/messages"
)

// ErrorTypeInternal is the errorType of failures that are not classified.
const ErrorTypeInternal = "InternalError"

// TypeName returns the Lambda errorType for f: its Go type name, as
// aws-lambda-go reports it.
func TypeName(f Failure) string {
	t := reflect.TypeOf(f)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// ForLambda converts the error a handler is about to return into the
// invocation error the state machine matches on: the errorType is the Go type
// name of the Failure found in err's chain and the errorMessage is its
// Detail as JSON. Wrapping with context therefore never hides a failure
// class from the state machine. An error with no Failure in its chain is
// classified by Classify; only what is left is InternalError, with a
// message that leaks nothing. ForLambda(nil) is nil.
func ForLambda(err error) error {
	if err == nil {
		return nil
	}
	var ive messages.InvokeResponse_Error
	if errors.As(err, &ive) {
		return ive
	}
	f, ok := Find(Classify(err))
	if !ok {
		d := Detail{Code: CodeInternal, Message: "internal error"}
		b, _ := json.Marshal(d)
		return messages.InvokeResponse_Error{Type: ErrorTypeInternal, Message: string(b)}
	}
	d := f.Detail()
	if d.Message == "" {
		d.Message = f.Error()
	}
	b, _ := json.Marshal(d)
	return messages.InvokeResponse_Error{Type: TypeName(f), Message: string(b)}
}

// ParseCause reads the Detail out of a Step Functions error Cause. In AWS the
// Cause of a failed Lambda task is a JSON string holding
// {"errorType","errorMessage"}; a local engine may hand over the object
// itself. Both are accepted. A Cause that holds no Detail (a Lambda timeout,
// States.Runtime) yields the internal code with the text it holds.
func ParseCause(errorName string, cause json.RawMessage) Detail {
	var payload struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}
	raw := []byte(cause)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = []byte(s)
	}
	if json.Unmarshal(raw, &payload) != nil || payload.ErrorMessage == "" {
		return Detail{Code: codeForErrorName(errorName), Message: fallbackMessage(errorName, s, raw)}
	}
	var d Detail
	if json.Unmarshal([]byte(payload.ErrorMessage), &d) == nil && d.Code != "" {
		return d
	}
	return Detail{Code: codeForErrorName(errorName), Message: payload.ErrorMessage}
}

func fallbackMessage(errorName, s string, raw []byte) string {
	msg := strings.TrimSpace(s)
	if msg == "" {
		msg = strings.TrimSpace(string(raw))
	}
	if msg == "" || msg == "null" {
		return fmt.Sprintf("execution step failed with %s", errorName)
	}
	return msg
}

// Classify returns err itself when it holds a Failure, and otherwise
// classifies what certflow's code hands up unclassified: a call to an AWS
// service that failed (an SDK operation error) is a dependency error, a
// context that expired a step timeout. Anything else is returned
// unchanged.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := Find(err); ok {
		return err
	}
	var op interface {
		Service() string
		Operation() string
	}
	switch {
	case errors.As(err, &op):
		return &TransientError{Code: CodeDependencyError, Message: fmt.Sprintf("%s %s failed", op.Service(), op.Operation()), Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &TransientError{Code: CodeStepTimeout, Message: "the step ran out of time", Err: err}
	}
	return err
}

var codesByTypeName = map[string]string{
	"RateLimitedError":        CodeRateLimited,
	"AccountPausedError":      CodeAccountPaused,
	"ChallengeFailedError":    CodeChallengeFailed,
	"DomainRejectedError":     CodeDomainRejected,
	"TransientError":          CodeTransient,
	"SupersededError":         CodeSuperseded,
	"NeedsOrderSlotError":     CodeNeedsOrderSlot,
	"ReplacesRefusedError":    CodeReplacesRefused,
	"States.Timeout":          CodeStepTimeout,
	"States.HeartbeatTimeout": CodeStepTimeout,
	"Lambda.Unknown":          CodeStepTimeout, // the function timed out or ran out of memory
	"DomainNotPointedError":   CodeDomainNotPointed,
	"CAAForbiddenError":       CodeCAAForbidden,
	"InvalidInputError":       CodeInvalidInput,
	"DomainRetiredError":      CodeDomainRetired,
}

// codeForErrorName is the code of a state error whose Cause holds no
// Detail: a failure class, a step timeout, the Lambda service failing (a
// dependency of the state machine), else internal.
func codeForErrorName(name string) string {
	if c, ok := codesByTypeName[name]; ok {
		return c
	}
	if strings.HasPrefix(name, "Lambda.") {
		return CodeDependencyError
	}
	return CodeInternal
}
