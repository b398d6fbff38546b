package domain

import "fmt"

// Codes identify why a name was rejected. They are stable: the API returns
// them to clients, the state machine stores them, and tests match on them.
const (
	CodeEmpty              = "empty"
	CodeTooLong            = "too_long"
	CodeLabelTooLong       = "label_too_long"
	CodeEmptyLabel         = "empty_label"
	CodeInvalidCharacter   = "invalid_character"
	CodeInvisibleCharacter = "invisible_character" // zero-width, joiner, bidi control, variation selector...: refused, never dropped
	CodeInvalidHyphen      = "invalid_hyphen"
	CodeInvalidIDN         = "invalid_idn"
	CodeMixedScript        = "mixed_script" // a label mixing scripts, as "exаmple" with a Cyrillic "а"
	CodeIPLiteral          = "ip_literal"
	CodeSingleLabel        = "single_label"
	CodeReserved           = "reserved" // also .test and .example, unless the Policy allows them
	CodePublicSuffix       = "public_suffix"
	CodeInvalidWildcard    = "invalid_wildcard"
	CodeTooManyNames       = "too_many_names"
)

// Error reports a name that cannot enter the system. Code is one of the Code
// constants, Name is the name as it was given (truncated when it is overlong)
// and Message explains the problem to a person, quoting the name with %q so
// that control characters and bidi overrides are escaped (with %+q when it
// holds an invisible character that %q would print as it is).
type Error struct {
	Code    string
	Name    string
	Message string
}

// Error returns the human-readable message.
func (e *Error) Error() string { return e.Message }

// maxQuoted bounds how much of an overlong input an Error carries, so that a
// megabyte of junk is not echoed back through logs and API responses.
const maxQuoted = 64

func newError(code, name, format string, args ...any) *Error {
	return &Error{Code: code, Name: name, Message: fmt.Sprintf(format, args...)}
}

// truncate cuts s to at most maxQuoted bytes without splitting a UTF-8
// sequence.
func truncate(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	i := maxQuoted
	for i > 0 && s[i]&0xC0 == 0x80 { // continuation byte
		i--
	}
	return s[:i]
}
