package apigw

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

func TestRoutes(t *testing.T) {
	var got events.APIGatewayV2HTTPRequest
	echo := func(_ context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		got = req
		return events.APIGatewayV2HTTPResponse{StatusCode: 202, Headers: map[string]string{"Content-Type": "text/plain"}, Body: "ok"}, nil
	}
	srv := httptest.NewServer(New(nil,
		Route{Key: "GET /certificates/{domain}", Handler: echo},
		Route{Key: "POST /certificates", Handler: echo},
	))
	defer srv.Close()

	tests := []struct {
		method, path, body string
		wantStatus         int
		wantRoute          string
		wantParam          string
		wantQuery          string
	}{
		{"GET", "/certificates/b%C3%BCcher.example?x=1", "", 202, "GET /certificates/{domain}", "bücher.example", "1"},
		{"POST", "/certificates", `{"domain":"a.example"}`, 202, "POST /certificates", "", ""},
		{"GET", "/nope", "", 404, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			got = events.APIGatewayV2HTTPRequest{}
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got.RouteKey != tt.wantRoute {
				t.Errorf("RouteKey = %q, want %q", got.RouteKey, tt.wantRoute)
			}
			if got.PathParameters["domain"] != tt.wantParam {
				t.Errorf("domain = %q, want %q", got.PathParameters["domain"], tt.wantParam)
			}
			if got.QueryStringParameters["x"] != tt.wantQuery {
				t.Errorf("query x = %q, want %q", got.QueryStringParameters["x"], tt.wantQuery)
			}
			if got.Body != tt.body {
				t.Errorf("body = %q, want %q", got.Body, tt.body)
			}
		})
	}
}

// TestIdentity: an IAM route's events carry the principal the request
// names (or the default), without the header; other routes carry none.
func TestIdentity(t *testing.T) {
	var got events.APIGatewayV2HTTPRequest
	echo := func(_ context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		got = req
		return events.APIGatewayV2HTTPResponse{StatusCode: 200}, nil
	}
	srv := httptest.NewServer(New(nil,
		Route{Key: "GET /certificates/{domain}", Handler: echo, IAM: true},
		Route{Key: "GET /.well-known/acme-challenge/{token}", Handler: echo},
	))
	defer srv.Close()
	const tenant = "arn:aws:sts::000000000000:assumed-role/tenant-b/s"
	for _, tc := range []struct {
		path, principal, want string
	}{
		{"/certificates/a.example", tenant, tenant},
		{"/certificates/a.example", "", DefaultPrincipal},
		{"/.well-known/acme-challenge/tok", tenant, ""},
	} {
		got = events.APIGatewayV2HTTPRequest{}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
		if tc.principal != "" {
			req.Header.Set(PrincipalHeader, tc.principal)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var userARN string
		if a := got.RequestContext.Authorizer; a != nil && a.IAM != nil {
			userARN = a.IAM.UserARN
		}
		if userARN != tc.want {
			t.Errorf("GET %s as %q: userArn %q, want %q", tc.path, tc.principal, userARN, tc.want)
		}
		if _, ok := got.Headers[strings.ToLower(PrincipalHeader)]; ok && tc.want != "" {
			t.Errorf("GET %s: the principal header was passed on", tc.path)
		}
	}
}
