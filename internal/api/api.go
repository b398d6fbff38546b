// Package api is the certificates API that the platform calls to request,
// inspect, list and retire certificates. It handles API Gateway HTTP API
// events (payload format 2.0) with JSON in and out.
//
// Routes and answers:
//
//	POST   /certificates              202 a new issuance was started (Location names the document)
//	                                  200 nothing new: the domain is already pending, active or failed
//	                                  409 another tenant holds the domain, a SAN, or a name a wildcard covers;
//	                                      the CA paused the domain (say "unpaused": true once it is lifted)
//	                                  429 the domain started an issuance too recently (Retry-After)
//	GET    /certificates/{domain}     200 status document, 404 unknown or another tenant's
//	GET    /certificates?status=&limit=&cursor=
//	                                  200 {"certificates": [...], "nextCursor": "..."}, the tenant's only
//	DELETE /certificates/{domain}[?revoke=true|false]
//	                                  200 the retired document, 404 unknown or another tenant's
//
// Tenancy: every domain belongs to a tenant, and every request acts for
// one: the caller's IAM principal (package principal: the role of a role
// session), or, for a caller among Config.Operators, the tenant it names
// ("tenant" in the body, ?tenant= in the query). Another tenant's domain is
// answered as unknown. A request without an IAM identity is refused (403).
//
// The body of POST is {"domain", "sans", "tenant", "proveOwnership",
// "unpaused"}: proveOwnership asks for the ownership proof
// (validation.Ownership; the document's "ownership" lists the TXT records
// to publish),
// unpaused says the CA's pause of the domain was lifted.
//
// Errors are {"error": {"code", "message"}} with a stable code; see the Code
// constants. An invalid name answers 400 with code invalid_domain, the
// domain package's code as "reason" and the offending name as "name", so
// the set of top-level codes stays closed while the reasons can grow. Every
// request is validated completely before anything is written, so a 4xx
// never changes the table. A 5xx never carries internal error text: the
// cause is logged once and the answer says "internal error".
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/execution"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/httpapi"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/notify"
	"github.com/certflow/certflow/internal/principal"
	"github.com/certflow/certflow/internal/reconcile"
)

// Requester records that a tenant wants a certificate for a domain.
// Request creates a pending item for a new domain, or a new generation for a
// quarantined or retired one, naming the execution that owns it, and then
// reports started=true: the caller must start that execution. For a
// pending, active or failed domain of the tenant it changes nothing and
// reports started=false. It returns the resulting item. Refusals change
// nothing: a name another tenant or domain holds is a
// *certstore.NameTakenError, a wildcard over another tenant's name a
// *certstore.WildcardConflictError, a domain the CA paused
// certstore.ErrPaused, one requested too recently a *certstore.CooldownError.
type Requester interface {
	Request(ctx context.Context, in certstore.RequestInput) (*certstore.Certificate, bool, error)
}

// Reconciler starts the execution an item names, and makes sure one works
// on a domain requested again while pending or failed: if its execution is
// gone or ended without an outcome, the next run is started.
// *reconcile.Reconciler implements it.
type Reconciler interface {
	Start(ctx context.Context, c *certstore.Certificate, by string) error
	Reconcile(ctx context.Context, c *certstore.Certificate, by string) (reconcile.Outcome, error)
}

// Publisher tells the platform that a domain was retired.
// *notify.Publisher implements it.
type Publisher interface {
	Publish(ctx context.Context, ev notify.Event) error
}

// Getter reads the certificate item of a domain; it returns an error
// wrapping certstore.ErrNotFound when there is none.
type Getter interface {
	Get(ctx context.Context, domain string) (*certstore.Certificate, error)
}

// Lister pages through a tenant's certificate items with a status. An
// empty next cursor means the last page. A cursor it did not issue for the
// tenant and status yields an error wrapping certstore.ErrBadCursor.
type Lister interface {
	List(ctx context.Context, tenant string, status certstore.Status, limit int, cursor string) ([]certstore.Certificate, string, error)
}

