package table

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Expr builds update and condition expressions with placeholders for every
// attribute name (status is a reserved word, and so may others become) and
// value.
type Expr struct {
	names  map[string]string
	values map[string]types.AttributeValue
	set    []string
	remove []string
	add    []string
	conds  []string
}

// NewExpr returns an empty expression.
func NewExpr() *Expr {
	return &Expr{names: map[string]string{}, values: map[string]types.AttributeValue{}}
}

// Name returns the placeholder of attribute name.
func (e *Expr) Name(name string) string {
	p := "#" + name
	e.names[p] = name
	return p
}

// Value returns a placeholder for value.
func (e *Expr) Value(value types.AttributeValue) string {
	p := fmt.Sprintf(":v%d", len(e.values))
	e.values[p] = value
	return p
}

// Set adds "SET name = value".
func (e *Expr) Set(name string, value types.AttributeValue) {
	e.set = append(e.set, e.Name(name)+" = "+e.Value(value))
}

// SetRaw adds a SET clause written with Name and Value.
func (e *Expr) SetRaw(clause string) { e.set = append(e.set, clause) }

// Remove adds "REMOVE names".
func (e *Expr) Remove(names ...string) {
	for _, name := range names {
		e.remove = append(e.remove, e.Name(name))
	}
}

// Add adds "ADD name value".
func (e *Expr) Add(name string, value types.AttributeValue) {
	e.add = append(e.add, e.Name(name)+" "+e.Value(value))
}

// If adds a condition; all conditions are joined with AND.
func (e *Expr) If(format string, args ...any) {
	e.conds = append(e.conds, "("+fmt.Sprintf(format, args...)+")")
}

// Update returns the update expression.
func (e *Expr) Update() *string {
	var b strings.Builder
	for _, part := range []struct {
		verb, sep string
		clauses   []string
	}{{"SET ", ", ", e.set}, {"REMOVE ", ", ", e.remove}, {"ADD ", ", ", e.add}} {
		if len(part.clauses) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(part.verb)
		b.WriteString(strings.Join(part.clauses, part.sep))
	}
	if b.Len() == 0 {
		return nil
	}
	return aws.String(b.String())
}

// Condition returns the condition expression, nil when there is none.
func (e *Expr) Condition() *string {
	if len(e.conds) == 0 {
		return nil
	}
	return aws.String(strings.Join(e.conds, " AND "))
}

// Names returns the attribute name placeholders, nil when there are none.
func (e *Expr) Names() map[string]string {
	if len(e.names) == 0 {
		return nil
	}
	return e.names
}

// Values returns the value placeholders, nil when there are none.
func (e *Expr) Values() map[string]types.AttributeValue {
	if len(e.values) == 0 {
		return nil
	}
	return e.values
}

// Clone returns a copy of e that can be extended without changing e.
func (e *Expr) Clone() *Expr {
	c := NewExpr()
	for k, v := range e.names {
		c.names[k] = v
	}
	for k, v := range e.values {
		c.values[k] = v
	}
	c.set = append([]string(nil), e.set...)
	c.remove = append([]string(nil), e.remove...)
	c.add = append([]string(nil), e.add...)
	c.conds = append([]string(nil), e.conds...)
	return c
}
