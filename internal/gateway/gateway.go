// Package gateway is certflow-gateway: a small HTTP server that runs beside
// each edge proxy, on loopback or a unix socket, and hands the proxy the
// certificate for each TLS handshake. It fetches from the delivery endpoint
// (GET {backend}/sni/{name}, SigV4-signed with the instance or task role)
// and caches through certclient, so it refreshes ahead of expiry, keeps
// serving a cached certificate while the backend is down, never serves an
// expired one, and keeps junk SNI away from the backend.
//
// Routes:
//
//	GET /caddy?server_name={name}  Caddy's get_certificate http module (Caddy 2.6+):
//	                               200 PEM, or 204 No Content when there is no certificate
//	GET /cert/{name}               200 PEM, or 404 when there is no certificate
//	                               (nginx ssl_certificate_by_lua; see docs/edge.md)
//	GET /healthz                   200 "ok" while the gateway serves
//	GET /metrics                   Prometheus metrics
//
// A PEM answer is the private key (PKCS #8, "PRIVATE KEY") followed by the
// certificate chain, leaf first: the order of the delivery endpoint's PEM
// representation. Both routes answer 503 with Retry-After when the name is
// not cached and the gateway is already making as many backend requests as
// it allows (certclient.ErrBusy), and 502 when the backend failed for a name
// that is not cached. Answers are never cached by HTTP caches (no-store):
// they carry private keys.
//
// Caddy 2.6 treats any answer but 200 as an error of that one handshake and
// logs it; Caddy 2.8 and later take 204 as "this endpoint manages no
// certificate for the name" and log nothing. Caddy does not cache what the
// module returns, so every handshake asks the gateway: hits must be cheap,
// and they are, the PEM of each cached certificate being encoded once.
//
// The gateway has no authentication of its own, so it listens on loopback
// addresses or unix sockets only.
package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/certflow/certflow/certclient"
)

// MediaTypePEM is the content type of a PEM answer.
const MediaTypePEM = "application/x-pem-file"

// Getter returns the certificate for a server name; *certclient.Client
// implements it. Its errors wrap certclient.ErrNotFound,
// certclient.ErrInvalidName or certclient.ErrBusy when those apply.
type Getter interface {
	Get(ctx context.Context, name string) (*tls.Certificate, error)
}

var _ Getter = (*certclient.Client)(nil)

// Handler serves the gateway's routes. It is safe for concurrent use.
type Handler struct {
	certs   Getter
	timeout time.Duration
	logger  *slog.Logger
	metrics *Metrics
	mux     *http.ServeMux
	// pems holds the PEM answer of each certificate certs returned, by
	// pointer: certclient hands out the same *tls.Certificate for as long as
	// it caches it, so a hit costs a map lookup instead of an encoding.
	pems *otter.Cache[*tls.Certificate, []byte]
}

// HandlerConfig holds what a Handler needs.
type HandlerConfig struct {
	// Certificates answers lookups. Required.
	Certificates Getter
	// MaxEntries bounds the PEM answers kept; set it to the certificate
	// cache's size. Default certclient.DefaultMaxEntries.
	MaxEntries int
	// Timeout bounds how long one request waits for a certificate.
	// Default certclient.DefaultTimeout plus a second.
	Timeout time.Duration
	// Metrics are served at /metrics and counted by the routes; nil serves
	// no metrics.
	Metrics *Metrics
	// Logger receives failures; nil means slog.Default().
	Logger *slog.Logger
}

// NewHandler returns a Handler for cfg.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Certificates == nil {
		return nil, errors.New("gateway: Certificates is required")
	}
	size := cfg.MaxEntries
	if size <= 0 {
		size = certclient.DefaultMaxEntries
	}
	pems, err := otter.New(&otter.Options[*tls.Certificate, []byte]{MaximumSize: size})
	if err != nil {
		return nil, fmt.Errorf("gateway: PEM cache: %w", err)
	}
	h := &Handler{certs: cfg.Certificates, timeout: cfg.Timeout, logger: cfg.Logger, metrics: cfg.Metrics, pems: pems, mux: http.NewServeMux()}
	if h.timeout <= 0 {
		h.timeout = certclient.DefaultTimeout + time.Second
	}
	if h.logger == nil {
		h.logger = slog.Default()
	}
	h.mux.HandleFunc("GET /caddy", h.caddy)
	h.mux.HandleFunc("GET /cert/{name}", h.cert)
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	if h.metrics != nil {
		h.mux.Handle("GET /metrics", promhttp.HandlerFor(h.metrics.registry, promhttp.HandlerOpts{}))
	}
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// caddy answers Caddy's get_certificate http module, which sends
// server_name, signature_schemes and cipher_suites as query parameters
// (modules/caddytls/certmanagers.go, HTTPCertGetter). The last two are
// ignored: certflow holds one certificate per name.
func (h *Handler) caddy(w http.ResponseWriter, r *http.Request) {
	h.answer(w, r, "caddy", r.URL.Query().Get("server_name"), http.StatusNoContent)
}