// Retirer retires a tenant's domain: it marks the item retired and removes
// its timer, key material and aliases. It returns the item as it was
// before, or an error wrapping certstore.ErrNotFound (also when another
// tenant holds it).
type Retirer interface {
	Retire(ctx context.Context, tenant, domain string) (*certstore.Certificate, error)
}

// Stopper stops executions. *sfn.Client implements it.
type Stopper interface {
	StopExecution(ctx context.Context, in *sfn.StopExecutionInput, optFns ...func(*sfn.Options)) (*sfn.StopExecutionOutput, error)
}

// Revoker revokes a certificate at the CA.
type Revoker interface {
	Revoke(ctx context.Context, certPEM []byte) error
}

// Config holds the dependencies of a Handler. One certstore.Store usually
// serves as Requester, Getter, Lister and Retirer.
type Config struct {
	Requester  Requester
	Reconciler Reconciler
	Getter     Getter
	Lister     Lister
	Retirer    Retirer
	Stopper    Stopper
	// StateMachineARN is the issuance state machine's, from which the ARN
	// of an execution to stop is derived.
	StateMachineARN string
	// Publisher, when set, publishes Domain Retired.
	Publisher Publisher
	// Revoker is optional; without it DELETE ?revoke=true answers 501
	// before anything is changed.
	Revoker Revoker
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Names decides which domain names requests may use; the zero value
	// refuses names under .test and .example.
	Names domain.Policy
	// Operators may act for any tenant by naming it; everyone else acts
	// for itself. The zero value lets no one.
	Operators principal.List
	// Validation is how domains may prove control besides HTTP-01, and
	// the profiles a request may name.
	Validation Validation
}

// Handler answers certificates API requests. It is safe for concurrent use.
type Handler struct {
	cfg Config
	now func() time.Time
}

// New returns a Handler. It reports which required dependency is missing.
func New(cfg Config) (*Handler, error) {
	missing := []string{}
	if cfg.Requester == nil {
		missing = append(missing, "Requester")
	}
	if cfg.Reconciler == nil {
		missing = append(missing, "Reconciler")
	}
	if cfg.Getter == nil {
		missing = append(missing, "Getter")
	}
	if cfg.Lister == nil {
		missing = append(missing, "Lister")
	}
	if cfg.Retirer == nil {
		missing = append(missing, "Retirer")
	}
	if cfg.Stopper == nil {
		missing = append(missing, "Stopper")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("api: missing dependencies: %s", strings.Join(missing, ", "))
	}
	h := &Handler{cfg: cfg, now: cfg.Now}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// Route keys of the API, as configured on the HTTP API.
const (
	RouteCreate = "POST /certificates"
	RouteList   = "GET /certificates"
	RouteGet    = "GET /certificates/{domain}"
	RouteDelete = "DELETE /certificates/{domain}"
)

// MaxBodyBytes is the largest request body accepted (after base64
// decoding); larger bodies answer 413.
const MaxBodyBytes = 16 << 10

// List page sizes.
const (
	DefaultLimit = 50
	MaxLimit     = 100
)

// maxCursorBytes bounds the cursors passed on to the Lister.
const maxCursorBytes = 2048

// Handle answers one request. It never returns an error: failures are
// answered with an error document, so that API Gateway does not replace
// them with its own.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	route, param, err := resolve(req)
	if err != nil {
		return errorResponse(err), nil
	}
	caller, perr := principal.FromRequest(req)
	if perr != nil {
		return errorResponse(&Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: "the request carries no IAM identity"}), nil
	}
	var resp events.APIGatewayV2HTTPResponse
	switch route {
	case RouteCreate:
		resp = h.create(ctx, req, caller)
	case RouteList:
		resp = h.list(ctx, req, caller)
	case RouteGet:
		resp = h.get(ctx, req, caller, param)
	case RouteDelete:
		resp = h.retire(ctx, req, caller, param)
	}
	return resp, nil
}

