package system

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/awslabs/goformation/v7/intrinsics"
)

// resource is the part of a template resource the runtime reads.
type resource struct {
	Type       string
	Properties struct {
		Events map[string]struct {
			Type       string
			Properties struct {
				Method string
				Path   string
			}
		}
	}
}

// functions returns the AWS::Serverless::Function resources of the template
// by logical ID, intrinsic functions resolved by goformation.
func functions(templatePath string) (map[string]resource, error) {
	data, err := os.ReadFile(templatePath)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	processed, err := intrinsics.ProcessYAML(data, nil)
	if err != nil {
		return nil, fmt.Errorf("process template %s: %w", templatePath, err)
	}
	var doc struct{ Resources map[string]resource }
	if err := json.Unmarshal(processed, &doc); err != nil {
		return nil, fmt.Errorf("parse template %s: %w", templatePath, err)
	}
	out := map[string]resource{}
	for id, r := range doc.Resources {
		if r.Type == "AWS::Serverless::Function" {
			out[id] = r
		}
	}
	return out, nil
}

// httpRoute is an HttpApi event of a function: "GET /sni/{name}".
type httpRoute struct {
	Key      string
	Function string
}

func httpRoutes(fns map[string]resource) []httpRoute {
	var routes []httpRoute
	for id, r := range fns {
		for _, e := range r.Properties.Events {
			if e.Type == "HttpApi" {
				routes = append(routes, httpRoute{Key: e.Properties.Method + " " + e.Properties.Path, Function: id})
			}
		}
	}
	sort.Slice(routes, func(i, j int) bool { return routes[i].Key < routes[j].Key })
	return routes
}
