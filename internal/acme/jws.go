package acme

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	legoacme "github.com/go-acme/lego/v4/acme"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/certflow/certflow/internal/failure"
)

// Every request to the CA goes through a poster: the smallest code of our
// own over lego's types (acme.Directory, acme.Order, acme.ProblemDetails
// and its typed errors). lego's api.Core is not used for requests because
// it retries with a background context, drops the Retry-After and Location
// of POST-as-GETs, and places an order again without "replaces" when the
// CA refuses it (notes/lego.md).
const (
	joseContentType = "application/jose+json"
	pemChainType    = "application/pem-certificate-chain"
	// maxNonceAttempts bounds the tries of one request the CA answers
	// badNonce (RFC 8555 section 6.5), each with the nonce of the refusal.
	maxNonceAttempts = 8
	// maxNonces bounds the pool of nonces kept from answers.
	maxNonces = 32
	// maxAnswer bounds what is read of an answer: a certificate chain is a
	// few KiB.
	maxAnswer = 1 << 20
)

// signer is who signs a request: an account key with its account URL
// (kid), or a key alone, whose JWK is then embedded (newAccount).
type signer struct {
	key crypto.Signer
	kid string
}

// reply is the CA's answer to a request.
type reply struct {
	method, url string
	status      int
	header      http.Header
	body        []byte
}

// retryAfter returns the Retry-After header, "" if absent.
func (r *reply) retryAfter() string { return r.header.Get("Retry-After") }

// decode reads the JSON answer into v; an answer that is not JSON is an
// answerError.
func (r *reply) decode(v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return &answerError{Status: r.status, Method: r.method, URL: r.url, Err: err, Body: snippet(r.body)}
	}
	return nil
}

// answerError is an answer of the CA that cannot be read: an error status
// without a problem document, or a body that is not what RFC 8555 says.
type answerError struct {
	Status      int
	Method, URL string
	Err         error
	Body        string // the start of the body
}

func (e *answerError) Error() string {
	msg := fmt.Sprintf("CA answered %d to %s %s", e.Status, e.Method, e.URL)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

func (e *answerError) Unwrap() error { return e.Err }

func snippet(b []byte) string {
	const max = 200
	s := strings.TrimSpace(string(b))
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// poster sends the requests of one client to its CA. It is safe for
// concurrent use.
type poster struct {
	http *http.Client
	dir  legoacme.Directory

	mu     sync.Mutex
	nonces []string
}

// fetchDirectory reads the directory at url (RFC 8555 section 7.1.1); raw
// is the JSON as served.
func fetchDirectory(ctx context.Context, client *http.Client, url string) (dir legoacme.Directory, raw []byte, err error) {
	p := &poster{http: client}
	r, err := p.do(ctx, http.MethodGet, url, nil, "")
	if err != nil {
		return dir, nil, fmt.Errorf("get directory %s: %w", url, err)
	}
	if err := r.decode(&dir); err != nil {
		return dir, nil, fmt.Errorf("get directory %s: %w", url, err)
	}
	if dir.NewNonceURL == "" || dir.NewAccountURL == "" || dir.NewOrderURL == "" {
		return dir, nil, fmt.Errorf("get directory %s: %w", url, &answerError{Status: r.status, Method: r.method, URL: url, Err: errors.New("newNonce, newAccount or newOrder missing"), Body: snippet(r.body)})
	}
	return dir, r.body, nil
}

// postJSON signs v as the payload of a POST to url.
func (p *poster) postJSON(ctx context.Context, s signer, url string, v any) (*reply, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", url, err)
	}
	return p.post(ctx, s, url, payload, "")
}

// postAsGet fetches url with a POST-as-GET (RFC 8555 section 6.3); accept
// is the media type asked for, "" for JSON.
func (p *poster) postAsGet(ctx context.Context, s signer, url, accept string) (*reply, error) {
	return p.post(ctx, s, url, []byte{}, accept)
}

// post signs payload with a fresh nonce and POSTs it to url. An answer of
// status 400 and above is returned as an error of lego's types
// (*acme.ProblemDetails, or the *acme.NonceError, *acme.RateLimitedError
// and *acme.AlreadyReplacedError that wrap one) or as an *answerError
// when it holds no problem document. badNonce is tried again, at most
// maxNonceAttempts times in all.
func (p *poster) post(ctx context.Context, s signer, url string, payload []byte, accept string) (*reply, error) {
	for attempt := 1; ; attempt++ {
		nonce, err := p.nonce(ctx)
		if err != nil {
			return nil, err
		}
		body, err := sign(s, nonce, url, payload)
		if err != nil {
			return nil, fmt.Errorf("POST %s: %w", url, err)
		}
		r, err := p.do(ctx, http.MethodPost, url, body, accept)
		if err != nil {
			return nil, err
		}
		p.keep(r.header)
		if r.status < http.StatusBadRequest {
			return r, nil
		}
		err = errorOf(r)
		var bad *legoacme.NonceError
		if !errors.As(err, &bad) || attempt == maxNonceAttempts || ctx.Err() != nil {
			return r, err
		}
	}
}

// do sends one request and reads the whole answer. A request the CA did
// not answer returns the transport's error; one cut short by ctx returns
// cut's.
func (p *poster) do(ctx context.Context, method, url string, body []byte, accept string) (*reply, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	req.Header.Set("User-Agent", userAgent)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", joseContentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, cut(ctx, method+" "+url, err)
		}
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		if ctx.Err() != nil {
			return nil, cut(ctx, method+" "+url, err)
		}
		return nil, fmt.Errorf("read the answer to %s %s: %w", method, url, err)
	}
	return &reply{method: method, url: url, status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// nonce returns a nonce from the pool, or a new one from the CA.
func (p *poster) nonce(ctx context.Context) (string, error) {
	p.mu.Lock()
	if n := len(p.nonces); n > 0 {
		nonce := p.nonces[n-1]
		p.nonces = p.nonces[:n-1]
		p.mu.Unlock()
		return nonce, nil
	}
	p.mu.Unlock()
	r, err := p.do(ctx, http.MethodHead, p.dir.NewNonceURL, nil, "")
	if err != nil {
		return "", fmt.Errorf("get a nonce: %w", err)
	}
	nonce := r.header.Get("Replay-Nonce")
	if nonce == "" || r.status >= http.StatusBadRequest {
		return "", fmt.Errorf("get a nonce: %w", &answerError{Status: r.status, Method: r.method, URL: r.url, Err: errors.New("no Replay-Nonce")})
	}
	return nonce, nil
}

// keep pools the nonce of an answer: every answer to a POST carries one,
// errors included (RFC 8555 section 6.5).
func (p *poster) keep(h http.Header) {
	nonce := h.Get("Replay-Nonce")
	if nonce == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.nonces) == maxNonces {
		p.nonces = p.nonces[1:]
	}
	p.nonces = append(p.nonces, nonce)
}