// resolve finds the route of req: its RouteKey when it is one of ours,
// otherwise the method and raw path, so that a $default or catch-all route
// and plain local requests work too. param is the raw {domain} segment.
func resolve(req events.APIGatewayV2HTTPRequest) (route, param string, err *Error) {
	key := req.RouteKey
	if key == "" || key == "$default" {
		key = req.RequestContext.RouteKey
	}
	switch key {
	case RouteCreate, RouteList:
		return key, "", nil
	case RouteGet, RouteDelete:
		if p, ok := req.PathParameters["domain"]; ok {
			return key, p, nil
		}
	}
	method := req.RequestContext.HTTP.Method
	path := httpapi.Path(req)
	rest, ok := strings.CutPrefix(path, "/certificates")
	switch {
	case ok && rest == "":
		switch method {
		case http.MethodPost:
			return RouteCreate, "", nil
		case http.MethodGet:
			return RouteList, "", nil
		}
		return "", "", methodNotAllowed("GET, POST")
	case ok && strings.HasPrefix(rest, "/") && len(rest) > 1 && !strings.Contains(rest[1:], "/"):
		switch method {
		case http.MethodGet:
			return RouteGet, rest[1:], nil
		case http.MethodDelete:
			return RouteDelete, rest[1:], nil
		}
		return "", "", methodNotAllowed("DELETE, GET")
	}
	return "", "", &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such resource"}
}

func (h *Handler) create(ctx context.Context, req events.APIGatewayV2HTTPRequest, caller principal.ARN) events.APIGatewayV2HTTPResponse {
	if _, err := queryParams(req); err != nil {
		return errorResponse(err)
	}
	body, apiErr := decodeCreate(req)
	if apiErr != nil {
		return errorResponse(apiErr)
	}
	tenant, apiErr := h.tenant(caller, body.Tenant, body.HasTenant)
	if apiErr != nil {
		return errorResponse(apiErr)
	}
	primary, sans, err := h.cfg.Names.NormalizeAll(body.Domain, body.SANs)
	if err != nil {
		return errorResponse(domainError(err))
	}
	method, records, apiErr := h.validationOf(ctx, body, append([]string{primary}, sans...))
	if apiErr != nil {
		return errorResponse(apiErr)
	}

	c, started, err := h.cfg.Requester.Request(ctx, certstore.RequestInput{
		Tenant: tenant, Domain: primary, SANs: sans,
		ProveOwnership: body.ProveOwnership, Unpaused: body.Unpaused,
		Validation: method, Records: records, Profile: body.Profile, Now: h.now(),
	})
	if refused := h.requestRefused(err, primary); refused != nil {
		return errorResponse(refused)
	}
	if err != nil {
		return h.internal(ctx, req, primary, fmt.Errorf("request certificate: %w", err))
	}
	status := http.StatusOK
	switch {
	case started:
		if err := h.cfg.Reconciler.Start(ctx, c, flow.ReasonRequest); err != nil {
			// The item names the execution; a retried POST, or the
			// sweeper once the domain is due, starts it.
			return h.internal(ctx, req, primary, err)
		}
		status = http.StatusAccepted
	case c.Status == certstore.StatusPending || c.Status == certstore.StatusFailed:
		// Requested again while issuance is under way: make sure an
		// execution still works on it (its engine may have lost it, or
		// it ended without an outcome).
		out, err := h.cfg.Reconciler.Reconcile(ctx, c, flow.ReasonRequest)
		if err != nil {
			return h.internal(ctx, req, primary, err)
		}
		if out == reconcile.Started || out == reconcile.Restarted {
			status = http.StatusAccepted
			if fresh, err := h.cfg.Getter.Get(ctx, c.Domain); err == nil {
				c = fresh
			}
		}
	}
	resp := jsonResponse(status, newDocument(c))
	if status == http.StatusAccepted {
		resp.Headers["location"] = "/certificates/" + url.PathEscape(c.Domain)
	}
	return resp
}

func (h *Handler) get(ctx context.Context, req events.APIGatewayV2HTTPRequest, caller principal.ARN, param string) events.APIGatewayV2HTTPResponse {
	q, apiErr := queryParams(req, "tenant")
	if apiErr != nil {
		return errorResponse(apiErr)
	}
	tenant, apiErr := h.queryTenant(caller, q)
	if apiErr != nil {
		return errorResponse(apiErr)
	}
	name, apiErr := pathDomain(h.cfg.Names, param)
	if apiErr != nil {
		return errorResponse(apiErr)
	}
	c, err := h.cfg.Getter.Get(ctx, name)
	if errors.Is(err, certstore.ErrNotFound) || (err == nil && c.Tenant != tenant) {
		return errorResponse(notFound(name))
	}
	if err != nil {
		return h.internal(ctx, req, name, fmt.Errorf("get certificate: %w", err))
	}
	return jsonResponse(http.StatusOK, newDocument(c))
}

