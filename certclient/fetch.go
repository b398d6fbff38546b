package certclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxBodyBytes bounds a delivery response; a certificate chain and its key
// are a few kilobytes.
const maxBodyBytes = 1 << 20

// response is what one request to the delivery endpoint said.
type response struct {
	cert        *tls.Certificate // 200
	notModified bool             // 304
	notFound    bool             // 404
	etag        string
	maxAge      time.Duration
	hasMaxAge   bool
}

// deliveryBody is the 200 response of GET /sni/{name}.
type deliveryBody struct {
	Certificate string `json:"certificate"`
	PrivateKey  string `json:"privateKey"`
	NotAfter    string `json:"notAfter"`
	Serial      string `json:"serial"`
}

// errorBody is the error response of the delivery endpoint.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// fetch asks the endpoint for name's certificate, conditionally on etag when
// it is not empty.
func (c *Client) fetch(ctx context.Context, name, etag string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/sni/"+url.PathEscape(name), nil)
	if err != nil {
		return response{}, fmt.Errorf("build request for %q: %w", name, err)
	}
	req.Header.Set("Accept", "application/json")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	if c.sign != nil {
		if err := c.sign(req); err != nil {
			return response{}, fmt.Errorf("sign request for %q: %w", name, err)
		}
	}
	resp, err := c.doer.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("fetch certificate %q: %w", name, err)
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
	}()

	res := response{etag: resp.Header.Get("ETag")}
	res.maxAge, res.hasMaxAge = parseMaxAge(resp.Header.Values("Cache-Control"))
	switch resp.StatusCode {
	case http.StatusOK:
		var body deliveryBody
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxBodyBytes)).Decode(&body); err != nil {
			return response{}, fmt.Errorf("decode certificate response for %q: %w", name, err)
		}
		cert, err := parseKeyPair(body)
		if err != nil {
			return response{}, fmt.Errorf("parse certificate for %q (serial %q): %w", name, truncate(body.Serial), err)
		}
		res.cert = cert
	case http.StatusNotModified:
		res.notModified = true
	case http.StatusNotFound:
		res.notFound = true
	default:
		var eb errorBody
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&eb)
		if eb.Error.Code != "" {
			return response{}, fmt.Errorf("fetch certificate %q: endpoint answered %s (%s)", name, resp.Status, truncate(eb.Error.Code))
		}
		return response{}, fmt.Errorf("fetch certificate %q: endpoint answered %s", name, resp.Status)
	}
	return res, nil
}

// parseKeyPair builds the certificate once, with Leaf set, so handshakes
// never parse. Its errors describe the problem without quoting key material.
func parseKeyPair(body deliveryBody) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair([]byte(body.Certificate), []byte(body.PrivateKey))
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, err
		}
		cert.Leaf = leaf
	}
	return &cert, nil
}

// parseMaxAge returns the max-age directive of Cache-Control header values.
func parseMaxAge(values []string) (time.Duration, bool) {
	for _, v := range values {
		for directive := range strings.SplitSeq(v, ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(directive), "=")
			if !ok || !strings.EqualFold(k, "max-age") {
				continue
			}
			n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
			if err != nil || n < 0 {
				continue
			}
			// Cap at a year to keep the arithmetic sane.
			return time.Duration(min(n, 365*24*3600)) * time.Second, true
		}
	}
	return 0, false
}
