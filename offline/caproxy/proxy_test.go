package caproxy_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/registration"

	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/caproxy"
	"github.com/certflow/certflow/offline/offlinetest"
)

// TestThroughPebble puts the proxy between lego and a real Pebble: one
// offline stack, one proxy per scenario.
func TestThroughPebble(t *testing.T) {
	env := offlinetest.Start(t, offline.Options{Pebble: true})
	responder := serveHTTP01(t, env.HTTP01Addr)
	start := func(t *testing.T) *caproxy.Proxy {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p, err := caproxy.Start(ctx, caproxy.Options{Upstream: env.PebbleDirectoryURL, UpstreamCAFile: env.PebbleTLSCAFile})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		return p
	}

	t.Run("obtain", func(t *testing.T) {
		t.Parallel()
		p := start(t)
		c := newClient(t, env, p, responder)
		names := []string{"www.obtain.caproxy.example", "obtain.caproxy.example"}
		if _, err := c.obtain(names...); err != nil {
			t.Fatalf("obtain through the proxy: %v", err)
		}
		orders := p.Orders()
		if len(orders) != 1 {
			t.Fatalf("Orders() = %+v, want one", orders)
		}
		o := orders[0]
		if want := []string{"obtain.caproxy.example", "www.obtain.caproxy.example"}; !slices.Equal(o.Identifiers, want) {
			t.Errorf("Identifiers = %q, want %q", o.Identifiers, want)
		}
		if o.Account != c.user.reg.URI || !o.Forwarded || o.Status != http.StatusCreated || !strings.HasPrefix(o.URL, "https://"+p.Addr()+"/") {
			t.Errorf("order = %+v, want account %s, forwarded, 201, a URL at the proxy", o, c.user.reg.URI)
		}
		if got := p.MaxOrdersInWindow(time.Hour); got != 1 {
			t.Errorf("MaxOrdersInWindow(1h) = %d, want 1", got)
		}
		if got, want := p.OrdersPerIdentifierSet(), map[string]int{"obtain.caproxy.example,www.obtain.caproxy.example": 1}; !maps.Equal(got, want) {
			t.Errorf("OrdersPerIdentifierSet() = %v, want %v", got, want)
		}
		stats := p.Stats()
		for op, status := range map[caproxy.Op]int{
			caproxy.OpDirectory:   http.StatusOK,
			caproxy.OpNewAccount:  http.StatusCreated,
			caproxy.OpNewOrder:    http.StatusCreated,
			caproxy.OpAuthz:       http.StatusOK,
			caproxy.OpChallenge:   http.StatusOK,
			caproxy.OpFinalize:    http.StatusOK,
			caproxy.OpCertificate: http.StatusOK,
		} {
			if s := stats[op]; s.Forwarded == 0 || s.Status[status] == 0 {
				t.Errorf("Stats()[%s] = %+v, want answers %d", op, s, status)
			}
		}
		if got := stats[caproxy.OpChallenge].Requests; got != 2 {
			t.Errorf("challenge requests = %d, want 2 (one per name)", got)
		}
		if got := len(p.Injections()); got != 0 {
			t.Errorf("%d injections, want none", got)
		}
	})

	tests := []struct {
		name   string
		faults caproxy.Faults
		// check judges the client's error and what the proxy recorded.
		check func(t *testing.T, p *caproxy.Proxy, c *client, err error)
	}{
		{
			name:   "rateLimited newOrder",
			faults: caproxy.Faults{Rules: []caproxy.Rule{{Kind: caproxy.RateLimited, Ops: []caproxy.Op{caproxy.OpNewOrder}, RetryAfter: 30 * time.Second}}},
			check: func(t *testing.T, p *caproxy.Proxy, c *client, err error) {
				var rl *acme.RateLimitedError
				if !errors.As(err, &rl) || rl.RetryAfter != "30" {
					t.Fatalf("error = %v, want a rateLimited problem with Retry-After 30", err)
				}
				if n := len(p.Orders()); n != 0 {
					t.Errorf("%d orders placed, want none", n)
				}
				if o := p.NewOrders(); len(o) != 1 || o[0].Forwarded {
					t.Errorf("NewOrders() = %+v, want one not forwarded", o)
				}
				if s := p.Stats()[caproxy.OpNewOrder]; s.Requests != 1 || s.Forwarded != 0 || s.Injected != 1 {
					t.Errorf("newOrder stats = %+v, want 1 request, none forwarded, 1 injected", s)
				}
			},
		},
		{
			name:   "serverInternal 503 on finalize",
			faults: caproxy.Faults{Rules: []caproxy.Rule{{Kind: caproxy.ServerError, Status: http.StatusServiceUnavailable, Ops: []caproxy.Op{caproxy.OpFinalize}}}},
			check: func(t *testing.T, p *caproxy.Proxy, c *client, err error) {
				var pd *acme.ProblemDetails
				if !errors.As(err, &pd) || pd.HTTPStatus != http.StatusServiceUnavailable || pd.Type != "urn:ietf:params:acme:error:serverInternal" {
					t.Fatalf("error = %v, want a 503 serverInternal problem", err)
				}
				if n := len(p.Orders()); n != 1 {
					t.Errorf("%d orders placed, want 1", n)
				}
				if s := p.Stats()[caproxy.OpFinalize]; s.Forwarded != 0 {
					t.Errorf("finalize stats = %+v, want none forwarded", s)
				}
			},
		},
		{
			name:   "badNonce is retried",
			faults: caproxy.Faults{Rules: []caproxy.Rule{{Kind: caproxy.BadNonce, Ops: []caproxy.Op{caproxy.OpNewOrder}, Count: 2}}},
			check: func(t *testing.T, p *caproxy.Proxy, c *client, err error) {
				if err != nil {
					t.Fatalf("obtain: %v, want lego to retry badNonce", err)
				}
				if got := p.Injected()["badNonce"]; got != 2 {
					t.Errorf("badNonce injected %d times, want 2", got)
				}
				if n, all := len(p.Orders()), len(p.NewOrders()); n != 1 || all != 3 {
					t.Errorf("%d orders placed of %d newOrder requests, want 1 of 3", n, all)
				}
			},
		},
		{
			name:   "connection reset on newOrder",
			faults: caproxy.Faults{Rules: []caproxy.Rule{{Kind: caproxy.Reset, Ops: []caproxy.Op{caproxy.OpNewOrder}, Count: 1}}},
			check: func(t *testing.T, p *caproxy.Proxy, c *client, err error) {
				wantReset(t, err)
				if n := len(p.Orders()); n != 0 {
					t.Errorf("%d orders placed, want none", n)
				}
			},
		},
		{
			name:   "finalize answer dropped after the CA issued",
			faults: caproxy.Faults{Rules: []caproxy.Rule{{Kind: caproxy.DropResponse, Ops: []caproxy.Op{caproxy.OpFinalize}, Count: 1}}},
			check: func(t *testing.T, p *caproxy.Proxy, c *client, err error) {
				wantReset(t, err)
				if s := p.Stats()[caproxy.OpFinalize]; s.Forwarded != 1 || s.Status[http.StatusOK] != 1 {
					t.Errorf("finalize stats = %+v, want forwarded once and answered 200", s)
				}
				if n := len(p.Orders()); n != 1 {
					t.Errorf("%d orders placed, want 1", n)
				}
			},
		},
		{
			name:   "Retry-After on polls",
			faults: caproxy.Faults{PollRetryAfter: 2 * time.Second},
			check: func(t *testing.T, p *caproxy.Proxy, c *client, err error) {
				if err != nil {
					t.Fatal(err)
				}
				// Pebble sends no Retry-After on a challenge POST's answer.
				if got := c.challengeRetryAfters(); !slices.Contains(got, "2") {
					t.Errorf("Retry-After on challenge answers = %q, want 2", got)
				}
				if p.Injected()["retryAfter"] == 0 {
					t.Error("no retryAfter injection recorded")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := start(t)
			c := newClient(t, env, p, responder)
			if err := p.SetFaults(tt.faults); err != nil {
				t.Fatal(err)
			}
			domain := strings.ReplaceAll(strings.ToLower(tt.name), " ", "-") + ".caproxy.example"
			_, err := c.obtain(domain)
			tt.check(t, p, c, err)
		})
	}

	t.Run("freeze", func(t *testing.T) {
		t.Parallel()
		p := start(t)
		hc := pebbleClient(t, env)
		p.Freeze(300 * time.Millisecond)
		begin := time.Now()
		if err := get(hc, p.DirectoryURL()); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(begin); waited < 250*time.Millisecond {
			t.Errorf("request answered after %s, want held until the freeze ended (300ms)", waited)
		}

		p.Freeze(time.Minute)
		done := make(chan error, 1)
		go func() { done <- get(hc, p.DirectoryURL()) }()
		select {
		case err := <-done:
			t.Fatalf("request answered while frozen: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		p.Thaw()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("request still held 5s after Thaw")
		}
		if got := p.Injected()["freeze"]; got != 2 {
			t.Errorf("freeze injected %d times, want 2", got)
		}
	})

	t.Run("down and up", func(t *testing.T) {
		t.Parallel()
		p := start(t)
		hc := pebbleClient(t, env)
		if err := get(hc, p.DirectoryURL()); err != nil {
			t.Fatal(err)
		}
		if err := p.Down(); err != nil {
			t.Fatal(err)
		}
		if err := get(hc, p.DirectoryURL()); err == nil {
			t.Fatal("directory answered while down")
		}
		if err := p.Up(); err != nil {
			t.Fatal(err)
		}
		if err := get(hc, p.DirectoryURL()); err != nil {
			t.Fatalf("directory after Up: %v", err)
		}
		if got := p.Injected()["down"]; got != 1 {
			t.Errorf("down injected %d times, want 1", got)
		}
	})
}

// wantReset checks that the client saw its connection reset, and no
// answer.
func wantReset(t *testing.T, err error) {
	t.Helper()
	var ue *url.Error
	var pd *acme.ProblemDetails
	if !errors.As(err, &ue) || !errors.Is(err, syscall.ECONNRESET) || errors.As(err, &pd) {
		t.Fatalf("error = %v, want a connection reset and no problem document", err)
	}
}

func get(hc *http.Client, u string) error {
	resp, err := hc.Get(u)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// pebbleClient trusts pebble.minica.pem, and so the proxy.
func pebbleClient(t *testing.T, env *offline.Stack) *http.Client {
	t.Helper()
	hc, err := env.PebbleHTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	hc.Timeout = 10 * time.Second
	return hc
}

// client is a lego client with a fresh account, through the proxy. It
// remembers the Retry-After headers of the answers to its challenge POSTs.
type client struct {
	lego *lego.Client
	user *user

	mu          sync.Mutex
	retryAfters []string
}

func newClient(t *testing.T, env *offline.Stack, p *caproxy.Proxy, responder challenge.Provider) *client {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{user: &user{key: key}}
	hc := pebbleClient(t, env)
	hc.Timeout = 30 * time.Second
	hc.Transport = recordRetryAfter{next: hc.Transport, c: c}
	cfg := lego.NewConfig(c.user)
	cfg.CADirURL = p.DirectoryURL()
	cfg.HTTPClient = hc
	cfg.Certificate.KeyType = certcrypto.EC256
	if c.lego, err = lego.NewClient(cfg); err != nil {
		t.Fatal(err)
	}
	if err := c.lego.Challenge.SetHTTP01Provider(responder); err != nil {
		t.Fatal(err)
	}
	if c.user.reg, err = c.lego.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *client) obtain(names ...string) (*certificate.Resource, error) {
	return c.lego.Certificate.Obtain(certificate.ObtainRequest{Domains: names, Bundle: true})
}

func (c *client) challengeRetryAfters() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.retryAfters)
}

type recordRetryAfter struct {
	next http.RoundTripper
	c    *client
}

func (r recordRetryAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" && strings.HasPrefix(req.URL.Path, "/chalZ/") {
		r.c.mu.Lock()
		r.c.retryAfters = append(r.c.retryAfters, ra)
		r.c.mu.Unlock()
	}
	return resp, nil
}

// user is a lego account.
type user struct {
	key crypto.PrivateKey
	reg *registration.Resource
}

func (u *user) GetEmail() string                        { return "" }
func (u *user) GetRegistration() *registration.Resource { return u.reg }
func (u *user) GetPrivateKey() crypto.PrivateKey        { return u.key }

// http01 serves the key authorizations lego presents on the stack's HTTP-01
// address, where Pebble validates every name (challtestsrv resolves them
// all to 127.0.0.1).
type http01 struct {
	mu   sync.Mutex
	keys map[string]string // token -> key authorization
}

var _ challenge.Provider = (*http01)(nil)

func serveHTTP01(t *testing.T, addr string) *http01 {
	t.Helper()
	h := &http01{keys: map[string]string{}}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return h
}

func (h *http01) Present(domain, token, keyAuth string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.keys[token] = keyAuth
	return nil
}

func (h *http01) CleanUp(domain, token, keyAuth string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.keys, token)
	return nil
}

func (h *http01) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, _ := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/")
	h.mu.Lock()
	keyAuth, ok := h.keys[token]
	h.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(keyAuth))
}
