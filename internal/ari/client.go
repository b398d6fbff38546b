// Package ari fetches ACME Renewal Information (RFC 9773) and decides when a
// certificate is renewed.
package ari

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/certflow/certflow/internal/retryafter"
)

// ErrUnsupported is returned by Get when the CA's directory has no
// renewalInfo endpoint.
var ErrUnsupported = errors.New("ari: the CA does not offer renewal information")

// maxBody caps what is read from the CA: a directory or a renewalInfo
// object is a few hundred bytes.
const maxBody = 1 << 20

// Window is the CA's suggested renewal window for one certificate.
type Window struct {
	Start time.Time
	End   time.Time
	// ExplanationURL points at a page saying why the window is what it is
	// (for example a mass revocation). Operators should see it.
	ExplanationURL string
}

// Client reads renewal information from one ACME CA. The directory is
// fetched once, on first use, and cached; a failed fetch is retried on the
// next call. A Client is safe for concurrent use.
type Client struct {
	httpClient   *http.Client
	directoryURL string
	now          func() time.Time

	mu          sync.Mutex
	fetched     bool
	renewalInfo string // "" when the CA has no ARI
}

// New returns a Client for the ACME directory at directoryURL. A nil
// httpClient means http.DefaultClient.
func New(httpClient *http.Client, directoryURL string) *Client {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &Client{httpClient: httpClient, directoryURL: directoryURL, now: time.Now}
}

// Supported reports whether the CA advertises a renewalInfo endpoint.
func (c *Client) Supported(ctx context.Context) (bool, error) {
	u, err := c.endpoint(ctx)
	if err != nil {
		return false, err
	}
	return u != "", nil
}

func (c *Client) endpoint(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fetched {
		return c.renewalInfo, nil
	}
	var dir struct {
		RenewalInfo string `json:"renewalInfo"`
	}
	if _, err := c.getJSON(ctx, c.directoryURL, &dir); err != nil {
		return "", fmt.Errorf("fetch ACME directory %q: %w", c.directoryURL, err)
	}
	c.fetched = true
	c.renewalInfo = strings.TrimSuffix(dir.RenewalInfo, "/")
	return c.renewalInfo, nil
}

// Get fetches the suggested renewal window of the certificate identified by
// certID (base64url(AKI) "." base64url(serial), as lego's
// certificate.MakeARICertID builds it), with the delay the CA asks before
// the next poll (retryafter.DefaultRenewalInfo when it says nothing, held
// within retryafter's bounds). It returns ErrUnsupported when the CA has no ARI.
func (c *Client) Get(ctx context.Context, certID string) (Window, time.Duration, error) {
	base, err := c.endpoint(ctx)
	if err != nil {
		return Window{}, 0, err
	}
	if base == "" {
		return Window{}, 0, ErrUnsupported
	}
	if certID == "" || strings.ContainsAny(certID, "/?#") {
		return Window{}, 0, fmt.Errorf("renewal info: invalid certificate ID %q", certID)
	}
	var body struct {
		SuggestedWindow struct {
			Start time.Time `json:"start"`
			End   time.Time `json:"end"`
		} `json:"suggestedWindow"`
		ExplanationURL string `json:"explanationURL"`
	}
	h, err := c.getJSON(ctx, base+"/"+certID, &body)
	if err != nil {
		return Window{}, 0, fmt.Errorf("renewal info for %q: %w", certID, err)
	}
	w := Window{Start: body.SuggestedWindow.Start.UTC(), End: body.SuggestedWindow.End.UTC(), ExplanationURL: body.ExplanationURL}
	if w.Start.IsZero() || w.End.IsZero() || !w.End.After(w.Start) {
		return Window{}, 0, fmt.Errorf("renewal info for %q: invalid suggested window %v..%v", certID, w.Start, w.End)
	}
	d, ok := retryafter.Parse(h.Get("Retry-After"), c.now())
	return w, retryafter.Or(d, ok, retryafter.DefaultRenewalInfo), nil
}

// StatusError is an unexpected HTTP answer from the CA.
type StatusError struct {
	StatusCode int
	Body       string // at most 512 bytes, for the log
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("unexpected HTTP status %d: %s", e.StatusCode, e.Body)
}

func (c *Client) getJSON(ctx context.Context, url string, v any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{StatusCode: resp.StatusCode, Body: string(body[:min(len(body), 512)])}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("decode JSON: %w", err)
	}
	return resp.Header, nil
}
