// Package delivery serves certificates and their private keys to the
// platform's TLS proxies: GET /sni/{name} answers the certificate to present
// for an SNI name. It is the only part of certflow that decrypts certificate
// keys.
//
// Answers:
//
//	200 JSON {"certificate": "<PEM chain>", "privateKey": "<PEM>", "notAfter": "<RFC 3339>", "serial": "<hex>"},
//	    or, with Accept: application/x-pem-file, the key and then the chain
//	    as one PEM file (application/x-pem-file)
//	304 the If-None-Match tag is current (checked before the key is decrypted)
//	403 the caller is not one of the principals allowed to fetch keys
//	    (Config.Allowed); nothing was looked up or decrypted
//	404 nothing to serve: the name is unknown, invalid, not active or expired
//
// Who may fetch: the route's IAM authorization lets in any principal whose
// policy allows execute-api:Invoke on it, which in most accounts includes
// every administrator. The handler checks the caller's IAM identity
// (requestContext.authorizer.iam.userArn, package principal) against the
// principals the operator listed (the template's DeliveryPrincipals), so
// a key leaves only for them. An empty list lets no one.
//
// An invalid name answers 404 rather than 400: proxies pass along whatever
// SNI a client sent, junk included, and for them it is simply a name without
// a certificate, cacheable like any other miss.
//
// Caching: a 200 or 304 carries a strong ETag derived from the serial and the
// representation, "Vary: Accept", and "Cache-Control: private, max-age=N"
// with
//
//	N = min(24h, max(0, (notAfter - now) - (notAfter - notBefore)/3))
//
// so a cache holds a certificate at most until two thirds of its lifetime,
// when renewal is due and a newer one may exist, and never longer than a day,
// which bounds how long an early replacement (revocation, ARI) takes to reach
// the proxies. A 404 carries "Cache-Control: max-age=60": a short negative
// lifetime, so a newly issued certificate is picked up within a minute.
package delivery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/httpapi"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/principal"
	"github.com/certflow/certflow/internal/table"
)

// Finder finds the certificate to serve for a name: the exact name first,
// then the wildcard one label up, aliases resolved. It returns an error
// wrapping certstore.ErrNotFound when there is none. *certstore.Store
// implements it.
type Finder interface {
	GetForDelivery(ctx context.Context, name string) (*certstore.Certificate, error)
}

// Opener decrypts a sealed private key bound to an encryption context. The
// caller owns the returned plaintext. *envelope.Sealer implements it.
type Opener interface {
	Open(ctx context.Context, sealed envelope.Sealed, encCtx map[string]string) ([]byte, error)
}

var _ Opener = (*envelope.Sealer)(nil)

// Route is the route key of the delivery endpoint.
const Route = "GET /sni/{name}"

// Media types of the two representations.
const (
	MediaTypeJSON = "application/json"
	MediaTypePEM  = "application/x-pem-file"
)

const (
	// MaxCacheLifetime caps the max-age of an answer.
	MaxCacheLifetime = 24 * time.Hour
	// NegativeCacheLifetime is the max-age of a 404.
	NegativeCacheLifetime = time.Minute
)

// Config holds the dependencies of a Handler.
type Config struct {
	Finder Finder
	Opener Opener
	// Allowed are the principals that may fetch certificates and keys;
	// the zero value lets no one.
	Allowed principal.List
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Names decides which names are looked up; the zero value answers 404
	// for names under .test and .example without a lookup.
	Names domain.Policy
}

// Handler answers GET /sni/{name}. It is safe for concurrent use.
type Handler struct {
	finder  Finder
	opener  Opener
	allowed principal.List
	now     func() time.Time
	names   domain.Policy
}

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Finder == nil || cfg.Opener == nil {
		return nil, errors.New("delivery: Finder and Opener are required")
	}
	h := &Handler{finder: cfg.Finder, opener: cfg.Opener, allowed: cfg.Allowed, now: cfg.Now, names: cfg.Names}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// Handle answers one request. It never returns an error: failures are
