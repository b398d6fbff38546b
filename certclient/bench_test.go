package certclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchDomains is the number of distinct names the benchmarks serve.
const benchDomains = 100_000

// benchSet holds 100,000 leaf certificates (one shared key, so setup costs
// one ECDSA signature per name) and the structures built from them, each
// built once per process and measured as it is built.
type benchSet struct {
	ca    *testCA
	names []string
	ders  [][]byte

	mapOnce  sync.Once
	static   map[string]*tls.Certificate
	mapBytes uint64

	mu      sync.Mutex
	clients map[int]*warmClient // by MaxEntries
}

type warmClient struct {
	c     *Client
	names []string // the names it holds
	bytes uint64
}

var (
	benchSetOnce sync.Once
	benchSetData *benchSet
)

func loadBenchSet(b *testing.B) *benchSet {
	benchSetOnce.Do(func() {
		start := time.Now()
		s := &benchSet{ca: newTestCA(b), names: make([]string, benchDomains), ders: make([][]byte, benchDomains), clients: map[int]*warmClient{}}
		notBefore := time.Now().Add(-time.Hour)
		notAfter := notBefore.Add(90 * 24 * time.Hour)
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Go(func() {
				for i := w; i < benchDomains; i += workers {
					s.names[i] = benchName(i)
					s.ders[i] = s.ca.issue(b, s.names[i], int64(i+1), notBefore, notAfter)
				}
			})
		}
		wg.Wait()
		b.Logf("signed %d certificates in %s", benchDomains, time.Since(start).Round(time.Millisecond))
		benchSetData = s
	})
	return benchSetData
}

func benchName(i int) string { return fmt.Sprintf("d%06d.bench.example", i) }

// heapBytes returns the live heap after a full collection.
func heapBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// staticMap is the baseline: every certificate parsed up front into a map.
func (s *benchSet) staticMap(b *testing.B) map[string]*tls.Certificate {
	s.mapOnce.Do(func() {
		start := time.Now()
		before := heapBytes()
		certs := make([]*tls.Certificate, benchDomains)
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Go(func() {
				for i := w; i < benchDomains; i += workers {
					chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ders[i]}),
						pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ca.cert.Raw})...)
					cert, err := tls.X509KeyPair(chain, s.ca.keyPEM)
					if err != nil {
						b.Error(err)
						return
					}
					certs[i] = &cert
				}
			})
		}
		wg.Wait()
		m := make(map[string]*tls.Certificate, benchDomains)
		for i, c := range certs {
			m[s.names[i]] = c
		}
		s.mapBytes = heapBytes() - before
		s.static = m
		b.Logf("built static map of %d in %s", len(m), time.Since(start).Round(time.Millisecond))
	})
	return s.static
}

// sharedClient returns a Client holding the static map's certificates, as
// the cache of a proxy that has seen every name would. Sharing the parsed
// certificates keeps one copy in memory, so both handshake variants run
// against the same heap.
func (s *benchSet) sharedClient(b *testing.B) *Client {
	m := s.staticMap(b)
	c, err := New(Config{BaseURL: "http://delivery.invalid", HTTPClient: setDoer{s}, MaxEntries: len(m)})
	if err != nil {
		b.Fatal(err)
	}
	refreshAt := time.Now().Add(24 * time.Hour)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range s.names {
		cert := m[name]
		c.put(&entry{name: name, cert: cert, notAfter: cert.Leaf.NotAfter, refreshAt: refreshAt})
	}
	return c
}

// client returns a Client with maxEntries entries, warmed with the first
// maxEntries names through an in-process Doer, so through the real fetch,
// parse and insert path.
func (s *benchSet) client(b *testing.B, maxEntries int) *warmClient {
	s.mu.Lock()
	defer s.mu.Unlock()
	if wc, ok := s.clients[maxEntries]; ok {
		return wc
	}
	start := time.Now()
	before := heapBytes()
	c, err := New(Config{BaseURL: "http://delivery.invalid", HTTPClient: setDoer{s}, MaxEntries: maxEntries})
	if err != nil {
		b.Fatal(err)
	}
	names := s.names[:maxEntries]
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(names); i += workers {
				if _, err := c.Get(context.Background(), names[i]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	wc := &warmClient{c: c, names: names, bytes: heapBytes() - before}
	s.clients[maxEntries] = wc
	b.Logf("warmed a %d-entry client in %s", c.Len(), time.Since(start).Round(time.Millisecond))
	return wc
}

// setDoer answers delivery requests from a benchSet without a network.
type setDoer struct{ s *benchSet }

func (d setDoer) Do(r *http.Request) (*http.Response, error) {
	name := strings.TrimPrefix(r.URL.Path, "/sni/")
	i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "d"), ".bench.example"))
	if err != nil || i < 0 || i >= len(d.s.ders) || d.s.names[i] != name {
		return &http.Response{StatusCode: http.StatusNotFound, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("{}"))}, nil
	}
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Cache-Control": {"max-age=3600"}, "Etag": {strconv.Quote(strconv.Itoa(i))}},
		Body:       io.NopCloser(bytes.NewReader(d.s.ca.body(d.s.ders[i]))),
	}, nil
}

