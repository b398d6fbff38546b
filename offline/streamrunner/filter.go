package streamrunner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// Pattern is one Lambda event filter: a JSON object whose leaves are arrays
// of matchers, applied to the JSON form of an event record (field names as
// Lambda delivers them: eventName, userIdentity.type,
// dynamodb.Keys.sk.S, ...).
//
// Supported matchers: exact strings, numbers, booleans and null;
// {"prefix": s}, {"suffix": s}, {"equals-ignore-case": s};
// {"exists": true|false}; {"anything-but": value, [values] or
// {"prefix": s}}; {"numeric": [op, n, (op, n)]} with =, <, <=, >, >=.
type Pattern struct {
	root map[string]any
}

// ParsePattern parses and validates a filter pattern (the JSON string of
// FilterCriteria.Filters[].Pattern).
func ParsePattern(s string) (Pattern, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var root map[string]any
	if err := d.Decode(&root); err != nil {
		return Pattern{}, fmt.Errorf("parse filter pattern: %w", err)
	}
	if err := validate(root, ""); err != nil {
		return Pattern{}, fmt.Errorf("parse filter pattern %s: %w", s, err)
	}
	return Pattern{root: root}, nil
}

func validate(node map[string]any, path string) error {
	if len(node) == 0 {
		return fmt.Errorf("%s: empty object", orRoot(path))
	}
	for k, v := range node {
		p := strings.TrimPrefix(path+"."+k, ".")
		switch v := v.(type) {
		case map[string]any:
			if err := validate(v, p); err != nil {
				return err
			}
		case []any:
			if len(v) == 0 {
				return fmt.Errorf("%s: empty matcher list", p)
			}
			for _, m := range v {
				if err := validateMatcher(m); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
			}
		default:
			return fmt.Errorf("%s: want an object or an array of matchers, got %v", p, v)
		}
	}
	return nil
}

func orRoot(p string) string {
	if p == "" {
		return "pattern"
	}
	return p
}

func validateMatcher(m any) error {
	obj, ok := m.(map[string]any)
	if !ok {
		return nil // a literal
	}
	if len(obj) != 1 {
		return fmt.Errorf("matcher %v: want exactly one operator", obj)
	}
	for op, arg := range obj {
		switch op {
		case "prefix", "suffix", "equals-ignore-case":
			if _, ok := arg.(string); !ok {
				return fmt.Errorf("%s wants a string", op)
			}
		case "exists":
			if _, ok := arg.(bool); !ok {
				return fmt.Errorf("exists wants true or false")
			}
		case "anything-but":
			if sub, ok := arg.(map[string]any); ok {
				if p, ok := sub["prefix"].(string); !ok || len(sub) != 1 || p == "" {
					return fmt.Errorf("anything-but wants a value, a list of values or {\"prefix\": s}")
				}
			}
		case "numeric":
			if _, err := numericRange(arg); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unsupported operator %q", op)
		}
	}
	return nil
}

// Match reports whether the event (decoded JSON, numbers as json.Number)
// matches the pattern.
func (p Pattern) Match(event map[string]any) bool {
	return matchObject(p.root, event, true)
}

func matchObject(pattern map[string]any, event map[string]any, present bool) bool {
	for k, pv := range pattern {
		var ev any
		ok := false
		if present && event != nil {
			ev, ok = event[k]
		}
		switch pv := pv.(type) {
		case map[string]any:
			sub, isObj := ev.(map[string]any)
			if !matchObject(pv, sub, ok && isObj) {
				return false
			}
		case []any:
			if !matchLeaf(pv, ev, ok) {
				return false
			}
		}
	}
	return true
}

func matchLeaf(matchers []any, v any, present bool) bool {
	values := []any{v}
	if arr, ok := v.([]any); ok && present {
		values = arr
	}
	for _, m := range matchers {
		if obj, ok := m.(map[string]any); ok {
			if e, ok := obj["exists"].(bool); ok {
				if e == present {
					return true
				}
				continue
			}
		}
		if !present {
			continue
		}
		for _, val := range values {
			if matchOne(m, val) {
				return true
			}
		}
	}
	return false
}

