package template

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEvalRule(t *testing.T) {
	params := map[string]string{"A": "", "B": "x", "Env": "prod"}
	tests := []struct {
		expr    string
		want    any
		wantErr string
	}{
		{expr: `{"Fn::Equals": [{"Ref": "A"}, ""]}`, want: true},
		{expr: `{"Fn::Not": [{"Fn::Equals": [{"Ref": "B"}, ""]}]}`, want: true},
		{expr: `{"Fn::And": [{"Fn::Equals": [{"Ref": "A"}, ""]}, {"Fn::Equals": [{"Ref": "B"}, ""]}]}`, want: false},
		{expr: `{"Fn::Or": [{"Fn::Equals": [{"Ref": "A"}, ""]}, {"Fn::Equals": [{"Ref": "B"}, ""]}]}`, want: true},
		{expr: `{"Fn::Contains": [["prod", "staging"], {"Ref": "Env"}]}`, want: true},
		{expr: `{"Fn::Contains": [["staging"], {"Ref": "Env"}]}`, want: false},
		{expr: `{"Ref": "Missing"}`, wantErr: "no such parameter"},
		{expr: `{"Fn::Not": [{"Ref": "B"}]}`, wantErr: "not a condition"},
		{expr: `{"Fn::Contains": [["a"]]}`, wantErr: "takes 2 arguments"},
		{expr: `{"Fn::EachMemberIn": [["a"], ["a"]]}`, wantErr: "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, err := evalRule(json.RawMessage(tt.expr), params)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("evalRule(%s) error = %v, want one containing %q", tt.expr, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("evalRule(%s) = %v, %v; want %v", tt.expr, got, err, tt.want)
			}
		})
	}
}
