package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// rule is one entry of the template's Rules section.
type rule struct {
	RuleCondition json.RawMessage
	Assertions    []struct {
		Assert            json.RawMessage
		AssertDescription string
	}
}

// CheckRules evaluates the template's Rules as CloudFormation does before
// it creates or changes anything, with params overriding the parameter
// defaults, as `sam deploy --parameter-overrides` would. The error names
// every failing rule with its AssertDescription. It understands the rule
// functions over string parameters: Ref, Fn::Equals, Fn::Not, Fn::And,
// Fn::Or and Fn::Contains; any other is an error.
func (t *Template) CheckRules(params map[string]string) error {
	values := map[string]string{}
	for name := range t.raw.Parameters {
		values[name], _ = t.ParameterDefault(name)
	}
	for k, v := range params {
		if _, ok := values[k]; !ok {
			return fmt.Errorf("template %s has no parameter %s", t.path, k)
		}
		values[k] = v
	}
	names := make([]string, 0, len(t.raw.Rules))
	for name := range t.raw.Rules {
		names = append(names, name)
	}
	slices.Sort(names)
	var failed []error
	for _, name := range names {
		var r rule
		if err := json.Unmarshal(t.raw.Rules[name], &r); err != nil {
			return fmt.Errorf("template %s: rule %s: %w", t.path, name, err)
		}
		if len(r.RuleCondition) > 0 {
			applies, err := evalRule(r.RuleCondition, values)
			if err != nil {
				return fmt.Errorf("template %s: rule %s: RuleCondition: %w", t.path, name, err)
			}
			if applies != true {
				continue
			}
		}
		for i, a := range r.Assertions {
			ok, err := evalRule(a.Assert, values)
			if err != nil {
				return fmt.Errorf("template %s: rule %s: assertion %d: %w", t.path, name, i, err)
			}
			if ok != true {
				failed = append(failed, fmt.Errorf("rule %s: %s", name, a.AssertDescription))
			}
		}
	}
	return errors.Join(failed...)
}

// evalRule evaluates a rule-function expression to a string, a bool or a
// list of strings.
func evalRule(raw json.RawMessage, params map[string]string) (any, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		var out []string
		for _, e := range list {
			v, err := evalRule(e, params)
			if err != nil {
				return nil, err
			}
			str, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("list element %s is not a string", e)
			}
			out = append(out, str)
		}
		return out, nil
	}
	var fn map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fn); err != nil || len(fn) != 1 {
		return nil, fmt.Errorf("cannot evaluate %s", raw)
	}
	var name string
	var arg json.RawMessage
	for k, v := range fn {
		name, arg = k, v
	}
	if name == "Ref" {
		var p string
		if err := json.Unmarshal(arg, &p); err != nil {
			return nil, fmt.Errorf("a Ref to %s: %w", arg, err)
		}
		v, ok := params[p]
		if !ok {
			return nil, fmt.Errorf("a Ref to %s: no such parameter", p)
		}
		return v, nil
	}
	var args []json.RawMessage
	if err := json.Unmarshal(arg, &args); err != nil {
		return nil, fmt.Errorf("%s: arguments %s: %w", name, arg, err)
	}
	vals := make([]any, len(args))
	for i, a := range args {
		v, err := evalRule(a, params)
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	switch name {
	case "Fn::Equals":
		if len(vals) != 2 {
			return nil, fmt.Errorf("Fn::Equals takes 2 arguments, got %d", len(vals))
		}
		return fmt.Sprint(vals[0]) == fmt.Sprint(vals[1]), nil
	case "Fn::Not":
		if len(vals) != 1 {
			return nil, fmt.Errorf("Fn::Not takes 1 argument, got %d", len(vals))
		}
		b, ok := vals[0].(bool)
		if !ok {
			return nil, fmt.Errorf("Fn::Not of %v, not a condition", vals[0])
		}
		return !b, nil
	case "Fn::And", "Fn::Or":
		if len(vals) < 2 || len(vals) > 10 {
			return nil, fmt.Errorf("%s takes 2 to 10 conditions, got %d", name, len(vals))
		}
		and := name == "Fn::And"
		for _, v := range vals {
			b, ok := v.(bool)
			if !ok {
				return nil, fmt.Errorf("%s of %v, not a condition", name, v)
			}
			if b != and {
				return !and, nil
			}
		}
		return and, nil
	case "Fn::Contains":
		if len(vals) != 2 {
			return nil, fmt.Errorf("Fn::Contains takes 2 arguments, got %d", len(vals))
		}
		list, ok := vals[0].([]string)
		if !ok {
			return nil, fmt.Errorf("Fn::Contains of %v, not a list of strings", vals[0])
		}
		return slices.Contains(list, fmt.Sprint(vals[1])), nil
	default:
		return nil, fmt.Errorf("rule function %s is not supported offline", name)
	}
}
