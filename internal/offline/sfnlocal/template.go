package sfnlocal

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// stackName is the stack name the offline stack pretends to deploy.
const stackName = "certflow"

// DefaultFunctionARN is the offline ARN of the function with the given
// logical ID: the function is named by its logical ID.
func DefaultFunctionARN(logicalID string) string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", Region, AccountID, logicalID)
}

// FromTemplate reads the SAM template at templatePath and returns its
// AWS::Serverless::StateMachine resources with their DefinitionUri files
// (relative to the template) read and their DefinitionSubstitutions applied.
// A substitution value may be a plain scalar, !Ref (a parameter: params, or
// else the parameter's Default; a pseudo parameter; another resource: its
// logical ID), !GetAtt (a function's Arn: functionARN(logical ID), nil
// meaning DefaultFunctionARN; anything else: the logical ID) or !Sub over
// those. A state machine is named by its Name property when that is a plain
// string and by its logical ID otherwise.
//
// The template is read as YAML, not through goformation, because goformation
// resolves intrinsic functions itself and types DefinitionSubstitutions as
// strings, which numbers in the template are not.
func FromTemplate(templatePath string, functionARN func(logicalID string) string, params map[string]string) ([]StateMachine, error) {
	if functionARN == nil {
		functionARN = DefaultFunctionARN
	}
	data, err := os.ReadFile(templatePath)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse template %s: %w", templatePath, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("parse template %s: empty document", templatePath)
	}
	t := &template{root: (*node)(doc.Content[0]), functionARN: functionARN, params: params}
	resources := t.root.lookup("Resources")
	if resources == nil {
		return nil, fmt.Errorf("template %s has no Resources", templatePath)
	}

	var machines []StateMachine
	for _, id := range resources.keys() {
		res := resources.lookup(id)
		if res.lookup("Type").scalar() != "AWS::Serverless::StateMachine" {
			continue
		}
		sm, err := t.stateMachine(id, res.lookup("Properties"), filepath.Dir(templatePath))
		if err != nil {
			return nil, fmt.Errorf("template %s: state machine %s: %w", templatePath, id, err)
		}
		machines = append(machines, sm)
	}
	return machines, nil
}

type template struct {
	root        *node
	functionARN func(string) string
	params      map[string]string
}

func (t *template) stateMachine(id string, props *node, dir string) (StateMachine, error) {
	uri := props.lookup("DefinitionUri")
	if uri == nil || uri.Kind != yaml.ScalarNode || uri.tag() != "!!str" {
		return StateMachine{}, errors.New("DefinitionUri must be a path to a local definition file")
	}
	path := uri.Value
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	def, err := os.ReadFile(path)
	if err != nil {
		return StateMachine{}, fmt.Errorf("read definition: %w", err)
	}
	values := map[string]string{}
	if subs := props.lookup("DefinitionSubstitutions"); subs != nil {
		for _, k := range subs.keys() {
			v, err := t.resolve(subs.lookup(k))
			if err != nil {
				return StateMachine{}, fmt.Errorf("DefinitionSubstitutions %s: %w", k, err)
			}
			values[k] = v
		}
	}
	def, err = Substitute(def, values)
	if err != nil {
		return StateMachine{}, fmt.Errorf("definition %s: %w", path, err)
	}
	name := id
	if n := props.lookup("Name"); n != nil && n.Kind == yaml.ScalarNode && n.tag() == "!!str" && n.Value != "" {
		name = n.Value
	}
	return StateMachine{Name: name, ARN: ARN(name), Definition: def}, nil
}

// resolve evaluates a substitution value.
func (t *template) resolve(n *node) (string, error) {
	switch {
	case n == nil:
		return "", errors.New("no value")
	case n.tag() == "!Ref":
		return t.ref(n.Value)
	case n.tag() == "!GetAtt":
		return t.getAtt(n)
	case n.tag() == "!Sub":
		return t.sub(n)
	case n.Kind == yaml.ScalarNode:
		return n.Value, nil
	case n.Kind == yaml.MappingNode && len(n.Content) == 2:
		fn, arg := n.Content[0].Value, (*node)(n.Content[1])
		switch fn {
		case "Ref":
			return t.ref(arg.Value)
		case "Fn::GetAtt":
			return t.getAtt(arg)
		case "Fn::Sub":
			return t.sub(arg)
		}
		return "", fmt.Errorf("unsupported intrinsic function %s", fn)
	}
	return "", fmt.Errorf("unsupported value at line %d", n.Line)
}

