package principal

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/certflow/certflow/internal/fixtures"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    ARN
		wantErr bool
	}{
		{in: "arn:aws:sts::123456789012:assumed-role/platform-control/platform-control", want: "arn:aws:iam::123456789012:role/platform-control"},
		{in: "arn:aws:sts::123456789012:assumed-role/edge/i-0abc", want: "arn:aws:iam::123456789012:role/edge"},
		{in: "arn:aws:iam::123456789012:role/edge", want: "arn:aws:iam::123456789012:role/edge"},
		{in: "arn:aws:iam::123456789012:role/fleet/eu/edge", want: "arn:aws:iam::123456789012:role/edge"},
		{in: "arn:aws-us-gov:sts::123456789012:assumed-role/edge/s", want: "arn:aws-us-gov:iam::123456789012:role/edge"},
		{in: "arn:aws:iam::123456789012:user/ops/alice", want: "arn:aws:iam::123456789012:user/ops/alice"},
		{in: "arn:aws:iam::123456789012:root", want: "arn:aws:iam::123456789012:root"},
		{in: "arn:aws:sts::123456789012:federated-user/bob", want: "arn:aws:sts::123456789012:federated-user/bob"},
		{in: "", wantErr: true},
		{in: "edge", wantErr: true},
		{in: "arn:aws:iam::12345678901:role/edge", wantErr: true},  // 11-digit account
		{in: "arn:aws:iam::12345678901x:role/edge", wantErr: true}, // not digits
		{in: "arn:aws:iam:us-east-1:123456789012:role/edge", wantErr: true},
		{in: "arn:aws:s3::123456789012:bucket", wantErr: true},
		{in: "arn:aws:iam::123456789012:role/", wantErr: true},
		{in: "arn:aws:sts::123456789012:assumed-role/edge", wantErr: true},
		{in: "arn:aws:iam::123456789012:role/a,arn:aws:iam::123456789012:role/b", wantErr: true},
		{in: "arn:aws:iam::123456789012:role/" + strings.Repeat("x", 3000), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("Parse(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseList(t *testing.T) {
	l, err := ParseList(" arn:aws:iam::123456789012:role/edge/edge-eu , ,arn:aws:iam::123456789012:role/edge-eu,arn:aws:iam::123456789012:role/edge-us")
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 {
		t.Errorf("ParseList() = %v, want two principals (one given twice)", l)
	}
	for _, tt := range []struct {
		caller string
		want   bool
	}{
		{"arn:aws:sts::123456789012:assumed-role/edge-eu/i-0abc", true},
		{"arn:aws:sts::123456789012:assumed-role/edge-us/i-0def", true},
		{"arn:aws:sts::123456789012:assumed-role/platform-control/x", false},
		{"arn:aws:sts::210987654321:assumed-role/edge-eu/i-0abc", false}, // same name, other account
	} {
		p, err := Parse(tt.caller)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Contains(p); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.caller, got, tt.want)
		}
	}
	if (List{}).Contains("") {
		t.Error("an empty list contains the empty principal")
	}
	if _, err := ParseList("arn:aws:iam::123456789012:role/edge,edge-us"); err == nil || !strings.Contains(err.Error(), "edge-us") {
		t.Errorf("ParseList(bad entry) error = %v, want it named", err)
	}
	if l, err := ParseList(""); err != nil || len(l) != 0 {
		t.Errorf("ParseList(\"\") = %v, %v; want no one", l, err)
	}
}

func TestFromRequest(t *testing.T) {
	req := fixtures.Event[events.APIGatewayV2HTTPRequest](t, "api-get.json")
	got, err := FromRequest(req)
	if err != nil || got != "arn:aws:iam::123456789012:role/platform-control" {
		t.Errorf("FromRequest(api-get.json) = %q, %v; want the platform-control role", got, err)
	}
	req.RequestContext.Authorizer = nil
	if _, err := FromRequest(req); !errors.Is(err, ErrAnonymous) {
		t.Errorf("FromRequest(no authorizer) error = %v, want ErrAnonymous", err)
	}
	req.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{UserARN: "not an arn"},
	}
	if _, err := FromRequest(req); err == nil {
		t.Error("FromRequest(malformed userArn) error = nil")
	}
}