func matchOne(m, v any) bool {
	obj, ok := m.(map[string]any)
	if !ok {
		return equalLiteral(m, v)
	}
	for op, arg := range obj {
		switch op {
		case "prefix":
			s, ok := v.(string)
			return ok && strings.HasPrefix(s, arg.(string))
		case "suffix":
			s, ok := v.(string)
			return ok && strings.HasSuffix(s, arg.(string))
		case "equals-ignore-case":
			s, ok := v.(string)
			return ok && strings.EqualFold(s, arg.(string))
		case "anything-but":
			switch a := arg.(type) {
			case []any:
				for _, x := range a {
					if equalLiteral(x, v) {
						return false
					}
				}
				return true
			case map[string]any:
				s, ok := v.(string)
				return !ok || !strings.HasPrefix(s, a["prefix"].(string))
			default:
				return !equalLiteral(a, v)
			}
		case "numeric":
			n, ok := v.(json.Number)
			if !ok {
				return false
			}
			f, err := n.Float64()
			if err != nil {
				return false
			}
			r, _ := numericRange(arg)
			return r(f)
		}
	}
	return false
}

func equalLiteral(a, b any) bool {
	switch a := a.(type) {
	case json.Number:
		bn, ok := b.(json.Number)
		if !ok {
			return false
		}
		x, err1 := a.Float64()
		y, err2 := bn.Float64()
		return err1 == nil && err2 == nil && x == y
	case nil:
		return b == nil
	case string, bool:
		return a == b
	}
	return false
}

// numericRange compiles ["op", n, ...] into a predicate.
func numericRange(arg any) (func(float64) bool, error) {
	list, ok := arg.([]any)
	if !ok || len(list) == 0 || len(list)%2 != 0 || len(list) > 4 {
		return nil, fmt.Errorf("numeric wants [op, n] or [op, n, op, n]")
	}
	var preds []func(float64) bool
	for i := 0; i < len(list); i += 2 {
		op, ok := list[i].(string)
		num, ok2 := list[i+1].(json.Number)
		if !ok || !ok2 {
			return nil, fmt.Errorf("numeric wants [op, n] or [op, n, op, n]")
		}
		n, err := num.Float64()
		if err != nil || math.IsInf(n, 0) {
			return nil, fmt.Errorf("numeric: %v is not a number", num)
		}
		switch op {
		case "=":
			preds = append(preds, func(f float64) bool { return f == n })
		case "<":
			preds = append(preds, func(f float64) bool { return f < n })
		case "<=":
			preds = append(preds, func(f float64) bool { return f <= n })
		case ">":
			preds = append(preds, func(f float64) bool { return f > n })
		case ">=":
			preds = append(preds, func(f float64) bool { return f >= n })
		default:
			return nil, fmt.Errorf("numeric: unknown operator %q", op)
		}
	}
	return func(f float64) bool {
		for _, p := range preds {
			if !p(f) {
				return false
			}
		}
		return true
	}, nil
}

// Filters is a mapping's FilterCriteria: a record passes when it matches
// any pattern; no patterns pass everything.
type Filters []Pattern

// Match reports whether rec passes the filters, comparing against its JSON
// form as Lambda would deliver it.
func (fs Filters) Match(rec events.DynamoDBEventRecord) (bool, error) {
	if len(fs) == 0 {
		return true, nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return false, fmt.Errorf("filter record %s: %w", rec.Change.SequenceNumber, err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return false, fmt.Errorf("filter record %s: %w", rec.Change.SequenceNumber, err)
	}
	for _, p := range fs {
		if p.Match(m) {
			return true, nil
		}
	}
	return false, nil
}

// compareSequence orders DynamoDB stream sequence numbers (decimal strings
// of varying length).
func compareSequence(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}
