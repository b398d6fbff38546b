package template

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStateMachines(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]string
		want   map[string]any
	}{
		{"defaults", nil, map[string]any{
			"long": FunctionARN("Worker"), "name": "Worker", "table": TableARN("Table"), "limit": 6.0, "label": "from-default", "plain": 42.0,
			"sub": "us-east-1/from-default/" + FunctionARN("Worker"),
		}},
		{"overrides", map[string]string{"Limit": "3", "Label": "given"}, map[string]any{
			"long": FunctionARN("Worker"), "name": "Worker", "table": TableARN("Table"), "limit": 3.0, "label": "given", "plain": 42.0,
			"sub": "us-east-1/given/" + FunctionARN("Worker"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := Load("testdata/template.yaml", Options{Params: tt.params})
			if err != nil {
				t.Fatalf("Load() error: %v", err)
			}
			sms, err := tmpl.StateMachines()
			if err != nil {
				t.Fatalf("StateMachines() error: %v", err)
			}
			if len(sms) != 1 || sms[0].Name != "certflow-flow" || sms[0].ARN != StateMachineARN("certflow-flow") {
				t.Fatalf("StateMachines() = %+v, want one state machine named certflow-flow", sms)
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
			if work.Resource != tt.want["long"] {
				t.Errorf("Resource = %q, want %q", work.Resource, tt.want["long"])
			}
			for k, v := range tt.want {
				if work.Parameters[k] != v {
					t.Errorf("Parameters[%q] = %#v, want %#v", k, work.Parameters[k], v)
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
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
			tmpl, err := Load(write("t.yaml", tt.template), Options{})
			if err == nil {
				_, err = tmpl.StateMachines()
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := Load("testdata/template.yaml", Options{Params: map[string]string{"Nope": "1"}}); err == nil {
		t.Error("Load with an unknown parameter override succeeded")
	}
}

// TestRepositoryTemplate reads template.yaml: every function with Globals
// applied, every table, the state machine with its substitutions.
func TestRepositoryTemplate(t *testing.T) {
	tmpl, err := Load("../../template.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	fns, err := tmpl.Functions()
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) == 0 {
		t.Fatal("no functions")
	}
	for id, f := range fns {
		if f.Runtime == "" || f.Handler == "" || len(f.Architectures) == 0 {
			t.Errorf("%s: Globals not applied: %+v", id, f)
		}
	}
	for _, id := range tmpl.IDs("AWS::DynamoDB::Table") {
		if _, err := tmpl.Table(id); err != nil {
			t.Error(err)
		}
	}
	sms, err := tmpl.StateMachines()
	if err != nil {
		t.Fatal(err)
	}
	for _, sm := range sms {
		if strings.Contains(string(sm.Definition), "${") {
			t.Errorf("%s: a substitution is left in the definition", sm.Name)
		}
		if !strings.Contains(string(sm.Definition), FunctionARN("IssueFunction")) {
			t.Errorf("%s: the definition does not call %s", sm.Name, FunctionARN("IssueFunction"))
		}
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
