package httpapi

import (
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

func TestPath(t *testing.T) {
	tests := []struct {
		raw, httpPath, stage, want string
	}{
		{raw: "/certificates", want: "/certificates"},
		{httpPath: "/sni/a.example", want: "/sni/a.example"},
		{raw: "/prod/certificates", stage: "prod", want: "/certificates"},
		{raw: "/prod", stage: "prod", want: ""},
		{raw: "/production/x", stage: "prod", want: "/production/x"},
		{raw: "/x", stage: "$default", want: "/x"},
	}
	for _, tt := range tests {
		req := events.APIGatewayV2HTTPRequest{RawPath: tt.raw}
		req.RequestContext.HTTP.Path = tt.httpPath
		req.RequestContext.Stage = tt.stage
		if got := Path(req); got != tt.want {
			t.Errorf("Path(%q, %q, stage %q) = %q, want %q", tt.raw, tt.httpPath, tt.stage, got, tt.want)
		}
	}
}

func TestHeader(t *testing.T) {
	h := map[string]string{"content-type": "application/json", "If-None-Match": `"x"`}
	for name, want := range map[string]string{"content-type": "application/json", "if-none-match": `"x"`, "accept": ""} {
		if got := Header(h, name); got != want {
			t.Errorf("Header(%q) = %q, want %q", name, got, want)
		}
	}
}
