package certclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingDoer counts backend requests and the most that were under way at
// once, holding each for delay.
type countingDoer struct {
	next     Doer
	delay    time.Duration
	requests atomic.Int64
	inflight atomic.Int64
	peak     atomic.Int64
}

func (d *countingDoer) Do(r *http.Request) (*http.Response, error) {
	d.requests.Add(1)
	n := d.inflight.Add(1)
	defer d.inflight.Add(-1)
	for p := d.peak.Load(); n > p && !d.peak.CompareAndSwap(p, n); p = d.peak.Load() {
	}
	if d.delay > 0 {
		time.Sleep(d.delay)
	}
	return d.next.Do(r)
}

// handlerDoer serves requests with a handler in process.
type handlerDoer struct{ h http.Handler }

func (d handlerDoer) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	d.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// junkResult is what a storm of junk SNI names did to a client.
type junkResult struct {
	hitBefore, hitAfter float64 // share of the real names answered without a backend request
	junkRequests        int64   // backend requests during the storm
	busy                int64   // storm handshakes refused with ErrBusy
	peak                int64   // most backend requests under way at once
}

// junkStorm asks c for every real name, then for junk distinct junk names
// from workers goroutines, then for every real name again. d must be c's
// Doer.
func junkStorm(c *Client, d *countingDoer, real []string, junk, workers int) junkResult {
	probe := func() float64 {
		hits := 0
		for _, name := range real {
			before := d.requests.Load()
			if _, err := c.Get(context.Background(), name); err == nil && d.requests.Load() == before {
				hits++
			}
		}
		return float64(hits) / float64(len(real))
	}
	var r junkResult
	r.hitBefore = probe()
	start := d.requests.Load()
	d.peak.Store(0)
	var busy atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < junk; i += workers {
				if _, err := c.Get(context.Background(), fmt.Sprintf("junk-%07d.example.net", i)); errors.Is(err, ErrBusy) {
					busy.Add(1)
				}
			}
		})
	}
	wg.Wait()
	r.junkRequests = d.requests.Load() - start
	r.busy = busy.Load()
	r.peak = d.peak.Load()
	r.hitAfter = probe()
	return r
}

// checkBounded fails the test unless size() comes down to at most max: the
// cache applies evictions in its maintenance, asynchronously, so it is
// given up to 5 s to get there.
func checkBounded(t *testing.T, what string, size func() int, max int) {
	t.Helper()
	n := size()
	for deadline := time.Now().Add(5 * time.Second); n > max && time.Now().Before(deadline); n = size() {
		time.Sleep(time.Millisecond)
	}
	if n > max {
		t.Errorf("%s = %d, want at most %d", what, n, max)
	}
}