// answered (500 without details) and logged once.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	param, resp, ok := resolve(req)
	if !ok {
		return resp, nil
	}
	if caller, err := principal.FromRequest(req); err != nil || !h.allowed.Contains(caller) {
		logging.From(ctx).WarnContext(ctx, "delivery refused to a principal not allowed to fetch keys",
			slog.String("requestId", req.RequestContext.RequestID), slog.String("caller", callerARN(req)))
		return forbidden(), nil
	}
	raw, err := url.PathUnescape(param)
	if err != nil {
		return notFound(), nil
	}
	name, err := h.names.Normalize(raw)
	if err != nil {
		return notFound(), nil
	}
	c, err := h.finder.GetForDelivery(ctx, name)
	if errors.Is(err, certstore.ErrNotFound) {
		return notFound(), nil
	}
	if err != nil {
		return h.internal(ctx, req, name, fmt.Errorf("find certificate: %w", err)), nil
	}
	now := h.now()
	// A valid certificate is served whatever the domain's issuance state:
	// a failing renewal, a quarantine (CAA changed, the CA paused the name)
	// or a request again must not take a working site down before its
	// certificate expires. Retired domains have no key material left.
	if c.Status == certstore.StatusRetired || !c.NotAfter.After(now) || c.CertPEM == "" || !covers(c, name) {
		return notFound(), nil
	}

	pemFile := wantsPEM(httpapi.Header(req.Headers, "accept"))
	etag := entityTag(c, pemFile)
	headers := map[string]string{
		"etag":                   etag,
		"cache-control":          "private, max-age=" + strconv.FormatInt(int64(maxAge(now, c.NotBefore, c.NotAfter)/time.Second), 10),
		"vary":                   "Accept",
		"x-content-type-options": "nosniff",
	}
	if matches(httpapi.Header(req.Headers, "if-none-match"), etag) {
		return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusNotModified, Headers: headers}, nil
	}

	plaintext, err := h.opener.Open(ctx, envelope.Sealed{Wrapped: c.Key.Wrapped, Ciphertext: c.Key.Ciphertext}, envelope.CertificateKeyContext(c.Domain))
	if err != nil {
		return h.internal(ctx, req, name, fmt.Errorf("open private key of %q serial %s: %w", c.Domain, c.Serial, err)), nil
	}
	defer clear(plaintext)
	keyPEM, err := privateKeyPEM(plaintext)
	if err != nil {
		return h.internal(ctx, req, name, fmt.Errorf("private key of %q serial %s: %w", c.Domain, c.Serial, err)), nil
	}
	defer clear(keyPEM)

	var buf []byte
	if pemFile {
		headers["content-type"] = MediaTypePEM
		buf = make([]byte, 0, len(keyPEM)+1+len(c.CertPEM))
		buf = append(buf, keyPEM...)
		if len(buf) > 0 && buf[len(buf)-1] != '\n' {
			buf = append(buf, '\n')
		}
		buf = append(buf, c.CertPEM...)
	} else {
		headers["content-type"] = MediaTypeJSON
		buf = make([]byte, 0, 2*(len(keyPEM)+len(c.CertPEM))+128)
		buf = append(buf, `{"certificate":`...)
		buf = appendJSONString(buf, []byte(c.CertPEM))
		buf = append(buf, `,"privateKey":`...)
		buf = appendJSONString(buf, keyPEM)
		buf = append(buf, `,"notAfter":`...)
		buf = appendJSONString(buf, []byte(table.FormatTime(c.NotAfter)))
		buf = append(buf, `,"serial":`...)
		buf = appendJSONString(buf, []byte(c.Serial))
		buf = append(buf, '}')
	}
	// The response body has to be a string, which cannot be wiped; every
	// other copy of the key made here is.
	body := string(buf)
	clear(buf)
	return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusOK, Headers: headers, Body: body}, nil
}

// resolve returns the raw {name} segment, or the answer to a request for
// anything else.
func resolve(req events.APIGatewayV2HTTPRequest) (string, events.APIGatewayV2HTTPResponse, bool) {
	if req.RouteKey == Route || req.RequestContext.RouteKey == Route {
		if p, ok := req.PathParameters["name"]; ok {
			return p, events.APIGatewayV2HTTPResponse{}, true
		}
	}
	path := httpapi.Path(req)
	rest, ok := strings.CutPrefix(path, "/sni/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return "", notFound(), false
	}
	if m := req.RequestContext.HTTP.Method; m != http.MethodGet {
		return "", events.APIGatewayV2HTTPResponse{
			StatusCode: http.StatusMethodNotAllowed,
			Headers:    map[string]string{"allow": http.MethodGet, "cache-control": "no-store"},
		}, false
	}
	return rest, events.APIGatewayV2HTTPResponse{}, true
}

func forbidden() events.APIGatewayV2HTTPResponse {
	return events.APIGatewayV2HTTPResponse{
		StatusCode: http.StatusForbidden,
		Headers:    map[string]string{"cache-control": "no-store", "content-type": "text/plain; charset=utf-8"},
		Body:       "forbidden\n",
	}
}

// callerARN is the raw userArn of req, for the log of a refusal.
func callerARN(req events.APIGatewayV2HTTPRequest) string {
	if a := req.RequestContext.Authorizer; a != nil && a.IAM != nil {
		return a.IAM.UserARN
	}
	return ""
}

func notFound() events.APIGatewayV2HTTPResponse {
	return events.APIGatewayV2HTTPResponse{
		StatusCode: http.StatusNotFound,
		Headers: map[string]string{
			"cache-control": "max-age=" + strconv.Itoa(int(NegativeCacheLifetime/time.Second)),
			"content-type":  "text/plain; charset=utf-8",
		},
		Body: "no certificate\n",
	}
}

