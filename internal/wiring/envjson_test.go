package wiring

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/certflow/certflow/offline/template"
)

// `sam local invoke <Fn> --env-vars env.json` overrides only the variables
// template.yaml declares for <Fn> (its own and Globals'): SAM drops every
// other key of env.json without a word, and a function whose endpoint
// overrides were dropped talks to real AWS with the caller's credentials.
// These tests resolve each function's environment as SAM does.

// lambdaReserved are the variables Lambda sets itself: a template that
// declares one fails to deploy, and SAM sets them from the caller's
// configuration (--region, the profile), never from env.json.
var lambdaReserved = []string{
	"_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
	"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
	"AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
	"AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
}

// samGlobalSection is env.json's section for every function.
const samGlobalSection = "Parameters"

// samTaskRoot is where `sam local invoke` mounts the built artifact.
const samTaskRoot = "/var/task/"

// samEnvironment returns what SAM overrides in function f from env.json's
// sections: the global section, then f's own (which wins), each applied
// only to variables f declares. dropped lists the keys SAM ignores.
func samEnvironment(f template.Function, sections map[string]map[string]string) (env map[string]string, dropped []string) {
	env = map[string]string{}
	for _, section := range []string{samGlobalSection, f.LogicalID} {
		for k, v := range sections[section] {
			if _, declared := f.Environment[k]; !declared {
				dropped = append(dropped, section+"."+k)
				continue
			}
			env[k] = v
		}
	}
	slices.Sort(dropped)
	return env, dropped
}

func loadEnvJSON(t *testing.T) map[string]map[string]string {
	t.Helper()
	data, err := os.ReadFile("../../env.json")
	if err != nil {
		t.Fatal(err)
	}
	var sections map[string]map[string]string
	if err := json.Unmarshal(data, &sections); err != nil {
		t.Fatalf("env.json: %v (want an object of sections, each an object of strings)", err)
	}
	return sections
}

func TestEnvJSONReachesOnlyTheOfflineStack(t *testing.T) {
	tmpl := loadTemplate(t)
	fns, err := tmpl.Functions()
	if err != nil {
		t.Fatal(err)
	}
	sections := loadEnvJSON(t)
	for name := range sections {
		if _, ok := fns[name]; !ok && name != samGlobalSection {
			t.Errorf("env.json section %q names no function of template.yaml: SAM ignores it", name)
		}
	}
	for name, vars := range sections {
		for k := range vars {
			if slices.Contains(lambdaReserved, k) {
				t.Errorf("env.json %s.%s: Lambda reserves it; SAM takes it from --region and the AWS profile, never from env.json", name, k)
			}
		}
	}
	for id, f := range fns {
		t.Run(id, func(t *testing.T) {
			for k := range f.Environment {
				if slices.Contains(lambdaReserved, k) {
					t.Errorf("template.yaml declares %s, which Lambda reserves: the deploy would fail", k)
				}
			}
			env, dropped := samEnvironment(f, sections)
			dropped = slices.DeleteFunc(dropped, func(k string) bool { // reported above
				_, name, _ := strings.Cut(k, ".")
				return slices.Contains(lambdaReserved, name)
			})
			if len(dropped) > 0 {
				t.Errorf("SAM drops env.json keys %v: %s does not declare them in template.yaml (declare them, empty by default)", dropped, id)
			}
			// Every AWS endpoint the function may use, and its CA, must be
			// on this machine: anything left to its deployed value reaches
			// AWS or the real CA with the caller's credentials.
			for k := range f.Environment {
				if strings.HasPrefix(k, "AWS_ENDPOINT_URL") || k == "CERTFLOW_ACME_DIRECTORY" {
					if v, ok := env[k]; !ok || !loopbackURL(v) {
						t.Errorf("%s under SAM = %q (template: %q), want a URL on 127.0.0.1 from env.json", k, v, f.Environment[k])
					}
				}
			}
			// Values made from other resources of the stack (!GetAtt,
			// !Ref of a resource) do not resolve under SAM.
			raw, _ := tmpl.RawResource(id)
			var props struct {
				Environment struct{ Variables map[string]any }
			}
			if err := json.Unmarshal(raw.Properties, &props); err != nil {
				t.Fatal(err)
			}
			for k, v := range props.Environment.Variables {
				if fromResource(tmpl, v) {
					if _, ok := env[k]; !ok {
						t.Errorf("%s comes from another resource of the stack (%v), which SAM cannot resolve: env.json must set it for %s", k, v, id)
					}
				}
			}
		})
	}
}

// loopbackURL reports whether v is an http(s) URL on 127.0.0.1.
func loopbackURL(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() == "127.0.0.1"
}

// fromResource reports whether a raw template value refers to a resource
// of the stack rather than to a parameter.
func fromResource(tmpl *template.Template, v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	if ref, ok := m["Ref"].(string); ok {
		return !slices.Contains(tmpl.Parameters(), ref) && !strings.HasPrefix(ref, "AWS::")
	}
	_, getAtt := m["Fn::GetAtt"]
	return getAtt
}

// samLocalFiles are the project files `make sam-local-build` copies into
// every built artifact, at the same path under /var/task.
var samLocalFiles = regexp.MustCompile(`(?m)^SAM_LOCAL_FILES\s*:=\s*(.*)$`)

// TestEnvJSONPaths: a path in env.json is read inside SAM's container,
// where /var/task is the built artifact.
func TestEnvJSONPaths(t *testing.T) {
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := samLocalFiles.FindSubmatch(makefile)
	if m == nil {
		t.Fatal("Makefile has no SAM_LOCAL_FILES")
	}
	inArtifact := append(strings.Fields(string(m[1])), "bootstrap")
	for name, vars := range loadEnvJSON(t) {
		for k, v := range vars {
			if !strings.HasPrefix(v, "/") {
				continue
			}
			t.Run(name+"."+k, func(t *testing.T) {
				rel, ok := strings.CutPrefix(v, samTaskRoot)
				if !ok {
					t.Fatalf("%s = %q: outside %s, so not in SAM's container", k, v, samTaskRoot)
				}
				if !slices.Contains(inArtifact, rel) {
					t.Fatalf("%s = %q: %s is not in the built artifact (bootstrap and SAM_LOCAL_FILES %v)", k, v, rel, inArtifact[:len(inArtifact)-1])
				}
				if rel == "bootstrap" {
					return
				}
				if _, err := os.Stat(filepath.Join("../..", rel)); err != nil {
					if strings.HasPrefix(rel, ".cache/") {
						t.Skipf("%s: %v (`make tools` installs it)", rel, err)
					}
					t.Errorf("%s = %q: the project has no %s to copy into the artifact: %v", k, v, rel, err)
				}
			})
		}
	}
}
