// Package httpapi reads API Gateway HTTP API (payload 2.0) requests the same
// way in every handler that serves routes: the path without the stage, and
// headers whatever their case.
package httpapi

import (
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// Path returns the request path without a named stage's prefix ("/prod/x"
// is "/x"; the $default stage has none).
func Path(req events.APIGatewayV2HTTPRequest) string {
	path := req.RawPath
	if path == "" {
		path = req.RequestContext.HTTP.Path
	}
	if stage := req.RequestContext.Stage; stage != "" && stage != "$default" {
		if rest, ok := strings.CutPrefix(path, "/"+stage); ok && (rest == "" || rest[0] == '/') {
			path = rest
		}
	}
	return path
}

// Header returns the value of the header name, which must be lower case.
// API Gateway lower-cases header names; a local gateway might not.
func Header(h map[string]string, name string) string {
	if v, ok := h[name]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}
