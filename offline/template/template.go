// Package template reads template.yaml, the SAM template certflow deploys,
// for everything that runs it or checks it offline: the tables DynamoDB
// Local creates, the functions and routes the local runtime serves, the
// stream mapping, the state machine definitions, and the tests that hold
// the template to its promises. There is one reader: goformation's
// intrinsic-function processor, with Ref, Fn::GetAtt and Fn::Sub resolved
// to the offline stack's names and ARNs.
package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	cfndynamodb "github.com/awslabs/goformation/v7/cloudformation/dynamodb"
	"github.com/awslabs/goformation/v7/intrinsics"
)

// The account, region and stack name the offline stack pretends to run in.
const (
	Region    = "us-east-1"
	AccountID = "000000000000"
	StackName = "certflow"
	Partition = "aws"
)

// Resource is one resource of the template, intrinsic functions resolved.
type Resource struct {
	Type           string
	Metadata       map[string]any
	Properties     json.RawMessage
	DeletionPolicy string
	Condition      string
}

// Template is a read template.yaml.
type Template struct {
	path      string
	resolved  document
	raw       document
	processed []byte
}

type document struct {
	Parameters map[string]struct {
		Type          string
		Default       any
		AllowedValues []any
		NoEcho        any
	}
	Globals struct {
		Function json.RawMessage
	}
	Rules      map[string]json.RawMessage
	Conditions map[string]json.RawMessage
	Resources  map[string]Resource
	Outputs    map[string]json.RawMessage
}

// Options adjusts how the template is read.
type Options struct {
	// Params overrides parameter defaults, as `sam deploy
	// --parameter-overrides` would.
	Params map[string]string
}

// Load reads the template at path.
func Load(path string, opts Options) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	t := &Template{path: path}
	// The unresolved form first: the resolvers need to know which logical
	// IDs are functions, tables and parameters.
	raw, err := intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{NoProcess: true})
	if err != nil {
		return nil, fmt.Errorf("parse template %s: %w", path, err)
	}
	if err := json.Unmarshal(raw, &t.raw); err != nil {
		return nil, fmt.Errorf("parse template %s: %w", path, err)
	}
	overrides := map[string]any{}
	for k, v := range opts.Params {
		if _, ok := t.raw.Parameters[k]; !ok {
			return nil, fmt.Errorf("template %s has no parameter %s", path, k)
		}
		overrides[k] = v
	}
	var errs []error
	r := resolver{t: t, params: overrides, errs: &errs}
	t.processed, err = intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{
		ParameterOverrides: overrides,
		EvaluateConditions: true,
		IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{
			"Ref":        r.ref,
			"Fn::GetAtt": r.getAtt,
			"Fn::Sub":    r.sub,
		},
	})
	if err == nil {
		err = errors.Join(errs...)
	}
	if err != nil {
		return nil, fmt.Errorf("process template %s: %w", path, err)
	}
	if err := json.Unmarshal(t.processed, &t.resolved); err != nil {
		return nil, fmt.Errorf("parse template %s: %w", path, err)
	}
	return t, nil
}

// Path is the template's file.
func (t *Template) Path() string { return t.path }

// JSON is the whole template with intrinsic functions resolved.
func (t *Template) JSON() []byte { return t.processed }

// Resource returns the resource logicalID, intrinsic functions resolved.
func (t *Template) Resource(logicalID string) (Resource, bool) {
	r, ok := t.resolved.Resources[logicalID]
	return r, ok
}

// RawResource returns the resource logicalID as written (intrinsic
// functions in their long form, {"Fn::GetAtt": [...]}).
func (t *Template) RawResource(logicalID string) (Resource, bool) {
	r, ok := t.raw.Resources[logicalID]
	return r, ok
}

