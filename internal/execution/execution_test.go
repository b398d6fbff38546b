package execution

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"

	"github.com/certflow/certflow/internal/failure"
)

type fakeSFN struct {
	in  *sfn.StartExecutionInput
	out *sfn.StartExecutionOutput
	err error
}

func (f *fakeSFN) StartExecution(_ context.Context, in *sfn.StartExecutionInput, _ ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error) {
	f.in = in
	return f.out, f.err
}

func TestStart(t *testing.T) {
	const smARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:certflow-issuance"
	const name = "issue-0123"
	tests := []struct {
		name        string
		client      *fakeSFN
		smARN       string
		wantARN     string
		wantAlready bool
		wantErr     bool
		transient   bool
	}{
		{"started", &fakeSFN{out: &sfn.StartExecutionOutput{ExecutionArn: aws.String("arn:x")}}, smARN, "arn:x", false, false, false},
		{"already exists", &fakeSFN{err: &types.ExecutionAlreadyExists{Message: aws.String("exists")}}, smARN,
			"arn:aws:states:eu-west-1:123456789012:execution:certflow-issuance:issue-0123", true, false, false},
		{"already exists, bad ARN", &fakeSFN{err: &types.ExecutionAlreadyExists{}}, "nonsense", "", true, true, false},
		{"throttled", &fakeSFN{err: &smithy.GenericAPIError{Code: "ThrottlingException", Message: "slow down"}}, smARN, "", false, true, true},
		{"invalid name", &fakeSFN{err: &types.InvalidName{Message: aws.String("bad")}}, smARN, "", false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arn, already, err := New(tt.client, tt.smARN).Start(context.Background(), name, map[string]string{"domain": "a.example"})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Start() error = %v, want error %v", err, tt.wantErr)
			}
			var te *failure.TransientError
			if errors.As(err, &te) != tt.transient {
				t.Errorf("Start() error = %v, want transient %v", err, tt.transient)
			}
			if arn != tt.wantARN || already != tt.wantAlready {
				t.Errorf("Start() = %q, %v, want %q, %v", arn, already, tt.wantARN, tt.wantAlready)
			}
			in := tt.client.in
			if aws.ToString(in.Name) != name || aws.ToString(in.StateMachineArn) != tt.smARN {
				t.Errorf("StartExecution input = %+v, want name %q on %q", in, name, tt.smARN)
			}
			var got map[string]string
			if err := json.Unmarshal([]byte(aws.ToString(in.Input)), &got); err != nil || got["domain"] != "a.example" {
				t.Errorf("StartExecution input JSON = %q, want the marshalled input", aws.ToString(in.Input))
			}
		})
	}
}

func TestStartUnmarshalableInput(t *testing.T) {
	f := &fakeSFN{}
	if _, _, err := New(f, "arn:aws:states:r:1:stateMachine:s").Start(context.Background(), "n", make(chan int)); err == nil {
		t.Error("Start(chan) = nil error, want a marshal error")
	}
	if f.in != nil {
		t.Error("StartExecution called despite a marshal error")
	}
}