// errorOf returns the error of an answer of status 400 and above, typed
// as lego's sender types it.
func errorOf(r *reply) error {
	var pd *legoacme.ProblemDetails
	if err := json.Unmarshal(r.body, &pd); err != nil || pd == nil || pd.Type == "" {
		return &answerError{Status: r.status, Method: r.method, URL: r.url, Body: snippet(r.body)}
	}
	pd.Method, pd.URL = r.method, r.url
	if pd.HTTPStatus == 0 {
		pd.HTTPStatus = r.status
	}
	switch {
	case pd.HTTPStatus == http.StatusBadRequest && pd.Type == legoacme.BadNonceErr:
		return &legoacme.NonceError{ProblemDetails: pd}
	case pd.HTTPStatus == http.StatusConflict && pd.Type == legoacme.AlreadyReplacedErr:
		return &legoacme.AlreadyReplacedError{ProblemDetails: pd}
	case pd.HTTPStatus == http.StatusTooManyRequests && pd.Type == legoacme.RateLimitedErr:
		return &legoacme.RateLimitedError{ProblemDetails: pd, RetryAfter: r.retryAfter()}
	}
	return pd
}

// sign returns the JWS of payload for url in flattened JSON serialization
// (RFC 8555 section 6.2).
func sign(s signer, nonce, url string, payload []byte) ([]byte, error) {
	alg, err := algorithm(s.key)
	if err != nil {
		return nil, err
	}
	opts := &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"nonce": nonce, "url": url}}
	opts.EmbedJWK = s.kid == ""
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: s.key, KeyID: s.kid}}, opts)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	jws, err := sig.Sign(payload)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return []byte(jws.FullSerialize()), nil
}

func algorithm(key crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return jose.RS256, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		}
	}
	return "", fmt.Errorf("sign: account key %T is not RSA or ECDSA P-256/P-384", key)
}

// eabJWS returns the external account binding of a newAccount request
// (RFC 8555 section 7.3.4): the account's public JWK, MACed with the CA's
// HMAC key (base64url, padded or not) under its key ID.
func eabJWS(key crypto.Signer, newAccountURL string, eab *EAB) (json.RawMessage, error) {
	hmac, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(eab.HMAC, "="))
	if err != nil {
		return nil, fmt.Errorf("external account binding: HMAC key is not base64url: %w", err)
	}
	jwk, err := jose.JSONWebKey{Key: key.Public()}.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("external account binding: %w", err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: hmac},
		&jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"kid": eab.KID, "url": newAccountURL}})
	if err != nil {
		return nil, fmt.Errorf("external account binding: %w", err)
	}
	jws, err := sig.Sign(jwk)
	if err != nil {
		return nil, fmt.Errorf("external account binding: %w", err)
	}
	return json.RawMessage(jws.FullSerialize()), nil
}

// cut returns the error of work that ctx ended: past the deadline, the
// step ran out of time (a TransientError the caller resumes from); else
// it was cancelled.
func cut(ctx context.Context, what string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &failure.TransientError{Code: failure.CodeStepTimeout, Message: what + ": the step's deadline came first", Err: err}
	}
	return fmt.Errorf("%s: %w", what, context.Cause(ctx))
}
