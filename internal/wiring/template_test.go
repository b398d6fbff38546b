package wiring

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/template"
)

// The deployable artifact, checked by reading template.yaml through
// goformation's intrinsic processor: what is promised in the README is what
// `sam deploy` creates.

func loadTemplate(t *testing.T) *template.Template {
	t.Helper()
	tmpl, err := template.Load("../../template.yaml", template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// folders maps logical IDs to functions/<folder>, as the Makefile does.
var folderOf = regexp.MustCompile(`(?m)^FN_(\w+)\s*:=\s*(\S+)`)

func TestTemplateFunctions(t *testing.T) {
	fns, err := loadTemplate(t).Functions()
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	folders := map[string]string{}
	for _, m := range folderOf.FindAllStringSubmatch(string(makefile), -1) {
		folders[m[1]] = m[2]
	}
	fixtures, _ := filepath.Glob("../../events/*.json")
	builders := Functions()
	for id, f := range fns {
		t.Run(id, func(t *testing.T) {
			if f.Runtime != "provided.al2023" {
				t.Errorf("runtime = %q, want provided.al2023", f.Runtime)
			}
			if len(f.Architectures) != 1 || f.Architectures[0] != "arm64" {
				t.Errorf("architectures = %v, want [arm64]", f.Architectures)
			}
			if f.Handler != "bootstrap" {
				t.Errorf("handler = %q, want bootstrap", f.Handler)
			}
			if f.Metadata["BuildMethod"] != "makefile" {
				t.Errorf("Metadata.BuildMethod = %v, want makefile", f.Metadata["BuildMethod"])
			}
			folder, ok := folders[id]
			if !ok {
				t.Fatalf("Makefile has no FN_%s (so no build-%s target)", id, id)
			}
			if _, err := os.Stat(filepath.Join("../../functions", folder, "main.go")); err != nil {
				t.Errorf("functions/%s/main.go: %v", folder, err)
			}
			if _, ok := builders[id]; !ok {
				t.Errorf("no builder in internal/wiring for %s", id)
			}
			var events []string
			for _, f := range fixtures {
				if b := filepath.Base(f); strings.HasPrefix(b, folder+".json") || strings.HasPrefix(b, folder+"-") {
					events = append(events, b)
				}
			}
			if len(events) == 0 {
				t.Errorf("no event in events/ for %s (want events/%s.json or events/%s-*.json)", id, folder, folder)
			}
		})
	}
	if len(fns) != len(builders) {
		t.Errorf("template has %d functions, internal/wiring builds %d", len(fns), len(builders))
	}
}

// TestTemplatePoliciesLeastPrivilege: no IAM statement grants a "*" action.
func TestTemplatePoliciesLeastPrivilege(t *testing.T) {
	var doc any
	if err := json.Unmarshal(loadTemplate(t).JSON(), &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if k == "Action" {
					for _, a := range asStrings(c) {
						if a == "*" || strings.HasSuffix(a, ":*") {
							t.Errorf("%s: action %q grants everything", path, a)
						}
					}
				}
				walk(path+"."+k, c)
			}
		case []any:
			for _, c := range v {
				walk(path, c)
			}
		}
	}
	walk("template", doc)
}

func TestTemplateStreamMapping(t *testing.T) {
	tmpl := loadTemplate(t)
	fns, err := tmpl.Functions()
	if err != nil {
		t.Fatal(err)
	}
	var stream map[string]any
	for _, e := range fns["RenewalTriggerFunction"].Events {
		if e.Type == "DynamoDB" {
			if err := json.Unmarshal(e.Properties, &stream); err != nil {
				t.Fatal(err)
			}
		}
	}
	if stream == nil {
		t.Fatal("RenewalTriggerFunction has no DynamoDB stream event")
	}
	if got := asStrings(stream["FunctionResponseTypes"]); len(got) != 1 || got[0] != "ReportBatchItemFailures" {
		t.Errorf("FunctionResponseTypes = %v, want [ReportBatchItemFailures]", got)
	}
	if id, ok := template.TableOfStream(fmt.Sprint(stream["Stream"])); !ok || id != "RenewalTimersTable" {
		t.Errorf("Stream = %v, want the stream of RenewalTimersTable", stream["Stream"])
	}
	if stream["BisectBatchOnFunctionError"] != true {
		t.Error("BisectBatchOnFunctionError is not true")
	}
	if n, ok := stream["MaximumRetryAttempts"].(float64); !ok || n < 1 || n > 100 {
		t.Errorf("MaximumRetryAttempts = %v, want bounded", stream["MaximumRetryAttempts"])
	}
	onFailure, _ := stream["DestinationConfig"].(map[string]any)["OnFailure"].(map[string]any)
	if onFailure["Type"] != "SQS" {
		t.Errorf("OnFailure = %v, want an SQS destination", onFailure)
	}
	filters, _ := stream["FilterCriteria"].(map[string]any)["Filters"].([]any)
	if len(filters) != 1 {
		t.Fatalf("FilterCriteria.Filters = %v, want one filter", filters)
	}
	var pattern struct {
		EventName    []string `json:"eventName"`
		UserIdentity struct {
			Type        []string `json:"type"`
			PrincipalID []string `json:"principalId"`
		} `json:"userIdentity"`
		DynamoDB struct {
			Keys struct {
				SK struct {
					S []string `json:"S"`
				} `json:"sk"`
			} `json:"Keys"`
		} `json:"dynamodb"`
	}
	if err := json.Unmarshal([]byte(filters[0].(map[string]any)["Pattern"].(string)), &pattern); err != nil {
		t.Fatalf("filter pattern: %v", err)
	}
	if strings.Join(pattern.EventName, ",") != "REMOVE" ||
		strings.Join(pattern.UserIdentity.Type, ",") != "Service" ||
		strings.Join(pattern.UserIdentity.PrincipalID, ",") != "dynamodb.amazonaws.com" ||
		strings.Join(pattern.DynamoDB.Keys.SK.S, ",") != "TIMER" {
		t.Errorf("filter pattern = %+v, want TTL REMOVEs of TIMER items only", pattern)
	}
}

