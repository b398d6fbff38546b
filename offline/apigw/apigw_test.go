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