// internal logs err once (never key material) and answers 500, which is
// not cached.
func (h *Handler) internal(ctx context.Context, req events.APIGatewayV2HTTPRequest, name string, err error) events.APIGatewayV2HTTPResponse {
	logging.From(ctx).ErrorContext(ctx, "delivery request failed",
		slog.String("requestId", req.RequestContext.RequestID),
		slog.String("domain", name),
		slog.Any("error", err))
	return events.APIGatewayV2HTTPResponse{
		StatusCode: http.StatusInternalServerError,
		Headers:    map[string]string{"cache-control": "no-store", "content-type": "text/plain; charset=utf-8"},
		Body:       "internal error\n",
	}
}

// maxAge is how long a cache may keep a certificate valid from notBefore to
// notAfter at now: until two thirds of its lifetime, at most
// MaxCacheLifetime, never negative.
func maxAge(now, notBefore, notAfter time.Time) time.Duration {
	d := notAfter.Sub(now) - notAfter.Sub(notBefore)/3
	return min(MaxCacheLifetime, max(0, d))
}

// covers reports whether c is a certificate for name: a defence against a
// lookup that returns the wrong item.
func covers(c *certstore.Certificate, name string) bool {
	wildcard, _ := domain.WildcardParent(name)
	for _, n := range append([]string{c.Domain}, c.SANs...) {
		if n == name || (wildcard != "" && n == wildcard) {
			return true
		}
	}
	return false
}

// entityTag is the strong ETag of c in one representation. The serial
// identifies the certificate (and so its key); the suffix the
// representation.
func entityTag(c *certstore.Certificate, pemFile bool) string {
	id := c.Serial
	if id == "" || strings.ContainsAny(id, "\"\\ ") {
		sum := sha256.Sum256([]byte(c.CertPEM))
		id = hex.EncodeToString(sum[:16])
	}
	if pemFile {
		return `"` + id + `.pem"`
	}
	return `"` + id + `.json"`
}

// matches reports whether an If-None-Match header matches etag. The
// comparison is weak, as RFC 9110 section 13.1.2 requires.
func matches(ifNoneMatch, etag string) bool {
	ifNoneMatch = strings.TrimSpace(ifNoneMatch)
	if ifNoneMatch == "" {
		return false
	}
	if ifNoneMatch == "*" {
		return true
	}
	for _, t := range strings.Split(ifNoneMatch, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag {
			return true
		}
	}
	return false
}

// wantsPEM reports whether the Accept header prefers the PEM file to JSON:
// application/x-pem-file is named with a higher quality than JSON gets, or
// the same quality when JSON is only matched by a wildcard. JSON is the
// default.
func wantsPEM(accept string) bool {
	if accept == "" {
		return false
	}
	qPEM, qJSON := -1.0, -1.0
	specJSON := 0 // 3 exact, 2 application/*, 1 */*
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(s, 64); err == nil && v >= 0 && v <= 1 {
				q = v
			}
		}
		spec := 0
		switch mt {
		case MediaTypePEM:
			qPEM = q
			continue
		case MediaTypeJSON:
			spec = 3
		case "application/*":
			spec = 2
		case "*/*":
			spec = 1
		default:
			continue
		}
		if spec > specJSON {
			specJSON, qJSON = spec, q
		}
	}
	if qPEM <= 0 {
		return false
	}
	return qPEM > qJSON || (qPEM == qJSON && specJSON < 3)
}

// privateKeyPEM returns the key as PEM: as stored when it is PEM already,
// otherwise the DER (PKCS #8, SEC 1 or PKCS #1) wrapped in the matching PEM
// block. The caller clears the result.
func privateKeyPEM(plaintext []byte) ([]byte, error) {
	if bytes.HasPrefix(bytes.TrimLeft(plaintext, " \t\r\n"), []byte("-----BEGIN ")) {
		return append([]byte(nil), plaintext...), nil
	}
	var typ string
	switch {
	case parses(x509.ParsePKCS8PrivateKey, plaintext):
		typ = "PRIVATE KEY"
	case parses(func(b []byte) (any, error) { return x509.ParseECPrivateKey(b) }, plaintext):
		typ = "EC PRIVATE KEY"
	case parses(func(b []byte) (any, error) { return x509.ParsePKCS1PrivateKey(b) }, plaintext):
		typ = "RSA PRIVATE KEY"
	default:
		return nil, errors.New("decrypted key is neither PEM nor a DER private key")
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: plaintext}), nil
}

func parses(parse func([]byte) (any, error), der []byte) bool {
	_, err := parse(der)
	return err == nil
}

// appendJSONString appends s as a JSON string without converting it to a Go
// string, so that key bytes stay in buffers that can be cleared.
func appendJSONString(dst, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20 || c == 0x7f:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
