package ari

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certflow/certflow/internal/retryafter"
)

// newServer starts a CA stub on 127.0.0.1 whose directory advertises
// renewalInfo when withARI is set, and answers renewalInfo requests with
// handler.
func newServer(t *testing.T, withARI bool, handler http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var dirHits atomic.Int32
	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	mux.HandleFunc("GET /directory", func(w http.ResponseWriter, r *http.Request) {
		dirHits.Add(1)
		if withARI {
			fmt.Fprintf(w, `{"newNonce":"%[1]s/nonce","renewalInfo":"%[1]s/renewal-info/"}`, srv.URL)
			return
		}
		fmt.Fprintf(w, `{"newNonce":"%s/nonce"}`, srv.URL)
	})
	mux.HandleFunc("GET /renewal-info/{id}", handler)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &dirHits
}

func TestClientGet(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		certID     string
		status     int
		retryAfter string
		body       string
		want       Window
		wantRetry  time.Duration
		wantErr    bool
	}{
		{
			name: "window with explanation", certID: "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE", status: 200, retryAfter: "21600",
			body:      `{"suggestedWindow":{"start":"2026-04-01T00:00:00Z","end":"2026-04-03T00:00:00Z"},"explanationURL":"https://ca.example/why"}`,
			want:      Window{Start: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 3, 0, 0, 0, 0, time.UTC), ExplanationURL: "https://ca.example/why"},
			wantRetry: 6 * time.Hour,
		},
		{
			name: "offset times are converted to UTC, HTTP-date Retry-After", certID: "a.b", status: 200, retryAfter: "Sun, 01 Mar 2026 13:00:00 GMT",
			body:      `{"suggestedWindow":{"start":"2026-04-01T02:00:00+02:00","end":"2026-04-02T02:00:00+02:00"}}`,
			want:      Window{Start: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)},
			wantRetry: time.Hour,
		},
		{
			name: "missing Retry-After means six hours", certID: "a.b", status: 200,
			body:      `{"suggestedWindow":{"start":"2026-04-01T00:00:00Z","end":"2026-04-02T00:00:00Z"}}`,
			want:      Window{Start: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)},
			wantRetry: retryafter.DefaultRenewalInfo,
		},
		{
			name: "tiny Retry-After is raised to the minimum", certID: "a.b", status: 200, retryAfter: "1",
			body:      `{"suggestedWindow":{"start":"2026-04-01T00:00:00Z","end":"2026-04-02T00:00:00Z"}}`,
			want:      Window{Start: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)},
			wantRetry: retryafter.Min,
		},
		{
			name: "huge Retry-After is lowered to a day", certID: "a.b", status: 200, retryAfter: "99999999999999",
			body:      `{"suggestedWindow":{"start":"2026-04-01T00:00:00Z","end":"2026-04-02T00:00:00Z"}}`,
			want:      Window{Start: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)},
			wantRetry: retryafter.Max,
		},
		{name: "end before start", certID: "a.b", status: 200, body: `{"suggestedWindow":{"start":"2026-04-02T00:00:00Z","end":"2026-04-01T00:00:00Z"}}`, wantErr: true},
		{name: "no window", certID: "a.b", status: 200, body: `{}`, wantErr: true},
		{name: "not JSON", certID: "a.b", status: 200, body: `<html>`, wantErr: true},
		{name: "unknown certificate", certID: "a.b", status: 404, body: `{"type":"urn:ietf:params:acme:error:malformed"}`, wantErr: true},
		{name: "certificate ID with a slash", certID: "a/../b", status: 200, body: `{}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotPath string
			srv, _ := newServer(t, true, func(w http.ResponseWriter, r *http.Request) {
				gotPath = r.URL.Path
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			})
			c := New(srv.Client(), srv.URL+"/directory")
			c.now = func() time.Time { return now }
			got, retry, err := c.Get(context.Background(), tt.certID)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Get(%q) = %+v, nil; want an error", tt.certID, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get(%q): %v", tt.certID, err)
			}
			if gotPath != "/renewal-info/"+tt.certID {
				t.Errorf("Get(%q) requested %q, want %q", tt.certID, gotPath, "/renewal-info/"+tt.certID)
			}
			if !got.Start.Equal(tt.want.Start) || !got.End.Equal(tt.want.End) || got.ExplanationURL != tt.want.ExplanationURL || got.Start.Location() != time.UTC {
				t.Errorf("Get(%q) = %+v, want %+v", tt.certID, got, tt.want)
			}
			if retry != tt.wantRetry {
				t.Errorf("Get(%q) retryAfter = %v, want %v", tt.certID, retry, tt.wantRetry)
			}
		})
	}
}

func TestClientStatusError(t *testing.T) {
	srv, _ := newServer(t, true, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "gone", http.StatusNotFound)
	})
	_, _, err := New(srv.Client(), srv.URL+"/directory").Get(context.Background(), "a.b")
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusNotFound {
		t.Fatalf("Get() error = %v, want a *StatusError with 404", err)
	}
}

func TestClientUnsupported(t *testing.T) {
	srv, dirHits := newServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		t.Error("renewalInfo requested although the directory has none")
	})
	c := New(srv.Client(), srv.URL+"/directory")
	ctx := context.Background()
	ok, err := c.Supported(ctx)
	if err != nil || ok {
		t.Fatalf("Supported() = %v, %v; want false, nil", ok, err)
	}
	if _, _, err := c.Get(ctx, "a.b"); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Get() error = %v, want ErrUnsupported", err)
	}
	if n := dirHits.Load(); n != 1 {
		t.Errorf("directory fetched %d times, want 1 (cached)", n)
	}
}

func TestClientDirectoryCached(t *testing.T) {
	srv, dirHits := newServer(t, true, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"suggestedWindow":{"start":"2026-04-01T00:00:00Z","end":"2026-04-02T00:00:00Z"}}`)
	})
	c := New(srv.Client(), srv.URL+"/directory")
	ctx := context.Background()
	if ok, err := c.Supported(ctx); err != nil || !ok {
		t.Fatalf("Supported() = %v, %v; want true, nil", ok, err)
	}
	for range 3 {
		if _, _, err := c.Get(ctx, "a.b"); err != nil {
			t.Fatalf("Get(): %v", err)
		}
	}
	if n := dirHits.Load(); n != 1 {
		t.Errorf("directory fetched %d times, want 1", n)
	}
}

func TestClientDirectoryErrorRetried(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	mux := http.NewServeMux()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: mux}}
	mux.HandleFunc("GET /directory", func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, `{"renewalInfo":"%s/ri"}`, srv.URL)
	})
	srv.Start()
	defer srv.Close()
	c := New(srv.Client(), srv.URL+"/directory")
	if _, err := c.Supported(context.Background()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Supported() error = %v, want the 503", err)
	}
	fail.Store(false)
	if ok, err := c.Supported(context.Background()); err != nil || !ok {
		t.Fatalf("Supported() after recovery = %v, %v; want true, nil", ok, err)
	}
}