// listPage is the answer to GET /certificates.
type listPage struct {
	Certificates []document `json:"certificates"`
	NextCursor   string     `json:"nextCursor,omitempty"`
}

func (h *Handler) list(ctx context.Context, req events.APIGatewayV2HTTPRequest, caller principal.ARN) events.APIGatewayV2HTTPResponse {
	q, apiErr := queryParams(req, "status", "limit", "cursor", "tenant")
	if apiErr != nil {
		return errorResponse(apiErr)
	}
	tenant, apiErr := h.queryTenant(caller, q)
	if apiErr != nil {
		return errorResponse(apiErr)
	}
	status := certstore.Status(q["status"])
	if status == "" {
		return errorResponse(badRequest(CodeInvalidStatus, "the status parameter is required: one of pending, active, failed, quarantined, retired"))
	}
	if !status.Valid() {
		return errorResponse(badRequest(CodeInvalidStatus, fmt.Sprintf("status %q is not one of pending, active, failed, quarantined, retired", truncate(string(status)))))
	}
	limit := DefaultLimit
	if s, ok := q["limit"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return errorResponse(badRequest(CodeInvalidLimit, fmt.Sprintf("limit %q is not an integer from 1 to %d", truncate(s), MaxLimit)))
		}
		limit = n
	}
	cursor, hasCursor := q["cursor"]
	if hasCursor && (cursor == "" || len(cursor) > maxCursorBytes) {
		return errorResponse(badRequest(CodeInvalidCursor, "the cursor is not one this API issued"))
	}
	items, next, err := h.cfg.Lister.List(ctx, tenant, status, limit, cursor)
	if errors.Is(err, certstore.ErrBadCursor) {
		return errorResponse(badRequest(CodeInvalidCursor, "the cursor is not one this API issued for this tenant and status"))
	}
	if err != nil {
		return h.internal(ctx, req, "", fmt.Errorf("list %s certificates: %w", status, err))
	}
	page := listPage{Certificates: make([]document, 0, len(items)), NextCursor: next}
	for i := range items {
		page.Certificates = append(page.Certificates, newDocument(&items[i]))
	}
	return jsonResponse(http.StatusOK, page)
}

func (h *Handler) retire(ctx context.Context, req events.APIGatewayV2HTTPRequest, caller principal.ARN, param string) events.APIGatewayV2HTTPResponse {
	q, apiErr := queryParams(req, "revoke", "tenant")
	if apiErr != nil {
		return errorResponse(apiErr)
	}
	tenant, apiErr := h.queryTenant(caller, q)
	if apiErr != nil {
		return errorResponse(apiErr)
	}
	name, apiErr := pathDomain(h.cfg.Names, param)
	if apiErr != nil {
		return errorResponse(apiErr)
	}
	revoke := false
	if s, ok := q["revoke"]; ok {
		switch s {
		case "true":
			revoke = true
		case "false":
		default:
			return errorResponse(badRequest(CodeInvalidRevoke, fmt.Sprintf("revoke %q must be true or false", truncate(s))))
		}
	}
	if revoke && h.cfg.Revoker == nil {
		return errorResponse(&Error{Status: http.StatusNotImplemented, Code: CodeRevokeUnavailable, Message: "revocation is not configured; nothing was changed"})
	}

	prev, err := h.cfg.Retirer.Retire(ctx, tenant, name)
	if errors.Is(err, certstore.ErrNotFound) {
		return errorResponse(notFound(name))
	}
	if err != nil {
		return h.internal(ctx, req, name, fmt.Errorf("retire: %w", err))
	}
	// Stopping is best effort: the store refuses every write of a retired
	// item, so an execution that keeps running cannot bring the domain
	// back; it ends at its next write.
	if prev.Execution != "" {
		h.stop(ctx, req, name, prev.Execution)
	}
	if prev.Status != certstore.StatusRetired && h.cfg.Publisher != nil {
		ev := notify.Event{Type: notify.TypeRetired, Domain: name, Serial: prev.Serial, Version: prev.Version + 1}
		if err := h.cfg.Publisher.Publish(ctx, ev); err != nil {
			logging.From(ctx).ErrorContext(ctx, "publish Domain Retired", requestAttrs(req, name, err)...)
		}
	}
	if revoke && prev.CertPEM != "" {
		if err := h.cfg.Revoker.Revoke(ctx, []byte(prev.CertPEM)); err != nil {
			logging.From(ctx).ErrorContext(ctx, "revoke certificate of retired domain", requestAttrs(req, name, fmt.Errorf("revoke serial %s: %w", prev.Serial, err))...)
			return errorResponse(&Error{Status: http.StatusBadGateway, Code: CodeRevokeFailed,
				Message: "the domain was retired but the CA did not revoke its certificate; retry the request"})
		}
	}
	retired := *prev
	retired.Status = certstore.StatusRetired
	retired.Execution = ""
	retired.UpdatedAt = h.now()
	return jsonResponse(http.StatusOK, newDocument(&retired))
}

