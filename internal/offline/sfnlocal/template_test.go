package sfnlocal

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFromTemplate(t *testing.T) {
	workerARN := func(id string) string { return "arn:test:" + id }
	tests := []struct {
		name   string
		arn    func(string) string
		params map[string]string
		want   map[string]any
	}{
		{"defaults", nil, nil, map[string]any{
			"long": DefaultFunctionARN("Worker"), "name": "Worker", "table": "Table", "limit": 6.0, "label": "from-default", "plain": 42.0,
			"sub": "us-east-1/from-default/" + DefaultFunctionARN("Worker"),
		}},
		{"overrides", workerARN, map[string]string{"Limit": "3", "Label": "given"}, map[string]any{
			"long": "arn:test:Worker", "name": "Worker", "table": "Table", "limit": 3.0, "label": "given", "plain": 42.0,
			"sub": "us-east-1/given/arn:test:Worker",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sms, err := FromTemplate("testdata/template.yaml", tt.arn, tt.params)
			if err != nil {
				t.Fatalf("FromTemplate() error: %v", err)
			}
			if len(sms) != 1 || sms[0].Name != "certflow-flow" || sms[0].ARN != ARN("certflow-flow") {
				t.Fatalf("FromTemplate() = %+v, want one state machine named certflow-flow", sms)
			}
			var def struct {
				States map[string]struct {
					Resource   string
					Parameters map[string]any
				}
			}
			if err := json.Unmarshal(sms[0].Definition, &def); err != nil {
				t.Fatalf("definition: %v", err)
			}
			work := def.States["Work"]
			wantResource := tt.want["long"]
			if work.Resource != wantResource {
				t.Errorf("Resource = %q, want %q", work.Resource, wantResource)
			}
			for k, v := range tt.want {
				if work.Parameters[k] != v {
					t.Errorf("Parameters[%q] = %#v, want %#v", k, work.Parameters[k], v)
				}
			}
		})
	}
}

func TestFromTemplateErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("d.asl.json", `{"StartAt":"A","States":{"A":{"Type":"Pass","Result":"${X}","End":true}}}`)
	tests := []struct {
		name, template, wantErr string
	}{
		{"parameter without value", "Parameters: {P: {Type: String}}\nResources:\n  M:\n    Type: AWS::Serverless::StateMachine\n    Properties:\n      DefinitionUri: d.asl.json\n      DefinitionSubstitutions: {X: !Ref P}\n", "no value and no Default"},
		{"unknown reference", "Resources:\n  M:\n    Type: AWS::Serverless::StateMachine\n    Properties:\n      DefinitionUri: d.asl.json\n      DefinitionSubstitutions: {X: !Ref Nope}\n", "no such parameter or resource"},
		{"missing substitution", "Resources:\n  M:\n    Type: AWS::Serverless::StateMachine\n    Properties:\n      DefinitionUri: d.asl.json\n", "no substitution for X"},
		{"S3 definition", "Resources:\n  M:\n    Type: AWS::Serverless::StateMachine\n    Properties:\n      DefinitionUri: {Bucket: b, Key: k}\n", "DefinitionUri must be a path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromTemplate(write("t.yaml", tt.template), nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("FromTemplate() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestRepositoryTemplate checks that template.yaml's state machine, read
// with FromTemplate and the parameter defaults, is the definition the
// scenario tests run.
func TestRepositoryTemplate(t *testing.T) {
	sms, err := FromTemplate("../../../template.yaml", nil, nil)
	if err != nil {
		t.Fatalf("FromTemplate(template.yaml) error: %v", err)
	}
	var found bool
	for _, sm := range sms {
		if sm.Name != "IssuanceStateMachine" {
			continue
		}
		found = true
		if want := issuanceDefinition(t); !bytes.Equal(sm.Definition, want) {
			t.Errorf("IssuanceStateMachine definition from template.yaml differs from %s with the defaults the tests use", definitionPath)
		}
	}
	if !found {
		t.Fatalf("template.yaml has no IssuanceStateMachine; got %d state machines", len(sms))
	}
}

// TestDefinitionIsValidASL runs asl-validator on the definition with the
// template's defaults substituted, as make lint does.
func TestDefinitionIsValidASL(t *testing.T) {
	tl := findTools(t)
	validate := func(def []byte) (string, error) {
		p := filepath.Join(t.TempDir(), "definition.json")
		if err := os.WriteFile(p, def, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, tl.node, filepath.Join(tl.modules, "asl-validator", "dist", "bin", "asl-validator.js"), "--json-path", p)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := validate(issuanceDefinition(t)); err != nil || !strings.Contains(out, "is valid") {
		t.Errorf("asl-validator %s: %v\n%s", definitionPath, err, out)
	}
	broken := bytes.Replace(issuanceDefinition(t), []byte(`"Next": "IsARIRenewal"`), []byte(`"Next": "NoSuchState"`), 1)
	if out, err := validate(broken); err == nil {
		t.Errorf("asl-validator accepted a definition with a missing Next target:\n%s", out)
	}
}

func TestSubstitute(t *testing.T) {
	tests := []struct {
		name, in string
		values   map[string]string
		want     string
		wantErr  string
	}{
		{"number stays a number", `{"a": ${N}, "b": "${S}"}`, map[string]string{"N": "6", "S": "x"}, `{"a": 6, "b": "x"}`, ""},
		{"missing value", `{"a": "${N}"}`, nil, "", "no substitution for N"},
		{"not JSON after", `{"a": ${S}}`, map[string]string{"S": "x"}, "", "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Substitute([]byte(tt.in), tt.values)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Substitute(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Errorf("Substitute(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
			}
		})
	}
}
