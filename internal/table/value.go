package table

import (
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// S is a string attribute value.
func S(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

// T is a time attribute value, formatted with FormatTime.
func T(t time.Time) types.AttributeValue { return S(FormatTime(t)) }

// N is a number attribute value.
func N(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// B is a binary attribute value.
func B(b []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: b} }

// L is a list of strings attribute value.
func L(ss []string) types.AttributeValue {
	l := make([]types.AttributeValue, len(ss))
	for i, s := range ss {
		l[i] = S(s)
	}
	return &types.AttributeValueMemberL{Value: l}
}

// Reader reads typed attributes out of an item, remembering the first
// malformed one: read every attribute, then check Err once.
type Reader struct {
	item map[string]types.AttributeValue
	err  error
}

// NewReader returns a Reader of item (nil reads as an empty item).
func NewReader(item map[string]types.AttributeValue) *Reader { return &Reader{item: item} }

// Err is the first attribute that was not of the type read, or nil.
func (r *Reader) Err() error { return r.err }

// Has reports whether the item has attribute name.
func (r *Reader) Has(name string) bool {
	_, ok := r.item[name]
	return ok
}

func (r *Reader) fail(name, want string) {
	if r.err == nil {
		r.err = fmt.Errorf("attribute %s is not %s", name, want)
	}
}

// attr returns attribute name as the attribute value type T: absent is
// (zero, false); another type is recorded as a failure (want says what it
// should have been).
func attr[V types.AttributeValue](r *Reader, name, want string) (V, bool) {
	var zero V
	av, ok := r.item[name]
	if !ok {
		return zero, false
	}
	v, ok := av.(V)
	if !ok {
		r.fail(name, want)
		return zero, false
	}
	return v, true
}

// S reads a string attribute; absent is "".
func (r *Reader) S(name string) string {
	v, ok := attr[*types.AttributeValueMemberS](r, name, "a string")
	if !ok {
		return ""
	}
	return v.Value
}

// N reads an integer attribute; absent is 0.
func (r *Reader) N(name string) int64 {
	v, ok := attr[*types.AttributeValueMemberN](r, name, "a number")
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		r.fail(name, "an integer")
	}
	return n
}

// B reads a binary attribute; absent is nil.
func (r *Reader) B(name string) []byte {
	v, ok := attr[*types.AttributeValueMemberB](r, name, "binary")
	if !ok {
		return nil
	}
	return v.Value
}

// T reads a time attribute written by FormatTime; absent is the zero time.
func (r *Reader) T(name string) time.Time {
	s := r.S(name)
	if s == "" {
		return time.Time{}
	}
	t, err := ParseTime(s)
	if err != nil {
		r.fail(name, "an RFC 3339 UTC time")
	}
	return t
}

// L reads a list of strings; absent is nil.
func (r *Reader) L(name string) []string {
	v, ok := attr[*types.AttributeValueMemberL](r, name, "a list")
	if !ok {
		return nil
	}
	var out []string
	for _, e := range v.Value {
		s, ok := e.(*types.AttributeValueMemberS)
		if !ok {
			r.fail(name, "a list of strings")
			return nil
		}
		out = append(out, s.Value)
	}
	return out
}

// Domain returns the name in the item's DOMAIN#<name> partition key.
func (r *Reader) Domain() string {
	name, ok := DomainOfPK(r.S(AttrPK))
	if !ok {
		r.fail(AttrPK, "a DOMAIN# key")
	}
	return name
}
