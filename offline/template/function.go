package template

import (
	"encoding/json"
	"fmt"
	"maps"
)

// Function is an AWS::Serverless::Function with the template's Globals
// applied.
type Function struct {
	LogicalID     string
	Runtime       string
	Handler       string
	Architectures []string
	// Timeout and MemorySize are 0 when neither the function nor Globals
	// sets them (Lambda's defaults then apply).
	Timeout    int
	MemorySize int
	// ReservedConcurrency is ReservedConcurrentExecutions, nil when unset.
	ReservedConcurrency *int
	// Environment holds the variables the function is given, values
	// resolved. SAM's --env-vars can override only these.
	Environment map[string]string
	Metadata    map[string]any
	Policies    json.RawMessage
	Events      map[string]Event
}

// Event is one entry of a function's Events.
type Event struct {
	Type       string
	Properties json.RawMessage
}

// RouteKey is the route of an HttpApi event, "GET /sni/{name}".
func (e Event) RouteKey() (string, bool) {
	if e.Type != "HttpApi" {
		return "", false
	}
	var p struct{ Method, Path string }
	if json.Unmarshal(e.Properties, &p) != nil || p.Method == "" || p.Path == "" {
		return "", false
	}
	return p.Method + " " + p.Path, true
}

// Authorizer is the authorizer an HttpApi event names (Auth.Authorizer):
// "NONE" for an unauthenticated route, "" for the API's default.
func (e Event) Authorizer() string {
	var p struct{ Auth struct{ Authorizer string } }
	if json.Unmarshal(e.Properties, &p) != nil {
		return ""
	}
	return p.Auth.Authorizer
}

type functionProps struct {
	Runtime                      string
	Handler                      string
	Architectures                []string
	Timeout                      *int
	MemorySize                   *int
	ReservedConcurrentExecutions *int
	Environment                  struct{ Variables map[string]any }
	Policies                     json.RawMessage
	Events                       map[string]Event
}

// Functions returns every function of the template by logical ID.
func (t *Template) Functions() (map[string]Function, error) {
	var globals functionProps
	if len(t.resolved.Globals.Function) > 0 {
		if err := json.Unmarshal(t.resolved.Globals.Function, &globals); err != nil {
			return nil, fmt.Errorf("template %s: Globals.Function: %w", t.path, err)
		}
	}
	out := map[string]Function{}
	for _, id := range t.IDs("AWS::Serverless::Function") {
		r := t.resolved.Resources[id]
		var p functionProps
		if err := json.Unmarshal(r.Properties, &p); err != nil {
			return nil, fmt.Errorf("template %s: %s: %w", t.path, id, err)
		}
		f := Function{
			LogicalID:           id,
			Runtime:             first(p.Runtime, globals.Runtime),
			Handler:             first(p.Handler, globals.Handler),
			Architectures:       p.Architectures,
			Timeout:             deref(p.Timeout, globals.Timeout),
			MemorySize:          deref(p.MemorySize, globals.MemorySize),
			ReservedConcurrency: p.ReservedConcurrentExecutions,
			Environment:         map[string]string{},
			Metadata:            r.Metadata,
			Policies:            p.Policies,
			Events:              p.Events,
		}
		if len(f.Architectures) == 0 {
			f.Architectures = globals.Architectures
		}
		for _, vars := range []map[string]any{globals.Environment.Variables, p.Environment.Variables} {
			for k, v := range maps.All(vars) {
				f.Environment[k] = scalar(v)
			}
		}
		out[id] = f
	}
	return out, nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func deref(p, def *int) int {
	switch {
	case p != nil:
		return *p
	case def != nil:
		return *def
	}
	return 0
}
