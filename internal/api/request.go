package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/certflow/certflow/internal/httpapi"
)

// createRequest is the body of POST /certificates.
type createRequest struct {
	Domain string
	SANs   []string
	// Tenant is the tenant an operator acts for; HasTenant says it was
	// given.
	Tenant         string
	HasTenant      bool
	ProveOwnership bool
	Unpaused       bool
	// Validation is how the domain proves control ("" = HTTP-01),
	// Profile the ACME profile to order ("" = the deployment's default).
	Validation string
	Profile    string
}

// createFields are the members of the body of POST /certificates.
const createFields = "domain, sans, validation, profile, tenant, proveOwnership and unpaused"

// decodeCreate reads the body of POST /certificates strictly: application/json
// (or no content type), at most MaxBodyBytes after base64 decoding, valid
// UTF-8, exactly one JSON object whose members are "domain" (a string,
// required), "sans" (an array of strings), "validation", "profile" and
// "tenant" (strings),
// "proveOwnership" and "unpaused" (booleans), each at most once, with exact
// (case-sensitive) names. Any other input is an *Error naming the problem.
func decodeCreate(req events.APIGatewayV2HTTPRequest) (createRequest, *Error) {
	if ct := httpapi.Header(req.Headers, "content-type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return createRequest{}, &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
				Message: "the body must be application/json"}
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return createRequest{}, &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
				Message: "the body must be UTF-8 encoded JSON"}
		}
	}
	body, apiErr := readBody(req)
	if apiErr != nil {
		return createRequest{}, apiErr
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return createRequest{}, badRequest(CodeInvalidJSON, `the body is empty; want {"domain": "...", "sans": [...]}`)
	}
	if !utf8.Valid(body) {
		return createRequest{}, badRequest(CodeInvalidJSON, "the body is not valid UTF-8")
	}

	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return createRequest{}, syntaxError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return createRequest{}, badRequest(CodeInvalidJSON, "the body must be a JSON object")
	}
	var out createRequest
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return createRequest{}, syntaxError(err)
		}
		name, _ := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return createRequest{}, syntaxError(err)
		}
		switch name {
		case "domain", "sans", "validation", "profile", "tenant", "proveOwnership", "unpaused":
		default:
			return createRequest{}, badRequest(CodeUnknownField, fmt.Sprintf("unknown field %q; the fields are %s", truncate(name), createFields))
		}
		if seen[name] {
			return createRequest{}, badRequest(CodeDuplicateField, fmt.Sprintf("field %q is given more than once", name))
		}
		seen[name] = true
		switch name {
		case "domain":
			s, ok := jsonString(raw)
			if !ok {
				return createRequest{}, badRequest(CodeInvalidType, "domain must be a string")
			}
			out.Domain = s
		case "sans":
			sans, ok := jsonStrings(raw)
			if !ok {
				return createRequest{}, badRequest(CodeInvalidType, "sans must be an array of strings")
			}
			out.SANs = sans
		case "validation", "profile":
			s, ok := jsonString(raw)
			if !ok {
				return createRequest{}, badRequest(CodeInvalidType, name+" must be a string")
			}
			if name == "validation" {
				out.Validation = s
			} else {
				out.Profile = s
			}
		case "tenant":
			s, ok := jsonString(raw)
			if !ok {
				return createRequest{}, badRequest(CodeInvalidType, "tenant must be a string")
			}
			out.Tenant, out.HasTenant = s, true
		case "proveOwnership", "unpaused":
			var b bool
			if string(raw) != "true" && string(raw) != "false" || json.Unmarshal(raw, &b) != nil {
				return createRequest{}, badRequest(CodeInvalidType, name+" must be true or false")
			}
			if name == "unpaused" {
				out.Unpaused = b
			} else {
				out.ProveOwnership = b
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return createRequest{}, syntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return createRequest{}, badRequest(CodeInvalidJSON, "the body holds data after the JSON object")
	}
	if !seen["domain"] {
		return createRequest{}, badRequest(CodeMissingField, "domain is required")
	}
	return out, nil
}

// readBody returns the request body, base64-decoded when API Gateway
// encoded it, or 413 when it is larger than MaxBodyBytes.
func readBody(req events.APIGatewayV2HTTPRequest) ([]byte, *Error) {
	tooLarge := &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge,
		Message: fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes)}
	if !req.IsBase64Encoded {
		if len(req.Body) > MaxBodyBytes {
			return nil, tooLarge
		}
		return []byte(req.Body), nil
	}
	if len(req.Body) > base64.StdEncoding.EncodedLen(MaxBodyBytes) {
		return nil, tooLarge
	}
	b, err := base64.StdEncoding.DecodeString(req.Body)
	if err != nil {
		return nil, badRequest(CodeInvalidJSON, "the body is marked base64-encoded but is not valid base64")
	}
	if len(b) > MaxBodyBytes {
		return nil, tooLarge
	}
	return b, nil
}

func syntaxError(err error) *Error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return badRequest(CodeInvalidJSON, fmt.Sprintf("the body is not valid JSON at byte %d: %s", se.Offset, se.Error()))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest(CodeInvalidJSON, "the body ends in the middle of a JSON value")
	}
	return badRequest(CodeInvalidJSON, "the body is not valid JSON")
}

// jsonString decodes raw when it is a JSON string (not null).
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// jsonStrings decodes raw when it is a JSON array of strings (not null, no
// null elements).
func jsonStrings(raw json.RawMessage) ([]string, bool) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, false
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, false
	}
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		s, ok := jsonString(e)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}
