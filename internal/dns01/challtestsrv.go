package dns01

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/challenge"
	legodns01 "github.com/go-acme/lego/v4/challenge/dns01"
)

// requestTimeout bounds each management API call made from lego's
// callbacks, which carry no context.
const requestTimeout = 10 * time.Second

// ChallTestSrv is a DNS-01 provider that publishes TXT records through
// pebble-challtestsrv's management API. It serves the offline stack.
type ChallTestSrv struct {
	base     string
	client   *http.Client
	timeout  time.Duration
	interval time.Duration
}

var (
	_ challenge.Provider        = (*ChallTestSrv)(nil)
	_ challenge.ProviderTimeout = (*ChallTestSrv)(nil)
)

// NewChallTestSrv returns a provider for the management API at
// cfg.ChallTestSrvURL.
func NewChallTestSrv(cfg Config) (*ChallTestSrv, error) {
	u, err := url.Parse(cfg.ChallTestSrvURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("challtestsrv URL %q: want an http(s) URL", cfg.ChallTestSrvURL)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: requestTimeout}
	}
	return &ChallTestSrv{
		base:     strings.TrimRight(cfg.ChallTestSrvURL, "/"),
		client:   client,
		timeout:  durationOr(cfg.PropagationTimeout, 30*time.Second),
		interval: durationOr(cfg.PollingInterval, 100*time.Millisecond),
	}, nil
}

// Present publishes the TXT record of the DNS-01 challenge for domain.
func (c *ChallTestSrv) Present(domain, token, keyAuth string) error {
	info := legodns01.GetChallengeInfo(domain, keyAuth)
	body := map[string]string{"host": info.EffectiveFQDN, "value": info.Value}
	if err := c.post("/set-txt", body); err != nil {
		return fmt.Errorf("present DNS-01 challenge for %q: %w", domain, err)
	}
	return nil
}

// CleanUp removes the TXT records of the challenge host of domain.
func (c *ChallTestSrv) CleanUp(domain, token, keyAuth string) error {
	info := legodns01.GetChallengeInfo(domain, keyAuth)
	if err := c.post("/clear-txt", map[string]string{"host": info.EffectiveFQDN}); err != nil {
		return fmt.Errorf("clean up DNS-01 challenge for %q: %w", domain, err)
	}
	return nil
}

// Timeout implements challenge.ProviderTimeout: challtestsrv answers with
// a record as soon as it is set, so lego need not wait long between checks.
func (c *ChallTestSrv) Timeout() (timeout, interval time.Duration) {
	return c.timeout, c.interval
}

func (c *ChallTestSrv) post(path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return errors.New("challtestsrv " + path + ": " + resp.Status + ": " + strings.TrimSpace(string(msg)))
	}
	return nil
}
