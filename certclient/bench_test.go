package certclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certflow/certflow/certclient/certclienttest"
)

// benchDomains is the number of distinct names the benchmarks serve.
const benchDomains = 100_000

// benchSet holds 100,000 leaf certificates (one shared key, so setup costs
// one ECDSA signature per name) and the structures built from them, each
// built once per process and measured as it is built.
type benchSet struct {
	ca    *certclienttest.CA
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
		s := &benchSet{ca: certclienttest.NewCA(b), names: make([]string, benchDomains), ders: make([][]byte, benchDomains), clients: map[int]*warmClient{}}
		notBefore := time.Now().Add(-time.Hour)
		notAfter := notBefore.Add(90 * 24 * time.Hour)
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Go(func() {
				for i := w; i < benchDomains; i += workers {
					s.names[i] = benchName(i)
					s.ders[i] = s.ca.Issue(b, s.names[i], int64(i+1), notBefore, notAfter)
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
					cert, err := tls.X509KeyPair(s.ca.ChainPEM(s.ders[i]), s.ca.LeafKeyPEM)
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
	c, err := New(Config{BaseURL: "http://delivery.invalid", AllowInsecureHTTP: true, HTTPClient: setDoer{s}, MaxEntries: len(m)})
	if err != nil {
		b.Fatal(err)
	}
	refreshAt := time.Now().Add(24 * time.Hour)
	for _, name := range s.names {
		cert := m[name]
		c.certs.Set(name, &entry{cert: cert, notAfter: cert.Leaf.NotAfter, refreshAt: refreshAt})
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
	c, err := New(Config{BaseURL: "http://delivery.invalid", AllowInsecureHTTP: true, HTTPClient: setDoer{s}, MaxEntries: maxEntries})
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
		Body:       io.NopCloser(bytes.NewReader(d.s.ca.Body(d.s.ders[i]))),
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
	cliCfg := &tls.Config{RootCAs: s.ca.Pool}
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
	// The same lookups on each store BenchmarkZipfHandshake compares (otter
	// is what certclient-warm uses): lock contention on the hit path.
	for _, sv := range storeVariants {
		b.Run(sv.name+"-warm-100000", func(b *testing.B) {
			m := s.staticMap(b)
			c := variantClient(b, sv, Config{BaseURL: "https://delivery.invalid", HTTPClient: setDoer{s}}, len(m), 16)
			refreshAt := time.Now().Add(24 * time.Hour)
			for _, name := range s.names {
				cert := m[name]
				c.certs.Set(name, &entry{cert: cert, notAfter: cert.Leaf.NotAfter, refreshAt: refreshAt})
			}
			lookups(b, s.names, c.GetCertificate)
		})
	}
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

// BenchmarkJunkSNI warms a 10,000-certificate cache with real names, sends
// 100,000 distinct junk names at it from 256 goroutines, and reports the
// share of real names still answered from the cache before and after, the
// backend requests the junk caused and the most under way at once (the
// backend holds each request 1 ms). Run with -benchtime=1x.
func BenchmarkJunkSNI(b *testing.B) {
	s := loadBenchSet(b)
	real := s.names[:10_000]
	for b.Loop() {
		d := &countingDoer{next: setDoer{s}, delay: time.Millisecond}
		c, err := New(Config{BaseURL: "https://delivery.invalid", HTTPClient: d})
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range 64 {
			wg.Go(func() {
				for i := w; i < len(real); i += 64 {
					if _, err := c.Get(context.Background(), real[i]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		r := junkStorm(c, d, real, 100_000, 256)
		b.ReportMetric(r.hitBefore, "hit-before")
		b.ReportMetric(r.hitAfter, "hit-after")
		b.ReportMetric(float64(r.junkRequests), "junk-requests")
		b.ReportMetric(float64(r.busy), "junk-busy")
		b.ReportMetric(float64(r.peak), "peak-fetches")
	}
}

// Parameters of BenchmarkZipfHandshake.
const (
	zipfS          = 1.1    // Zipf exponent of SNI popularity
	zipfCache      = 10_000 // certificates each cache variant holds
	zipfGetWorkers = 64     // concurrent lookups in the hit-ratio batches
	zipfGetBatch   = 10_000 // lookups per variant per round
	zipfTLSWorkers = 16     // concurrent TLS handshakes
	zipfTLSBatch   = 100    // handshakes per variant per round
	// zipfWarm lookups warm each cache before the rounds: a frequency-based
	// policy needs a few hundred thousand to reach its steady state, which
	// a proxy running for days is in (see BenchmarkZipfHitRatio).
	zipfWarm = 500_000
)

// zipfVariant is one way of answering GetCertificate in the benchmark.
type zipfVariant struct {
	name         string
	get          func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	hits, misses atomic.Int64 // from the client's hooks; none for the static map

	getTime   time.Duration
	gets      int
	getLat    []time.Duration
	tlsTime   time.Duration
	handshake int
	tlsLat    []time.Duration
	rates     []float64 // handshakes/s of each round
}

// BenchmarkZipfHandshake compares the cache variants on realistic traffic:
// 100,000 domains, SNI drawn from a Zipf distribution (s = 1.1), 10,000
// certificates cached, misses fetched over HTTP from a delivery-like
// endpoint on 127.0.0.1 that adds 2 to 5 ms per request (the delivery
// Lambda's warm p50 is 5 ms). A static map of all 100,000 certificates is
// the baseline.
//
// Each iteration is one round: every variant in turn (the order rotating)
// answers the same Zipf sequence of zipfGetBatch lookups from zipfGetWorkers
// goroutines (hit ratio, lookup p99), then zipfTLSBatch full TLS 1.3
// handshakes over net.Pipe from zipfTLSWorkers goroutines (handshakes/s,
// handshake p99). Interleaving the variants in one process makes machine
// noise hit them alike, and short rounds (about 0.15 s per variant) spread a
// burst of noise over all of them; b.RunParallel cannot interleave, hence
// the goroutines of its own. Handshakes/s is what the CPU allows: a
// handshake waiting for its certificate leaves the CPU to the others, so
// misses show in the latency, not in the rate. (Interleaving handshake by
// handshake instead would charge one variant's waits to its own latency
// while the CPU it left went to the others.)
// Run with -cpu=2 and a fixed number of rounds:
//
//	go test -run '^$' -bench ZipfHandshake -cpu 2 -benchtime 40x ./certclient
//
// It reports, per variant, hit-<v> (share of lookups answered from the
// cache), hs/s-<v>, p99-ms-<v> (handshake), get-p99-ms-<v> and vs-static-<v>
// (the median over rounds of the variant's handshakes/s divided by the
// static map's in the same round; the goal is at least 0.9).
func BenchmarkZipfHandshake(b *testing.B) {
	s := loadBenchSet(b)
	static := s.staticMap(b)
	srv := httptest.NewServer(newLatencyHandler(s, 2*time.Millisecond, 5*time.Millisecond))
	defer srv.Close()
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * zipfGetWorkers}}

	variants := []*zipfVariant{{name: "static", get: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if c, ok := static[h.ServerName]; ok {
			return c, nil
		}
		return nil, ErrNotFound
	}}}
	for _, sv := range storeVariants {
		v := &zipfVariant{name: sv.name}
		cfg := Config{BaseURL: srv.URL, AllowInsecureHTTP: true, HTTPClient: httpClient, Timeout: 30 * time.Second, Hooks: Hooks{
			OnHit:  func(string) { v.hits.Add(1) },
			OnMiss: func(string) { v.misses.Add(1) },
		}}
		v.get = variantClient(b, sv, cfg, zipfCache, DefaultMaxNegativeEntries).GetCertificate
		variants = append(variants, v)
	}

	// Warm every cache to its steady state on a sequence of its own.
	for _, v := range variants[1:] {
		zipfGets(b, s, v, 1<<32, zipfWarm)
		v.hits.Store(0)
		v.misses.Store(0)
		v.getTime, v.gets, v.getLat = 0, 0, nil
	}
	round := 0
	for b.Loop() {
		for i := range variants {
			v := variants[(i+round)%len(variants)]
			zipfGets(b, s, v, uint64(round), zipfGetBatch)
			zipfHandshakes(b, s, v, uint64(round))
		}
		round++
	}

	for _, v := range variants {
		rate := float64(v.handshake) / v.tlsTime.Seconds()
		ratios := make([]float64, len(v.rates))
		for r := range v.rates {
			ratios[r] = v.rates[r] / variants[0].rates[r]
		}
		slices.Sort(ratios)
		vsStatic := ratios[len(ratios)/2]
		hit := 1.0
		if n := v.hits.Load() + v.misses.Load(); n > 0 {
			hit = float64(v.hits.Load()) / float64(n)
		}
		b.ReportMetric(hit, "hit-"+v.name)
		b.ReportMetric(rate, "hs/s-"+v.name)
		b.ReportMetric(ms(percentile(v.tlsLat, 0.99)), "p99-ms-"+v.name)
		b.ReportMetric(ms(percentile(v.getLat, 0.99)), "get-p99-ms-"+v.name)
		b.ReportMetric(vsStatic, "vs-static-"+v.name)
		b.ReportMetric(zipfHitBound(zipfCache), "hit-bound")
		b.Logf("%-11s hit %.4f  %7.0f handshakes/s (median %.3f of static)  handshake p50 %.3f ms p99 %.3f ms  lookup p50 %.4f ms p99 %.3f ms  %.0f lookups/s",
			v.name, hit, rate, vsStatic, ms(percentile(v.tlsLat, 0.5)), ms(percentile(v.tlsLat, 0.99)),
			ms(percentile(v.getLat, 0.5)), ms(percentile(v.getLat, 0.99)), float64(v.gets)/v.getTime.Seconds())
	}
}

// zipfNames returns worker w's share of a Zipf sequence of n names, the same
// for every variant given the same seed.
func zipfNames(s *benchSet, seed uint64, w, workers, n int) []string {
	rng := rand.New(rand.NewPCG(seed, uint64(w)))
	z := rand.NewZipf(rng, zipfS, 1, uint64(len(s.names)-1))
	names := make([]string, 0, n/workers+1)
	for i := w; i < n; i += workers {
		names = append(names, s.names[z.Uint64()])
	}
	return names
}

// zipfGets runs n lookups of a Zipf sequence through v from zipfGetWorkers
// goroutines, recording the time taken and each lookup's latency.
func zipfGets(b *testing.B, s *benchSet, v *zipfVariant, seed uint64, n int) {
	lat := make([][]time.Duration, zipfGetWorkers)
	seqs := make([][]string, zipfGetWorkers)
	for w := range seqs {
		seqs[w] = zipfNames(s, seed, w, zipfGetWorkers, n)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range zipfGetWorkers {
		wg.Go(func() {
			lat[w] = make([]time.Duration, 0, len(seqs[w]))
			var hello tls.ClientHelloInfo
			for _, name := range seqs[w] {
				hello.ServerName = name
				t0 := time.Now()
				if c, err := v.get(&hello); c == nil || err != nil {
					b.Errorf("%s: no certificate for %q: %v", v.name, name, err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	v.getTime += time.Since(start)
	v.gets += n
	for _, l := range lat {
		v.getLat = append(v.getLat, l...)
	}
}

// zipfHandshakes runs zipfTLSBatch TLS handshakes for a Zipf sequence of
// names with v picking the certificate, from zipfTLSWorkers goroutines.
func zipfHandshakes(b *testing.B, s *benchSet, v *zipfVariant, seed uint64) {
	srvCfg := &tls.Config{GetCertificate: v.get, SessionTicketsDisabled: true}
	cliCfg := &tls.Config{RootCAs: s.ca.Pool}
	lat := make([][]time.Duration, zipfTLSWorkers)
	seqs := make([][]string, zipfTLSWorkers)
	for w := range seqs {
		seqs[w] = zipfNames(s, seed+1<<20, w, zipfTLSWorkers, zipfTLSBatch)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range zipfTLSWorkers {
		wg.Go(func() {
			done := make(chan error, 1)
			for _, name := range seqs[w] {
				cfg := cliCfg.Clone()
				cfg.ServerName = name
				t0 := time.Now()
				sc, cc := net.Pipe()
				go func() {
					err := tls.Server(sc, srvCfg).Handshake()
					sc.Close()
					done <- err
				}()
				err := tls.Client(cc, cfg).Handshake()
				cc.Close()
				if srvErr := <-done; err == nil {
					err = srvErr
				}
				if err != nil {
					b.Errorf("%s: handshake for %q: %v", v.name, name, err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	v.tlsTime += took
	v.handshake += zipfTLSBatch
	v.rates = append(v.rates, zipfTLSBatch/took.Seconds())
	for _, l := range lat {
		v.tlsLat = append(v.tlsLat, l...)
	}
}

// latencyHandler is a delivery-like endpoint for a benchSet that takes
// between min and max to answer, like the delivery Lambda behind API Gateway.
// Its answers are encoded up front: the real endpoint spends its CPU on
// another machine, not on the proxy's.
type latencyHandler struct {
	s        *benchSet
	bodies   [][]byte
	min, max time.Duration
}

func newLatencyHandler(s *benchSet, min, max time.Duration) *latencyHandler {
	h := &latencyHandler{s: s, bodies: make([][]byte, len(s.ders)), min: min, max: max}
	for i, der := range s.ders {
		h.bodies[i] = s.ca.Body(der)
	}
	return h
}

func (h *latencyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(h.min + rand.N(h.max-h.min))
	name := strings.TrimPrefix(r.URL.Path, "/sni/")
	i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "d"), ".bench.example"))
	if err != nil || i < 0 || i >= len(h.bodies) || h.s.names[i] != name {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(h.bodies[i])
}

// zipfHitBound is the best hit ratio any cache of size entries can have on
// the Zipf workload: the share of lookups that go to the size most popular
// names, which an oracle would hold (rand.Zipf draws k with probability
// proportional to (1+k)^-s).
func zipfHitBound(size int) float64 {
	var top, all float64
	for k := range benchDomains {
		p := math.Pow(float64(k+1), -zipfS)
		all += p
		if k < size {
			top += p
		}
	}
	return top / all
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkZipfHitRatio reports the steady-state hit ratio of each store
// alone, without HTTP or TLS: 100,000 names, Zipf s = 1.1, 10,000 entries,
// a miss inserting the name; the first 500,000 of 1,000,000 lookups warm the
// store and are not counted.
func BenchmarkZipfHitRatio(b *testing.B) {
	names := make([]string, benchDomains)
	for i := range names {
		names[i] = benchName(i)
	}
	for _, sv := range storeVariants {
		b.Run(sv.name, func(b *testing.B) {
			var hits, n int
			for b.Loop() {
				s, _ := sv.new(b, zipfCache, 16)
				z := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), zipfS, 1, benchDomains-1)
				e := &entry{}
				for i := range 1_000_000 {
					name := names[z.Uint64()]
					_, ok := s.Get(name)
					if !ok {
						s.Set(name, e)
					}
					if i >= 500_000 {
						n++
						if ok {
							hits++
						}
					}
				}
			}
			b.ReportMetric(float64(hits)/float64(n), "hit-ratio")
			b.ReportMetric(zipfHitBound(zipfCache), "hit-bound")
		})
	}
}