// stop stops the execution called execName, logging (once) a failure other
// than the execution being gone.
func (h *Handler) stop(ctx context.Context, req events.APIGatewayV2HTTPRequest, name, execName string) {
	arn, err := execution.ExecutionARN(h.cfg.StateMachineARN, execName)
	if err == nil {
		_, err = h.cfg.Stopper.StopExecution(ctx, &sfn.StopExecutionInput{
			ExecutionArn: aws.String(arn),
			Error:        aws.String("certflow.Retired"),
			Cause:        aws.String("the platform retired the domain"),
		})
	}
	var gone *sfntypes.ExecutionDoesNotExist
	if err != nil && !errors.As(err, &gone) {
		logging.From(ctx).WarnContext(ctx, "stop execution of retired domain", requestAttrs(req, name, fmt.Errorf("stop execution %q: %w", execName, err))...)
	}
}

// requestRefused turns a Requester's refusal into its answer (nil for any
// other error). It says which name of the request is taken, never by whom.
func (h *Handler) requestRefused(err error, primary string) *Error {
	var (
		taken *certstore.NameTakenError
		wc    *certstore.WildcardConflictError
		cool  *certstore.CooldownError
	)
	switch {
	case errors.As(err, &taken) && taken.OtherTenant:
		return &Error{Status: http.StatusConflict, Code: CodeDomainTaken,
			Message: fmt.Sprintf("%q is held by another tenant: nothing was changed", primary)}
	case errors.As(err, &taken):
		return &Error{Status: http.StatusConflict, Code: CodeSANConflict, Message: fmt.Sprintf("%s: nothing was changed", taken.Error())}
	case errors.Is(err, certstore.ErrNameTaken):
		return &Error{Status: http.StatusConflict, Code: CodeSANConflict, Message: "a name of the request is held by another domain: nothing was changed"}
	case errors.As(err, &wc):
		return &Error{Status: http.StatusConflict, Code: CodeWildcardConflict, Message: fmt.Sprintf("%s: nothing was changed", wc.Error())}
	case errors.Is(err, certstore.ErrPaused):
		return &Error{Status: http.StatusConflict, Code: CodeAccountPaused,
			Message: `the CA paused issuance for this domain: follow the unpauseURL of its status document, then request it again with "unpaused": true`}
	case errors.As(err, &cool):
		return &Error{Status: http.StatusTooManyRequests, Code: CodeRequestCooldown,
			Message: cool.Error() + ": nothing was changed", retryAfter: cool.Until.Sub(h.now())}
	}
	return nil
}

// tenant is the tenant a request of caller acts for: the tenant it names
// when it may (explicit), else itself.
func (h *Handler) tenant(caller principal.ARN, named string, explicit bool) (string, *Error) {
	if !explicit {
		return string(caller), nil
	}
	if !h.cfg.Operators.Contains(caller) {
		return "", &Error{Status: http.StatusForbidden, Code: CodeTenantNotAllowed,
			Message: "the caller may not act for another tenant: leave tenant out to act for itself"}
	}
	if !validTenant(named) {
		return "", badRequest(CodeInvalidTenant, fmt.Sprintf("tenant %q is not 1 to %d characters of letters, digits and . _ : / @ + = -", truncate(named), maxTenant))
	}
	return named, nil
}