// BenchmarkHandshake measures full TLS 1.3 handshakes (ECDHE, ECDSA P-256,
// client verifies the chain) over net.Pipe, the server picking the
// certificate for a random one of the names with each getter.
func BenchmarkHandshake(b *testing.B) {
	s := loadBenchSet(b)
	b.Run("static-map-100000", func(b *testing.B) {
		m := s.staticMap(b)
		handshakes(b, s, s.names, func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c, ok := m[h.ServerName]; ok {
				return c, nil
			}
			return nil, ErrNotFound
		})
	})
	b.Run("certclient-warm-100000", func(b *testing.B) {
		c := s.sharedClient(b)
		handshakes(b, s, s.names, c.GetCertificate)
	})
}

func handshakes(b *testing.B, s *benchSet, names []string, get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) {
	srvCfg := &tls.Config{GetCertificate: get, SessionTicketsDisabled: true}
	cliCfg := &tls.Config{RootCAs: s.ca.pool}
	rng := rand.New(rand.NewPCG(1, 2))
	done := make(chan error, 1)
	n := 0
	for b.Loop() {
		cfg := cliCfg.Clone()
		cfg.ServerName = names[rng.IntN(len(names))]
		sc, cc := net.Pipe()
		go func() {
			err := tls.Server(sc, srvCfg).Handshake()
			sc.Close()
			done <- err
		}()
		if err := tls.Client(cc, cfg).Handshake(); err != nil {
			b.Fatal(err)
		}
		cc.Close()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "handshakes/s")
}

// BenchmarkGetCertificate measures the cache lookup alone, in parallel.
func BenchmarkGetCertificate(b *testing.B) {
	s := loadBenchSet(b)
	b.Run("static-map-100000", func(b *testing.B) {
		m := s.staticMap(b)
		var mu sync.RWMutex // a real static map needs one too, for reloads
		lookups(b, s.names, func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			mu.RLock()
			defer mu.RUnlock()
			return m[h.ServerName], nil
		})
	})
	b.Run("certclient-warm-100000", func(b *testing.B) {
		c := s.sharedClient(b)
		lookups(b, s.names, c.GetCertificate)
	})
}

func lookups(b *testing.B, names []string, get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), 0))
		hellos := make([]tls.ClientHelloInfo, 1024)
		for i := range hellos {
			hellos[i].ServerName = names[rng.IntN(len(names))]
		}
		i := 0
		for pb.Next() {
			if c, err := get(&hellos[i%len(hellos)]); c == nil || err != nil {
				b.Errorf("no certificate for %q: %v", hellos[i%len(hellos)].ServerName, err)
				return
			}
			i++
		}
	})
}

// BenchmarkMemory reports the live heap held by all 100,000 certificates
// parsed into a map and by a 10,000-entry client filled through its real
// fetch path (measured once, when each is built), and times a lookup.
func BenchmarkMemory(b *testing.B) {
	s := loadBenchSet(b)
	report := func(b *testing.B, bytes uint64, entries int) {
		b.ReportMetric(float64(bytes)/(1<<20), "MiB")
		b.ReportMetric(float64(bytes)/float64(entries), "B/entry")
	}
	b.Run("static-map-100000", func(b *testing.B) {
		m := s.staticMap(b)
		lookups(b, s.names, func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return m[h.ServerName], nil })
		report(b, s.mapBytes, len(m)) // after lookups: ResetTimer drops reported metrics
	})
	b.Run("certclient-10000", func(b *testing.B) {
		wc := s.client(b, 10_000)
		lookups(b, wc.names, wc.c.GetCertificate)
		report(b, wc.bytes, wc.c.Len())
	})
}