func TestTemplateTables(t *testing.T) {
	tests := []struct {
		logicalID string
		stream    string // stream view type; empty: no stream
		indexes   string
		keysOnly  bool // no attribute but the keys (DynamoDB Local's TTL needs it)
	}{
		{logicalID: "CertificatesTable", indexes: "ByDue,ByExpiry,ByParent,ByTenant"},
		{logicalID: "RenewalTimersTable", stream: "OLD_IMAGE", keysOnly: true},
	}
	for _, tt := range tests {
		t.Run(tt.logicalID, func(t *testing.T) {
			table, err := loadTemplate(t).Table(tt.logicalID)
			if err != nil {
				t.Fatal(err)
			}
			if table.TimeToLiveSpecification == nil || !table.TimeToLiveSpecification.Enabled || *table.TimeToLiveSpecification.AttributeName != "expiresAt" {
				t.Error("TTL on expiresAt is not enabled")
			}
			switch {
			case tt.stream == "" && table.StreamSpecification != nil:
				t.Errorf("stream %s, want none (certificate items stay out of streams)", table.StreamSpecification.StreamViewType)
			case tt.stream != "" && (table.StreamSpecification == nil || table.StreamSpecification.StreamViewType != tt.stream):
				t.Errorf("stream is not %s", tt.stream)
			}
			if table.PointInTimeRecoverySpecification == nil || table.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled == nil || !*table.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled {
				t.Error("point-in-time recovery is not enabled")
			}
			if table.SSESpecification == nil || !table.SSESpecification.SSEEnabled {
				t.Error("server-side encryption is not enabled")
			}
			var indexes []string
			for _, g := range table.GlobalSecondaryIndexes {
				indexes = append(indexes, g.IndexName)
			}
			sort.Strings(indexes)
			if strings.Join(indexes, ",") != tt.indexes {
				t.Errorf("indexes = %v, want %s", indexes, tt.indexes)
			}
			if tt.keysOnly && len(table.AttributeDefinitions) != len(table.KeySchema) {
				t.Errorf("%d attribute definitions, want only the %d keys", len(table.AttributeDefinitions), len(table.KeySchema))
			}
		})
	}
	if _, err := os.Stat("../../statemachine/issuance.asl.json"); err != nil {
		t.Errorf("state machine definition: %v", err)
	}
}

func asStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// TestTemplateProtectsDelivery: the unauthenticated challenge route is
// throttled, the challenge and delivery functions have reserved
// concurrency, and the functions get the settings tenancy and delivery
// access read.
func TestTemplateProtectsDelivery(t *testing.T) {
	tmpl := loadTemplate(t)
	fns, err := tmpl.Functions()
	if err != nil {
		t.Fatal(err)
	}
	api, ok := tmpl.Resource("Api")
	if !ok {
		t.Fatal("template has no Api")
	}
	var props struct {
		RouteSettings map[string]struct{ ThrottlingRateLimit, ThrottlingBurstLimit float64 }
	}
	if err := json.Unmarshal(api.Properties, &props); err != nil {
		t.Fatal(err)
	}
	var challengeRoute string
	for _, ev := range fns["ChallengeFunction"].Events {
		if key, ok := ev.RouteKey(); ok && ev.Authorizer() == "NONE" {
			challengeRoute = key
		}
	}
	if rs, ok := props.RouteSettings[challengeRoute]; !ok || rs.ThrottlingRateLimit <= 0 || rs.ThrottlingBurstLimit < rs.ThrottlingRateLimit {
		t.Errorf("route settings of %q = %+v, want a rate and a burst limit", challengeRoute, props.RouteSettings)
	}
	for _, id := range []string{"ChallengeFunction", "DeliveryFunction"} {
		if rc := fns[id].ReservedConcurrency; rc == nil || *rc <= 0 {
			t.Errorf("%s has no reserved concurrency by default", id)
		}
	}
	for id, vars := range map[string][]string{
		"DeliveryFunction": {EnvDeliveryPrincipals},
		"ApiFunction":      {EnvTenantOperators, EnvRequestCooldown},
	} {
		for _, v := range vars {
			if _, ok := fns[id].Environment[v]; !ok {
				t.Errorf("%s is not given %s", id, v)
			}
		}
	}
	base, _ := tmpl.ParameterDefault("FailureBackoffBaseSeconds")
	if got := fns["ApiFunction"].Environment[EnvRequestCooldown]; got != base+"s" {
		t.Errorf("%s = %q, want the failure backoff's first wait, %ss", EnvRequestCooldown, got, base)
	}
}