// queryTenant is tenant for the ?tenant= parameter of q.
func (h *Handler) queryTenant(caller principal.ARN, q map[string]string) (string, *Error) {
	named, ok := q["tenant"]
	return h.tenant(caller, named, ok)
}

// maxTenant bounds the length of a tenant an operator names.
const maxTenant = 256

// validTenant reports whether s may name a tenant: a principal ARN or an
// identifier of the platform's own.
func validTenant(s string) bool {
	if s == "" || len(s) > maxTenant {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune("._:/@+=-", c):
		default:
			return false
		}
	}
	return true
}

// pathDomain URL-decodes and normalises the {domain} path segment.
func pathDomain(policy domain.Policy, param string) (string, *Error) {
	raw, err := url.PathUnescape(param)
	if err != nil {
		return "", &Error{Status: http.StatusBadRequest, Code: CodeInvalidDomain, Reason: domain.CodeInvalidCharacter,
			Name: truncate(param), Message: fmt.Sprintf("domain %q is not validly percent-encoded", truncate(param))}
	}
	name, err := policy.Normalize(raw)
	if err != nil {
		return "", domainError(err)
	}
	return name, nil
}

// queryParams parses the query string, allowing each of allowed at most
// once and nothing else. RawQueryString is preferred because
// queryStringParameters joins repeated parameters with commas.
func queryParams(req events.APIGatewayV2HTTPRequest, allowed ...string) (map[string]string, *Error) {
	out := map[string]string{}
	var values url.Values
	if req.RawQueryString != "" {
		v, err := url.ParseQuery(req.RawQueryString)
		if err != nil {
			return nil, badRequest(CodeInvalidQuery, "the query string is malformed")
		}
		values = v
	} else {
		values = url.Values{}
		for k, v := range req.QueryStringParameters {
			values.Set(k, v)
		}
	}
	for k, v := range values {
		if !contains(allowed, k) {
			if len(allowed) == 0 {
				return nil, badRequest(CodeInvalidQuery, fmt.Sprintf("unknown query parameter %q: this route takes none", truncate(k)))
			}
			return nil, badRequest(CodeInvalidQuery, fmt.Sprintf("unknown query parameter %q: this route takes %s", truncate(k), strings.Join(allowed, ", ")))
		}
		if len(v) != 1 {
			return nil, badRequest(CodeInvalidQuery, fmt.Sprintf("query parameter %q is repeated", k))
		}
		out[k] = v[0]
	}
	return out, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// internal logs err once and answers 500 without its text.
func (h *Handler) internal(ctx context.Context, req events.APIGatewayV2HTTPRequest, name string, err error) events.APIGatewayV2HTTPResponse {
	logging.From(ctx).ErrorContext(ctx, "certificates API request failed", requestAttrs(req, name, err)...)
	return errorResponse(&Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"})
}

func requestAttrs(req events.APIGatewayV2HTTPRequest, name string, err error) []any {
	attrs := []any{
		slog.String("requestId", req.RequestContext.RequestID),
		slog.String("method", req.RequestContext.HTTP.Method),
		slog.String("path", req.RawPath),
	}
	if name != "" {
		attrs = append(attrs, slog.String("domain", name))
	}
	return append(attrs, slog.Any("error", err))
}

// jsonResponse answers v as JSON. API answers are never cached.
func jsonResponse(status int, v any) events.APIGatewayV2HTTPResponse {
	b, err := json.Marshal(v)
	if err != nil {
		// The documents are plain structs of strings and numbers.
		b = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
		status = http.StatusInternalServerError
	}
	return events.APIGatewayV2HTTPResponse{
		StatusCode: status,
		Headers: map[string]string{
			"content-type":           "application/json",
			"cache-control":          "no-store",
			"x-content-type-options": "nosniff",
		},
		Body: string(b),
	}
}
