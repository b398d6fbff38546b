package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/certflow/certflow/internal/domain"
)

// Codes of error answers. They are stable: clients switch on them.
const (
	CodeInvalidJSON           = "invalid_json"           // 400: not one well-formed UTF-8 JSON object
	CodeUnknownField          = "unknown_field"          // 400: a member the request does not define
	CodeDuplicateField        = "duplicate_field"        // 400: a member given twice
	CodeInvalidType           = "invalid_type"           // 400: a member of the wrong JSON type (null included)
	CodeMissingField          = "missing_field"          // 400: "domain" is absent
	CodeInvalidDomain         = "invalid_domain"         // 400: "reason" holds the domain package's code
	CodeInvalidStatus         = "invalid_status"         // 400
	CodeInvalidLimit          = "invalid_limit"          // 400
	CodeInvalidCursor         = "invalid_cursor"         // 400
	CodeInvalidRevoke         = "invalid_revoke"         // 400
	CodeInvalidQuery          = "invalid_query"          // 400: malformed, unknown or repeated query parameter
	CodeBodyTooLarge          = "body_too_large"         // 413
	CodeUnsupportedMediaType  = "unsupported_media_type" // 415
	CodeNotFound              = "not_found"              // 404
	CodeMethodNotAllowed      = "method_not_allowed"     // 405
	CodeRevokeUnavailable     = "revoke_unavailable"     // 501: no Revoker configured
	CodeRevokeFailed          = "revoke_failed"          // 502: retired, but the CA did not revoke
	CodeSANConflict           = "san_conflict"           // 409: a name is another live domain's primary name or SAN
	CodeDomainTaken           = "domain_taken"           // 409: another tenant holds the domain
	CodeWildcardConflict      = "wildcard_conflict"      // 409: a wildcard covers a name another tenant holds
	CodeAccountPaused         = "account_paused"         // 409: the CA paused the domain; request it again with "unpaused": true once lifted
	CodeRequestCooldown       = "request_cooldown"       // 429: the domain started an issuance too recently (Retry-After)
	CodeForbidden             = "forbidden"              // 403: the request carries no IAM identity
	CodeTenantNotAllowed      = "tenant_not_allowed"     // 403: the caller may not act for the tenant it names
	CodeInvalidTenant         = "invalid_tenant"         // 400
	CodeInvalidValidation     = "invalid_validation"     // 400: "validation" is not http-01, dns-01 or dns-persist-01
	CodeInvalidProfile        = "invalid_profile"        // 400: "profile" is not one the deployment offers
	CodeWildcardNeedsDNS      = "wildcard_needs_dns"     // 422: a wildcard name validated by HTTP-01, which cannot prove it
	CodeValidationNotOffered  = "validation_not_offered" // 422: the deployment is not set up for the method asked for
	CodeValidationUnavailable = "validation_unavailable" // 503: the CA could not be asked for the DNS-PERSIST-01 record (Retry-After)
	CodeInternal              = "internal"               // 500
)

// Error is an error answer of the API.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Reason and Name detail an invalid_domain answer: the domain
	// package's code and the offending name (truncated).
	Reason string `json:"reason,omitempty"`
	Name   string `json:"name,omitempty"`
	// allow is the Allow header of a 405.
	allow string
	// retryAfter is the Retry-After of a 429, rounded up to seconds.
	retryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// errorDocument is the body of every error answer.
type errorDocument struct {
	Error *Error `json:"error"`
}

func errorResponse(e *Error) events.APIGatewayV2HTTPResponse {
	resp := jsonResponse(e.Status, errorDocument{Error: e})
	if e.allow != "" {
		resp.Headers["allow"] = e.allow
	}
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		resp.Headers["retry-after"] = strconv.FormatInt(int64(max(time.Second, e.retryAfter+time.Second-1)/time.Second), 10)
	}
	return resp
}

func badRequest(code, message string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: message}
}

func notFound(name string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf("no certificate for %q", name)}
}

func methodNotAllowed(allow string) *Error {
	return &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed,
		Message: "method not allowed; this resource allows " + allow, allow: allow}
}

// domainError turns a domain.Normalize failure into an invalid_domain
// answer.
func domainError(err error) *Error {
	var de *domain.Error
	if errors.As(err, &de) {
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidDomain, Reason: de.Code, Name: truncate(de.Name), Message: de.Message}
	}
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidDomain, Message: "invalid domain name"}
}

// maxEcho bounds how much client input an error message quotes.
const maxEcho = 64

// truncate cuts s to at most maxEcho bytes without splitting a UTF-8
// sequence.
func truncate(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	i := maxEcho
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i]
}
