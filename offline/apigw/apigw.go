// Package apigw serves Lambda handlers written for API Gateway HTTP APIs
// (payload format 2.0) over plain net/http, as the offline stand-in for API
// Gateway: the same route keys, path parameters, headers and base64 rules.
//
// Identity: on a route with the AWS_IAM authorizer (Route.IAM) API Gateway
// checks the SigV4 signature and puts the signer in
// requestContext.authorizer.iam. Offline there is no signature: the
// request names its principal in the X-Certflow-Offline-Principal header
// (offline only; the header is not passed on), and a request that names
// none acts as DefaultPrincipal. Nothing is verified: the offline API
// listens on loopback for the person running it.
package apigw

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// Handler is a Lambda handler for API Gateway HTTP API events.
type Handler func(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// Route binds a route key such as "GET /certificates/{domain}" to a handler.
type Route struct {
	Key     string
	Handler Handler
	// IAM says the route has the AWS_IAM authorizer: its events carry the
	// caller's identity (see the package comment).
	IAM bool
}

// PrincipalHeader names, offline only, the IAM principal (a role session,
// user or role ARN) a request on an IAM route acts as.
const PrincipalHeader = "X-Certflow-Offline-Principal"

// DefaultPrincipal is the principal of IAM requests that name none: a
// session of the role certflow-offline in the offline account.
const DefaultPrincipal = "arn:aws:sts::000000000000:assumed-role/certflow-offline/offline"

// maxBody is API Gateway's payload limit.
const maxBody = 10 << 20

// New returns an http.Handler that serves routes the way API Gateway invokes
// Lambda integrations. Unmatched requests get API Gateway's 404 answer.
func New(logger *slog.Logger, routes ...Route) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	for _, r := range routes {
		mux.Handle(r.Key, serve(logger, r))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"Not Found"}`)
	})
	return mux
}

func serve(logger *slog.Logger, route Route) http.Handler {
	method, pattern, _ := strings.Cut(route.Key, " ")
	var names []string
	for _, seg := range strings.Split(pattern, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			names = append(names, strings.TrimSuffix(strings.Trim(seg, "{}"), "..."))
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		event, err := Event(r, route.Key, names)
		if err != nil {
			http.Error(w, `{"message":"Request Entity Too Large"}`, http.StatusRequestEntityTooLarge)
			return
		}
		if method == "" {
			event.RouteKey = r.Method + " " + pattern
		}
		if route.IAM {
			signIn(&event)
		}
		resp, err := route.Handler(r.Context(), event)
		if err != nil {
			// API Gateway answers a failed integration with a bare 500.
			logger.Error("lambda integration failed", "route", route.Key, "error", err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"message":"Internal Server Error"}`)
			return
		}
		Write(w, resp)
	})
}

// Event converts r into the payload 2.0 event API Gateway would send.
func Event(r *http.Request, routeKey string, pathParams []string) (events.APIGatewayV2HTTPRequest, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return events.APIGatewayV2HTTPRequest{}, err
	}
	if len(body) > maxBody {
		return events.APIGatewayV2HTTPRequest{}, fmt.Errorf("body over %d bytes", maxBody)
	}
	headers := map[string]string{}
	var cookies []string
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if lk == "cookie" {
			for _, v := range vs {
				for _, c := range strings.Split(v, ";") {
					cookies = append(cookies, strings.TrimSpace(c))
				}
			}
			continue
		}
		headers[lk] = strings.Join(vs, ",")
	}
	if r.Host != "" {
		headers["host"] = r.Host
	}
	var query map[string]string
	if q := r.URL.Query(); len(q) > 0 {
		query = map[string]string{}
		for k, vs := range q {
			query[k] = strings.Join(vs, ",")
		}
	}
	var params map[string]string
	for _, n := range pathParams {
		if params == nil {
			params = map[string]string{}
		}
		params[n] = r.PathValue(n)
	}
	sourceIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	now := time.Now()
	e := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              routeKey,
		RawPath:               r.URL.EscapedPath(),
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
		PathParameters:        params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			AccountID:    "000000000000",
			APIID:        "offline",
			DomainName:   r.Host,
			DomainPrefix: "offline",
			RequestID:    fmt.Sprintf("offline-%d", now.UnixNano()),
			RouteKey:     routeKey,
			Stage:        "$default",
			Time:         now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  r.Proto,
				SourceIP:  sourceIP,
				UserAgent: r.UserAgent(),
			},
		},
	}
	if len(body) > 0 {
		if utf8.Valid(body) && !isBinary(headers["content-type"]) {
			e.Body = string(body)
		} else {
			e.Body = base64.StdEncoding.EncodeToString(body)
			e.IsBase64Encoded = true
		}
	}
	return e, nil
}

// signIn sets the IAM identity of event from its PrincipalHeader, or
// DefaultPrincipal, and removes the header.
func signIn(event *events.APIGatewayV2HTTPRequest) {
	header := strings.ToLower(PrincipalHeader)
	userARN := event.Headers[header]
	delete(event.Headers, header)
	if userARN == "" {
		userARN = DefaultPrincipal
	}
	account := event.RequestContext.AccountID
	if parts := strings.SplitN(userARN, ":", 6); len(parts) == 6 {
		account = parts[4]
	}
	event.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{
			AccessKey: "ASIAOFFLINE", AccountID: account, CallerID: "AROAOFFLINE:offline", UserARN: userARN, UserID: "AROAOFFLINE:offline",
		},
	}
}

func isBinary(contentType string) bool {
	return strings.HasPrefix(contentType, "application/octet-stream")
}

// Write writes a payload 2.0 response as API Gateway would.
func Write(w http.ResponseWriter, resp events.APIGatewayV2HTTPResponse) {
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	for _, c := range resp.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		body = b
	}
	status := resp.StatusCode
	if status == 0 {
		status = http.StatusOK
	}
	if w.Header().Get("Content-Type") == "" && len(body) > 0 {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	w.Write(body)
}
