package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	legoacme "github.com/go-acme/lego/v4/acme"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/certflow/certflow/internal/failure"
)

// fakeCA is an ACME server of a few endpoints: it hands out numbered
// nonces and answers POSTs with what answer says.
type fakeCA struct {
	mu     sync.Mutex
	heads  int      // newNonce requests
	posts  []string // the nonce of each POST
	next   int
	answer func(n int, w http.ResponseWriter) // n: the POST's number, from 1
}

func (ca *fakeCA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ca.mu.Lock()
	ca.next++
	nonce := fmt.Sprintf("nonce-%d", ca.next)
	ca.mu.Unlock()
	w.Header().Set("Replay-Nonce", nonce)
	switch {
	case r.Method == http.MethodHead && r.URL.Path == "/nonce":
		ca.mu.Lock()
		ca.heads++
		ca.mu.Unlock()
	case r.Method == http.MethodPost:
		if ct := r.Header.Get("Content-Type"); ct != joseContentType {
			http.Error(w, "content type "+ct, http.StatusUnsupportedMediaType)
			return
		}
		body, _ := io.ReadAll(r.Body)
		jws, err := jose.ParseSigned(string(body), []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ca.mu.Lock()
		ca.posts = append(ca.posts, jws.Signatures[0].Protected.Nonce)
		n := len(ca.posts)
		ca.mu.Unlock()
		ca.answer(n, w)
	default:
		http.NotFound(w, r)
	}
}

func writeProblem(w http.ResponseWriter, status int, typ, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": problemPrefix + typ, "detail": detail, "status": status})
}

func newTestPoster(t *testing.T, ca *fakeCA) (*poster, signer, string) {
	t.Helper()
	srv := httptest.NewTLSServer(ca)
	t.Cleanup(srv.Close)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &poster{http: srv.Client(), dir: legoacme.Directory{NewNonceURL: srv.URL + "/nonce"}}
	return p, signer{key: key, kid: srv.URL + "/acct/1"}, srv.URL + "/thing"
}

func TestPosterNonces(t *testing.T) {
	ca := &fakeCA{answer: func(n int, w http.ResponseWriter) {
		if n == 2 {
			writeProblem(w, http.StatusBadRequest, "badNonce", "stale")
			return
		}
		_, _ = io.WriteString(w, `{"status":"valid"}`)
	}}
	p, s, url := newTestPoster(t, ca)
	ctx := context.Background()
	if _, err := p.post(ctx, s, url, []byte("{}"), ""); err != nil {
		t.Fatal(err)
	}
	// The second POST is refused for its nonce and sent again with the
	// nonce of the refusal; no HEAD is needed after the first.
	r, err := p.post(ctx, s, url, []byte("{}"), "")
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusOK {
		t.Errorf("status = %d, want 200", r.status)
	}
	if ca.heads != 1 || len(ca.posts) != 3 {
		t.Errorf("%d HEADs and %d POSTs, want 1 and 3", ca.heads, len(ca.posts))
	}
	for i := 1; i < len(ca.posts); i++ {
		if ca.posts[i] == ca.posts[i-1] {
			t.Errorf("POST %d reused nonce %s", i+1, ca.posts[i])
		}
	}
}

func TestPosterBadNonceBounded(t *testing.T) {
	ca := &fakeCA{answer: func(_ int, w http.ResponseWriter) {
		writeProblem(w, http.StatusBadRequest, "badNonce", "always")
	}}
	p, s, url := newTestPoster(t, ca)
	_, err := p.post(context.Background(), s, url, []byte{}, "")
	var ne *legoacme.NonceError
	if !errors.As(err, &ne) {
		t.Fatalf("post() = %v, want a NonceError", err)
	}
	if len(ca.posts) != maxNonceAttempts {
		t.Errorf("%d POSTs, want %d", len(ca.posts), maxNonceAttempts)
	}
	var te *failure.TransientError
	if !errors.As(Classify(err, time.Now()), &te) || te.Code != failure.CodeCAError {
		t.Errorf("Classify(%v) = %v, want a CA error", err, Classify(err, time.Now()))
	}
}

func TestPosterAnswers(t *testing.T) {
	tests := []struct {
		name   string
		answer func(w http.ResponseWriter)
		check  func(t *testing.T, r *reply, err error)
	}{
		{
			name: "rate limited keeps the Retry-After",
			answer: func(w http.ResponseWriter) {
				w.Header().Set("Retry-After", "30")
				writeProblem(w, http.StatusTooManyRequests, "rateLimited", "slow down")
			},
			check: func(t *testing.T, _ *reply, err error) {
				var rl *legoacme.RateLimitedError
				if !errors.As(err, &rl) || rl.RetryAfter != "30" || rl.Method != http.MethodPost || !strings.HasSuffix(rl.URL, "/thing") {
					t.Errorf("error = %#v, want a RateLimitedError with Retry-After 30, method and URL", err)
				}
			},
		},
		{
			name:   "alreadyReplaced",
			answer: func(w http.ResponseWriter) { writeProblem(w, http.StatusConflict, "alreadyReplaced", "replaced") },
			check: func(t *testing.T, _ *reply, err error) {
				var ar *legoacme.AlreadyReplacedError
				if !errors.As(err, &ar) || !replacesRefused(err) {
					t.Errorf("error = %v, want an AlreadyReplacedError", err)
				}
			},
		},
		{
			name:   "404 without a body",
			answer: func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) },
			check: func(t *testing.T, _ *reply, err error) {
				if !orderUnknown(err) {
					t.Errorf("error = %v, want an unknown order", err)
				}
			},
		},
		{
			name: "503 HTML",
			answer: func(w http.ResponseWriter) {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, "<html>maintenance</html>")
			},
			check: func(t *testing.T, _ *reply, err error) {
				var ae *answerError
				if !errors.As(err, &ae) || ae.Status != 503 || ae.Body != "<html>maintenance</html>" {
					t.Errorf("error = %v, want an answerError 503 with the body", err)
				}
			},
		},
		{
			name: "Retry-After and Location kept",
			answer: func(w http.ResponseWriter) {
				w.Header().Set("Retry-After", "3")
				w.Header().Set("Location", "https://ca.test/order/1")
				w.WriteHeader(http.StatusCreated)
				_, _ = io.WriteString(w, `{"status":"pending"}`)
			},
			check: func(t *testing.T, r *reply, err error) {
				if err != nil || r.retryAfter() != "3" || r.header.Get("Location") != "https://ca.test/order/1" {
					t.Errorf("reply = %+v, %v; want Retry-After 3 and the Location", r, err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := &fakeCA{answer: func(_ int, w http.ResponseWriter) { tt.answer(w) }}
			p, s, url := newTestPoster(t, ca)
			r, err := p.post(context.Background(), s, url, []byte("{}"), "")
			tt.check(t, r, err)
		})
	}
}