func (t *template) ref(name string) (string, error) {
	switch name {
	case "AWS::Region":
		return Region, nil
	case "AWS::AccountId":
		return AccountID, nil
	case "AWS::Partition":
		return "aws", nil
	case "AWS::StackName":
		return stackName, nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	}
	if v, ok := t.params[name]; ok {
		return v, nil
	}
	if p := t.root.lookup("Parameters").lookup(name); p != nil {
		if d := p.lookup("Default"); d != nil && d.Kind == yaml.ScalarNode {
			return d.Value, nil
		}
		return "", fmt.Errorf("parameter %s has no value and no Default", name)
	}
	if t.root.lookup("Resources").lookup(name) != nil {
		return name, nil
	}
	return "", fmt.Errorf("!Ref %s: no such parameter or resource", name)
}

func (t *template) getAtt(n *node) (string, error) {
	var id, attr string
	switch n.Kind {
	case yaml.ScalarNode:
		id, attr, _ = strings.Cut(n.Value, ".")
	case yaml.SequenceNode:
		if len(n.Content) == 2 {
			id, attr = n.Content[0].Value, n.Content[1].Value
		}
	}
	res := t.root.lookup("Resources").lookup(id)
	if res == nil || attr == "" {
		return "", fmt.Errorf("!GetAtt %s.%s: no such resource", id, attr)
	}
	typ := res.lookup("Type").scalar()
	if attr == "Arn" && (typ == "AWS::Serverless::Function" || typ == "AWS::Lambda::Function") {
		return t.functionARN(id), nil
	}
	return id, nil
}

var subVariable = regexp.MustCompile(`\$\{([^}!][^}]*)\}`)

func (t *template) sub(n *node) (string, error) {
	text := n.Value
	vars := map[string]string{}
	if n.Kind == yaml.SequenceNode && len(n.Content) == 2 {
		text = n.Content[0].Value
		m := (*node)(n.Content[1])
		for _, k := range m.keys() {
			v, err := t.resolve(m.lookup(k))
			if err != nil {
				return "", fmt.Errorf("!Sub variable %s: %w", k, err)
			}
			vars[k] = v
		}
	}
	var firstErr error
	out := subVariable.ReplaceAllStringFunc(text, func(m string) string {
		name := m[2 : len(m)-1]
		if v, ok := vars[name]; ok {
			return v
		}
		var v string
		var err error
		if id, attr, ok := strings.Cut(name, "."); ok {
			v, err = t.getAtt(&node{Kind: yaml.SequenceNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: id}, {Kind: yaml.ScalarNode, Value: attr}}})
		} else {
			v, err = t.ref(name)
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return v
	})
	return out, firstErr
}

var substitution = regexp.MustCompile(`\$\{([A-Za-z0-9_.:-]+)\}`)

// Substitute applies DefinitionSubstitutions to a definition the way
// CloudFormation does: every ${Key} is replaced by values[Key] as is, so a
// number substituted into a number position stays a JSON number. It fails if
// a ${...} has no value or the result is not JSON.
func Substitute(definition []byte, values map[string]string) ([]byte, error) {
	var missing []string
	out := substitution.ReplaceAllFunc(definition, func(m []byte) []byte {
		key := string(m[2 : len(m)-1])
		v, ok := values[key]
		if !ok {
			if !slices.Contains(missing, key) {
				missing = append(missing, key)
			}
			return m
		}
		return []byte(v)
	})
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("no substitution for %s", strings.Join(missing, ", "))
	}
	if !json.Valid(out) {
		return nil, errors.New("definition is not valid JSON after substitution")
	}
	return out, nil
}

// node adds lookups to yaml.Node; all of them accept a nil receiver.
type node yaml.Node

func (n *node) lookup(key string) *node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return (*node)(n.Content[i+1])
		}
	}
	return nil
}

func (n *node) keys() []string {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var keys []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		keys = append(keys, n.Content[i].Value)
	}
	return keys
}

func (n *node) tag() string {
	if n == nil {
		return ""
	}
	return (*yaml.Node)(n).ShortTag()
}

func (n *node) scalar() string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}
