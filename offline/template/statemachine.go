package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// StateMachine is an AWS::Serverless::StateMachine with its definition read
// from DefinitionUri and its DefinitionSubstitutions applied: the
// definition as it is deployed.
type StateMachine struct {
	LogicalID string
	// Name is the Name property, or the logical ID when it has none.
	Name       string
	ARN        string
	Definition []byte
}

// StateMachines returns the template's state machines.
func (t *Template) StateMachines() ([]StateMachine, error) {
	var out []StateMachine
	for _, id := range t.IDs("AWS::Serverless::StateMachine") {
		var p struct {
			Name                    string
			DefinitionUri           any
			DefinitionSubstitutions map[string]any
		}
		if err := json.Unmarshal(t.resolved.Resources[id].Properties, &p); err != nil {
			return nil, fmt.Errorf("template %s: %s: %w", t.path, id, err)
		}
		uri, ok := p.DefinitionUri.(string)
		if !ok || uri == "" {
			return nil, fmt.Errorf("template %s: %s: DefinitionUri must be a path to a local definition file", t.path, id)
		}
		if !filepath.IsAbs(uri) {
			uri = filepath.Join(t.dir(), uri)
		}
		def, err := os.ReadFile(uri)
		if err != nil {
			return nil, fmt.Errorf("template %s: %s: %w", t.path, id, err)
		}
		values := map[string]string{}
		for k, v := range p.DefinitionSubstitutions {
			values[k] = scalar(v)
		}
		if def, err = Substitute(def, values); err != nil {
			return nil, fmt.Errorf("template %s: %s: definition %s: %w", t.path, id, uri, err)
		}
		name := first(p.Name, id)
		out = append(out, StateMachine{LogicalID: id, Name: name, ARN: StateMachineARN(name), Definition: def})
	}
	return out, nil
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
		slices.Sort(missing)
		return nil, fmt.Errorf("no substitution for %s", strings.Join(missing, ", "))
	}
	if !json.Valid(out) {
		return nil, errors.New("definition is not valid JSON after substitution")
	}
	return out, nil
}
