package acme

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/certflow/certflow/internal/failure"
)

// fakeClock is a clock whose sleeps only move it forward.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

func fixedRand(v float64) func() float64 { return func() float64 { return v } }

func TestScheduleNext(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	const ms = time.Millisecond
	tests := []struct {
		name string
		rand float64
		ras  []string // the Retry-After of each answer in turn
		want []time.Duration
	}{
		{"no Retry-After, no jitter: doubling to the cap", 0, []string{"", "", "", "", "", ""},
			[]time.Duration{250 * ms, 500 * ms, time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second}},
		{"no Retry-After, most jitter: never more than the step", 0.999999, []string{"", "", "", ""},
			[]time.Duration{188 * ms, 375 * ms, 750 * ms, 1500 * ms}},
		{"Retry-After taken in full", 0, []string{"3", "3"}, []time.Duration{3 * time.Second, 3 * time.Second}},
		{"Retry-After plus up to a tenth", 0.999999, []string{"3", "30"}, []time.Duration{3300 * ms, 31 * time.Second}},
		{"Retry-After as a date", 0, []string{now.Add(5 * time.Second).Format(http.TimeFormat)}, []time.Duration{5 * time.Second}},
		{"Retry-After 0 is a second", 0, []string{"0"}, []time.Duration{time.Second}},
		{"Retry-After in the past is a second", 0, []string{now.Add(-time.Minute).Format(http.TimeFormat)}, []time.Duration{time.Second}},
		{"Retry-After of a week is a day", 0, []string{"604800"}, []time.Duration{24 * time.Hour}},
		{"unreadable Retry-After is ignored", 0, []string{"soon", ""}, []time.Duration{250 * ms, 500 * ms}},
		{"Retry-After does not advance the backoff", 0, []string{"", "2", ""}, []time.Duration{250 * ms, 2 * time.Second, 500 * ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSchedule(fixedRand(tt.rand))
			for i, ra := range tt.ras {
				if got := s.next(ra, now).Round(ms); got != tt.want[i] {
					t.Errorf("wait %d after Retry-After %q = %s, want %s", i, ra, got, tt.want[i])
				}
			}
		})
	}
}

func TestPollerUntil(t *testing.T) {
	// The fake clock starts now: a context's deadline is on the real one.
	start := time.Now()
	newPoller := func() (*fakeClock, poller) {
		c := &fakeClock{now: start}
		return c, poller{now: c.Now, sleep: c.Sleep, rand: fixedRand(0), margin: 20 * time.Second}
	}
	// answers returns a get that answers "pending" with each Retry-After
	// in turn, then done.
	answers := func(ras ...string) (func(context.Context) (bool, string, error), *int) {
		calls := 0
		return func(context.Context) (bool, string, error) {
			calls++
			if calls > len(ras) {
				return true, "", nil
			}
			return false, ras[calls-1], nil
		}, &calls
	}

	t.Run("waits as the CA asks", func(t *testing.T) {
		clock, p := newPoller()
		get, calls := answers("3", "3", "")
		if err := p.until(context.Background(), "test", "3", get); err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{3 * time.Second, 3 * time.Second, 3 * time.Second, 250 * time.Millisecond}
		if len(clock.sleeps) != len(want) || *calls != 4 {
			t.Fatalf("sleeps = %v after %d polls, want %v", clock.sleeps, *calls, want)
		}
		for i := range want {
			if clock.sleeps[i] != want[i] {
				t.Errorf("sleep %d = %s, want %s", i, clock.sleeps[i], want[i])
			}
		}
	})

	t.Run("stops before the deadline's margin", func(t *testing.T) {
		clock, p := newPoller()
		ctx, cancel := context.WithDeadline(context.Background(), start.Add(27*time.Second))
		defer cancel()
		get, calls := answers("3", "3", "3", "3")
		err := p.until(ctx, "test", "3", get)
		var te *failure.TransientError
		if !errors.As(err, &te) || te.Code != failure.CodeStepTimeout {
			t.Fatalf("until() = %v, want a step timeout", err)
		}
		// 27 s left: polls at 3 s and 6 s; at 6 s, 21 s are left, less
		// than the 3 s wait plus the 20 s margin.
		if *calls != 2 || clock.now != start.Add(6*time.Second) {
			t.Errorf("%d polls, stopped at +%s; want 2 polls, stopped at +6s", *calls, clock.now.Sub(start))
		}
	})

	t.Run("gives up on a CA that does not decide", func(t *testing.T) {
		clock, p := newPoller()
		get := func(context.Context) (bool, string, error) { return false, "", nil }
		err := p.until(context.Background(), "test", "", get)
		var te *failure.TransientError
		if !errors.As(err, &te) || te.Code != failure.CodeCAError {
			t.Fatalf("until() = %v, want a CA error", err)
		}
		if elapsed := clock.now.Sub(start); elapsed > pollTimeout || elapsed < pollTimeout-maxPoll {
			t.Errorf("gave up after %s, want about %s", elapsed, pollTimeout)
		}
	})

	t.Run("returns get's error", func(t *testing.T) {
		_, p := newPoller()
		boom := errors.New("boom")
		err := p.until(context.Background(), "test", "", func(context.Context) (bool, string, error) { return false, "", boom })
		if !errors.Is(err, boom) {
			t.Errorf("until() = %v, want %v", err, boom)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		_, p := newPoller()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := p.until(ctx, "test", "", func(context.Context) (bool, string, error) { return false, "", nil })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("until() = %v, want context.Canceled", err)
		}
	})
}