// TestTemplateRules: CloudFormation refuses a deploy that says nowhere
// where customer domains must point, before creating anything.
func TestTemplateRules(t *testing.T) {
	tests := []struct {
		name    string
		params  map[string]string
		wantErr string
	}{
		{name: "defaults", wantErr: "Set EdgeCnames or EdgeAddresses"},
		{name: "cnames", params: map[string]string{"EdgeCnames": "edge.platform.example"}},
		{name: "addresses", params: map[string]string{"EdgeAddresses": "203.0.113.10,2001:db8::10"}},
		{name: "both", params: map[string]string{"EdgeCnames": "edge.platform.example", "EdgeAddresses": "203.0.113.10"}},
	}
	tmpl := loadTemplate(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tmpl.CheckRules(tt.params)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("CheckRules(%v) = %v, want nil", tt.params, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("CheckRules(%v) = %v, want an error containing %q", tt.params, err, tt.wantErr)
			}
		})
	}
}

// TestTemplateRetainsData: deleting or replacing the stack keeps the tables
// and the KMS key that seals the private keys in them.
func TestTemplateRetainsData(t *testing.T) {
	tmpl := loadTemplate(t)
	ids := append(tmpl.IDs("AWS::DynamoDB::Table"), tmpl.IDs("AWS::KMS::Key")...)
	if len(ids) < 3 {
		t.Fatalf("found tables and keys %v, want two tables and a key", ids)
	}
	for _, id := range ids {
		var r struct{ DeletionPolicy, UpdateReplacePolicy string }
		if err := json.Unmarshal(rawResource(t, tmpl, id), &r); err != nil {
			t.Fatal(err)
		}
		if r.DeletionPolicy != "Retain" || r.UpdateReplacePolicy != "Retain" {
			t.Errorf("%s: DeletionPolicy %q, UpdateReplacePolicy %q; want Retain for both", id, r.DeletionPolicy, r.UpdateReplacePolicy)
		}
	}
}

// rawResource returns the resource id of the processed template as JSON,
// attributes (DeletionPolicy, UpdateReplacePolicy) included.
func rawResource(t *testing.T, tmpl *template.Template, id string) json.RawMessage {
	t.Helper()
	var doc struct{ Resources map[string]json.RawMessage }
	if err := json.Unmarshal(tmpl.JSON(), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Resources[id]
}

// TestTemplateLint runs cfn-lint (`make tools`) on template.yaml.
func TestTemplateLint(t *testing.T) {
	tools, err := offline.FindTools("")
	if err != nil || tools.CFNLint == "" {
		t.Skipf("cfn-lint not installed (make tools): %v", err)
	}
	out, err := exec.Command(tools.CFNLint, "../../template.yaml").CombinedOutput()
	if err != nil {
		t.Errorf("%s template.yaml: %v\n%s", tools.CFNLint, err, out)
	}
}

// TestDeployDefaultsAgree: the ACME directory a deploy with the defaults
// uses is the one samconfig.toml and the README name.
func TestDeployDefaultsAgree(t *testing.T) {
	def, ok := loadTemplate(t).ParameterDefault("AcmeDirectory")
	if !ok {
		t.Fatal("template.yaml has no AcmeDirectory parameter")
	}
	samconfig, err := os.ReadFile("../../samconfig.toml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?m)^\s*cached\s*=\s*true`).Match(samconfig) {
		t.Error("samconfig.toml caches builds: SAM never reuses a makefile build, and hashing costs time")
	}
	sources := []struct {
		name string
		re   *regexp.Regexp
		text []byte
	}{
		{"samconfig.toml parameter_overrides", regexp.MustCompile(`(?m)^parameter_overrides\s*=\s*".*\bAcmeDirectory=(\S+?)[\s"]`), samconfig},
		{"README parameter table", regexp.MustCompile("(?m)^\\| `AcmeDirectory` \\| `([^`]+)` \\|"), readme},
	}
	for _, src := range sources {
		m := src.re.FindSubmatch(src.text)
		if m == nil {
			t.Errorf("%s does not name the AcmeDirectory default", src.name)
			continue
		}
		if string(m[1]) != def {
			t.Errorf("%s says AcmeDirectory %q, template.yaml's default is %q", src.name, m[1], def)
		}
	}
}