func TestPosterContext(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ca := &fakeCA{answer: func(_ int, w http.ResponseWriter) { <-release }}
	p, s, url := newTestPoster(t, ca)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.post(ctx, s, url, []byte("{}"), "")
	var te *failure.TransientError
	if !errors.As(err, &te) || te.Code != failure.CodeStepTimeout {
		t.Errorf("post() past the deadline = %v, want a step timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("post() returned after %s, want at the deadline", d)
	}
}

func TestPosterUnreachable(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	client, url := srv.Client(), srv.URL
	srv.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p := &poster{http: client, dir: legoacme.Directory{NewNonceURL: url + "/nonce"}}
	_, err := p.post(context.Background(), signer{key: key, kid: url + "/acct/1"}, url+"/order", []byte{}, "")
	var te *failure.TransientError
	if !errors.As(Classify(err, time.Now()), &te) || te.Code != failure.CodeCAUnreachable {
		t.Errorf("Classify(%v) = %v, want the CA unreachable", err, Classify(err, time.Now()))
	}
}

func TestSign(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, kid := range []string{"https://ca.test/acct/1", ""} {
		b, err := sign(signer{key: key, kid: kid}, "n1", "https://ca.test/order", []byte(`{"a":1}`))
		if err != nil {
			t.Fatal(err)
		}
		jws, err := jose.ParseSigned(string(b), []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		h := jws.Signatures[0].Protected
		if h.Nonce != "n1" || h.ExtraHeaders["url"] != "https://ca.test/order" || h.KeyID != kid || (kid == "") != (h.JSONWebKey != nil) {
			t.Errorf("protected header with kid %q = %+v, want nonce, url and either kid or jwk", kid, h)
		}
		payload, err := jws.Verify(key.Public())
		if err != nil || string(payload) != `{"a":1}` {
			t.Errorf("Verify() = %s, %v", payload, err)
		}
	}
}

func TestEABJWS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	hmac := []byte("0123456789abcdef0123456789abcdef")
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding} {
		raw, err := eabJWS(key, "https://ca.test/new-acct", &EAB{KID: "kid-1", HMAC: enc.EncodeToString(hmac)})
		if err != nil {
			t.Fatal(err)
		}
		jws, err := jose.ParseSigned(string(raw), []jose.SignatureAlgorithm{jose.HS256})
		if err != nil {
			t.Fatal(err)
		}
		payload, err := jws.Verify(hmac)
		if err != nil {
			t.Fatalf("EAB does not verify with the HMAC key: %v", err)
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(payload); err != nil || !jwk.IsPublic() {
			t.Errorf("EAB payload %s is not the public JWK: %v", payload, err)
		}
		h := jws.Signatures[0].Protected
		if h.KeyID != "kid-1" || h.ExtraHeaders["url"] != "https://ca.test/new-acct" {
			t.Errorf("EAB header = %+v, want kid-1 and the newAccount URL", h)
		}
	}
}
