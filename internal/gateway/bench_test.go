package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/certflow/certflow/certclient"
	"github.com/certflow/certflow/certclient/certclienttest"
)

// BenchmarkGatewayHit measures what the gateway adds to a cache hit: each
// iteration looks a cached name up directly in a certclient.Client and then
// asks the gateway, serving from that same client, for it with GET
// /cert/{name} over loopback (one keep-alive connection, as the nginx Lua
// handler and Caddy's HTTP client use). It reports the p50 and p99 of both
// and of the difference.
//
//	go test -run '^$' -bench GatewayHit -cpu 2 ./internal/gateway
func BenchmarkGatewayHit(b *testing.B) {
	ca := certclienttest.NewCA(b)
	d, backend := newDelivery(b, ca)
	var names []string
	for i := range 100 {
		name := fmt.Sprintf("n%03d.example.test", i)
		names = append(names, name)
		d.Set(name, issue(b, ca, name, int64(i+1)))
	}
	client, err := certclient.New(certclient.Config{BaseURL: backend.URL, AllowInsecureHTTP: true})
	if err != nil {
		b.Fatal(err)
	}
	h, err := NewHandler(HandlerConfig{Certificates: client, Metrics: NewMetrics(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	gw := httptest.NewServer(h)
	defer gw.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	ask := func(name string) {
		resp, err := hc.Get(gw.URL + "/cert/" + name)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET /cert/%s: %s", name, resp.Status)
		}
	}
	for _, name := range names { // warm: every name cached, its PEM encoded
		ask(name)
	}
	var direct, viaGateway []time.Duration
	i := 0
	for b.Loop() {
		name := names[i%len(names)]
		i++
		t0 := time.Now()
		if _, err := client.Get(context.Background(), name); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		ask(name)
		direct = append(direct, t1.Sub(t0))
		viaGateway = append(viaGateway, time.Since(t1))
	}
	q := func(d []time.Duration, p float64) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[min(len(s)-1, int(p*float64(len(s))))]) / float64(time.Microsecond)
	}
	b.ReportMetric(q(direct, 0.5), "direct-p50-µs")
	b.ReportMetric(q(direct, 0.99), "direct-p99-µs")
	b.ReportMetric(q(viaGateway, 0.5), "gateway-p50-µs")
	b.ReportMetric(q(viaGateway, 0.99), "gateway-p99-µs")
	b.ReportMetric(q(viaGateway, 0.5)-q(direct, 0.5), "added-p50-µs")
	b.ReportMetric(q(viaGateway, 0.99)-q(direct, 0.99), "added-p99-µs")
}