// IDs returns the logical IDs of the resources of type typ, sorted.
func (t *Template) IDs(typ string) []string {
	var ids []string
	for id, r := range t.resolved.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Parameters returns the names of the template's parameters.
func (t *Template) Parameters() []string {
	var out []string
	for k := range t.raw.Parameters {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ParameterDefault returns the default of parameter name as a string, and
// whether the parameter exists.
func (t *Template) ParameterDefault(name string) (string, bool) {
	p, ok := t.raw.Parameters[name]
	if !ok {
		return "", false
	}
	return scalar(p.Default), true
}

// Rules returns the template's Rules section as written.
func (t *Template) Rules() map[string]json.RawMessage { return t.raw.Rules }

// Table returns the AWS::DynamoDB::Table resource logicalID.
func (t *Template) Table(logicalID string) (cfndynamodb.Table, error) {
	r, ok := t.Resource(logicalID)
	if !ok || r.Type != "AWS::DynamoDB::Table" {
		return cfndynamodb.Table{}, fmt.Errorf("template %s has no table %s", t.path, logicalID)
	}
	// goformation's resource types read the whole resource, Type included.
	whole, err := json.Marshal(map[string]any{"Type": r.Type, "Properties": r.Properties})
	if err != nil {
		return cfndynamodb.Table{}, err
	}
	var table cfndynamodb.Table
	if err := json.Unmarshal(whole, &table); err != nil {
		return cfndynamodb.Table{}, fmt.Errorf("template %s: table %s: %w", t.path, logicalID, err)
	}
	return table, nil
}

// FunctionARN is the offline ARN of the function logicalID: functions are
// named by their logical IDs.
func FunctionARN(logicalID string) string {
	return fmt.Sprintf("arn:%s:lambda:%s:%s:function:%s", Partition, Region, AccountID, logicalID)
}

// TableARN is the offline ARN of the table logicalID.
func TableARN(logicalID string) string {
	return fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/%s", Partition, Region, AccountID, logicalID)
}

// StreamARN is the offline ARN of the stream of the table logicalID.
func StreamARN(logicalID string) string { return TableARN(logicalID) + "/stream/offline" }

// TableOfStream returns the logical ID of the table whose StreamARN is arn.
func TableOfStream(arn string) (string, bool) {
	rest, ok := strings.CutPrefix(arn, TableARN(""))
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, "/stream/offline")
	return id, ok && id != ""
}

// RoleARN is the offline ARN of the IAM role logicalID: roles are named by
// their logical IDs.
func RoleARN(logicalID string) string {
	return fmt.Sprintf("arn:%s:iam::%s:role/%s", Partition, AccountID, logicalID)
}

// implicitRole reports whether id is the execution role SAM creates for a
// function that names none: <FunctionLogicalID>Role.
func (t *Template) implicitRole(id string) bool {
	fn, ok := strings.CutSuffix(id, "Role")
	if !ok {
		return false
	}
	res, ok := t.raw.Resources[fn]
	if !ok || res.Type != "AWS::Serverless::Function" {
		return false
	}
	var p struct{ Role any }
	return json.Unmarshal(res.Properties, &p) == nil && p.Role == nil
}

// StateMachineARN is the offline ARN of the state machine called name.
func StateMachineARN(name string) string {
	return fmt.Sprintf("arn:%s:states:%s:%s:stateMachine:%s", Partition, Region, AccountID, name)
}

// resolver resolves Ref, Fn::GetAtt and Fn::Sub the way CloudFormation
// would in the offline account: a parameter to its value, a function or a
// table to its name (the logical ID), a state machine to its ARN, an
// attribute to the offline ARN.
type resolver struct {
	t      *Template
	params map[string]any
	errs   *[]error
}

func (r resolver) fail(format string, args ...any) {
	err := fmt.Errorf(format, args...)
	for _, e := range *r.errs {
		if e.Error() == err.Error() {
			return
		}
	}
	*r.errs = append(*r.errs, err)
}

func (r resolver) ref(_ string, input any, _ any) any {
	name, ok := input.(string)
	if !ok {
		return nil
	}
	switch name {
	case "AWS::AccountId":
		return AccountID
	case "AWS::Region":
		return Region
	case "AWS::StackName":
		return StackName
	case "AWS::Partition":
		return Partition
	case "AWS::URLSuffix":
		return "amazonaws.com"
	case "AWS::NoValue":
		return nil
	}
	if v, ok := r.params[name]; ok {
		return v
	}
	if p, ok := r.t.raw.Parameters[name]; ok {
		if p.Default == nil {
			r.fail("Ref %s: the parameter has no value and no Default", name)
		}
		return p.Default
	}
	res, ok := r.t.raw.Resources[name]
	if !ok && r.t.implicitRole(name) {
		return name
	}
	if !ok {
		r.fail("Ref %s: no such parameter or resource", name)
		return nil
	}
	if res.Type == "AWS::Serverless::StateMachine" {
		return StateMachineARN(name)
	}
	return name
}

func (r resolver) getAtt(_ string, input any, _ any) any {
	var parts []string
	switch v := input.(type) {
	case []any:
		for _, p := range v {
			s, _ := p.(string)
			parts = append(parts, s)
		}
	case string:
		parts = strings.SplitN(v, ".", 2)
	}
	if len(parts) != 2 {
		return nil
	}
	id, attr := parts[0], parts[1]
	res := r.t.raw.Resources[id]
	switch {
	case attr == "Arn" && r.t.implicitRole(id):
		return RoleARN(id)
	case attr == "Arn" && res.Type == "AWS::Serverless::Function":
		return FunctionARN(id)
	case attr == "Arn" && res.Type == "AWS::DynamoDB::Table":
		return TableARN(id)
	case attr == "StreamArn" && res.Type == "AWS::DynamoDB::Table":
		return StreamARN(id)
	case attr == "Name" && res.Type == "AWS::Serverless::StateMachine":
		return id
	case attr == "Arn":
		return fmt.Sprintf("arn:%s:offline:%s:%s:%s", Partition, Region, AccountID, id)
	}
	return id + "." + attr
}

var subVariable = regexp.MustCompile(`\$\{([^}!][^}]*)\}`)

func (r resolver) sub(_ string, input any, tmpl any) any {
	src, vars := "", map[string]any{}
	switch v := input.(type) {
	case string:
		src = v
	case []any:
		if len(v) != 2 {
			return nil
		}
		src, _ = v[0].(string)
		if m, ok := v[1].(map[string]any); ok {
			vars = m
		}
	default:
		return nil
	}
	return subVariable.ReplaceAllStringFunc(src, func(m string) string {
		name := m[2 : len(m)-1]
		if v, ok := vars[name]; ok {
			return scalar(v)
		}
		if id, attr, ok := strings.Cut(name, "."); ok {
			return scalar(r.getAtt("", []any{id, attr}, tmpl))
		}
		return scalar(r.ref("", name, tmpl))
	})
}

// scalar formats a resolved value as CloudFormation would substitute it.
func scalar(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%f", v), "0"), ".")
	case bool:
		return fmt.Sprint(v)
	}
	b, _ := json.Marshal(v)
	return string(bytes.Trim(b, `"`))
}

// dir is the folder relative paths of the template (DefinitionUri) start
// from.
func (t *Template) dir() string { return filepath.Dir(t.path) }