// cert answers GET /cert/{name}.
func (h *Handler) cert(w http.ResponseWriter, r *http.Request) {
	h.answer(w, r, "cert", r.PathValue("name"), http.StatusNotFound)
}

// answer writes the PEM for name, or noCert when there is no certificate.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, route, name string, noCert int) {
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	w.Header().Set("Cache-Control", "no-store")
	cert, err := h.certs.Get(ctx, name)
	status := http.StatusOK
	switch {
	case err == nil:
	case errors.Is(err, certclient.ErrNotFound), errors.Is(err, certclient.ErrInvalidName):
		status = noCert
	case errors.Is(err, certclient.ErrBusy):
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		status = http.StatusServiceUnavailable
	default:
		// certclient reported the backend failure through its hooks
		// already; this is the same failure seen by one request.
		status = http.StatusBadGateway
	}
	h.metrics.request(route, status)
	if status != http.StatusOK {
		if status != noCert {
			h.logger.WarnContext(ctx, "no certificate to serve", slog.String("domain", name), slog.Int("status", status), slog.Any("error", err))
		}
		if status == http.StatusNoContent {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(http.StatusText(status) + "\n"))
		return
	}
	body, err := h.pem(cert)
	if err != nil {
		h.logger.ErrorContext(ctx, "encode certificate", slog.String("domain", name), slog.Any("error", err))
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", MediaTypePEM)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// pem returns the PEM answer for cert, encoding it on first use.
func (h *Handler) pem(cert *tls.Certificate) ([]byte, error) {
	if b, ok := h.pems.GetIfPresent(cert); ok {
		return b, nil
	}
	b, err := encodePEM(cert)
	if err != nil {
		return nil, err
	}
	h.pems.Set(cert, b)
	return b, nil
}

// encodePEM returns the private key of cert followed by its chain.
func encodePEM(cert *tls.Certificate) ([]byte, error) {
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	defer clear(key)
	out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})
	for _, der := range cert.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out, nil
}

// Metrics are the gateway's Prometheus metrics, on a registry of their own.
type Metrics struct {
	registry      *prometheus.Registry
	hits          prometheus.Counter
	misses        prometheus.Counter
	negativeHits  prometheus.Counter
	backendErrors prometheus.Counter
	staleServes   prometheus.Counter
	fetchSeconds  prometheus.Histogram
	requests      *prometheus.CounterVec
}

// NewMetrics returns the gateway's metrics, with Go runtime and process
// metrics, registered on a new registry.
func NewMetrics() *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "certflow_gateway", Name: name, Help: help})
	}
	m := &Metrics{
		registry:      prometheus.NewRegistry(),
		hits:          counter("cache_hits_total", "Lookups answered with a cached certificate."),
		misses:        counter("cache_misses_total", "Lookups that had to ask the delivery endpoint."),
		negativeHits:  counter("negative_hits_total", "Lookups refused from the cache: the name was recently not found or failed."),
		backendErrors: counter("backend_errors_total", "Failed requests to the delivery endpoint (404 is not a failure)."),
		staleServes:   counter("stale_serves_total", "Cached certificates served although their last refresh failed (still valid)."),
		fetchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "certflow_gateway", Name: "fetch_duration_seconds",
			Help:    "Duration of requests to the delivery endpoint.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "certflow_gateway", Name: "requests_total",
			Help: "Certificate requests answered, by route and HTTP status.",
		}, []string{"route", "code"}),
	}
	m.registry.MustRegister(m.hits, m.misses, m.negativeHits, m.backendErrors, m.staleServes, m.fetchSeconds, m.requests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Hooks returns certclient hooks that count into m.
func (m *Metrics) Hooks() certclient.Hooks {
	return certclient.Hooks{
		OnHit:         func(string) { m.hits.Inc() },
		OnMiss:        func(string) { m.misses.Inc() },
		OnNegativeHit: func(string) { m.negativeHits.Inc() },
		OnStale:       func(string) { m.staleServes.Inc() },
		OnError:       func(string, error) { m.backendErrors.Inc() },
		OnFetch:       func(_ string, took time.Duration, _ error) { m.fetchSeconds.Observe(took.Seconds()) },
	}
}

// Registry returns the registry the metrics are on, to add more.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

func (m *Metrics) request(route string, status int) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
}
