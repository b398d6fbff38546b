package ari

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/certflow/certflow/internal/logging"
)

func TestRenewAt(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	w := Window{Start: now.Add(48 * time.Hour), End: now.Add(72 * time.Hour)}
	tests := []struct {
		name string
		w    Window
		rnd  float64
		want time.Time
	}{
		{"start of window", w, 0, w.Start},
		{"middle of window", w, 0.5, now.Add(60 * time.Hour)},
		{"near the end", w, 0.999, w.Start.Add(time.Duration(float64(24*time.Hour) * 0.999))},
		{"out-of-range random is the start", w, 1.5, w.Start},
		{"window ended: now", Window{Start: now.Add(-72 * time.Hour), End: now.Add(-time.Hour)}, 0.5, now},
		{"point in the past of an open window: now", Window{Start: now.Add(-72 * time.Hour), End: now.Add(time.Hour)}, 0.1, now},
		{"empty window: its start", Window{Start: w.Start, End: w.Start}, 0.7, w.Start},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RenewAt(tt.w, now, func() float64 { return tt.rnd })
			if !got.Equal(tt.want) {
				t.Errorf("RenewAt(%v..%v, rnd=%v) = %v, want %v", tt.w.Start, tt.w.End, tt.rnd, got, tt.want)
			}
		})
	}
}

func TestRenewAtRandomStaysInWindow(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	w := Window{Start: now.Add(time.Hour), End: now.Add(3 * time.Hour)}
	var early, late int
	for range 2000 {
		got := RenewAt(w, now, nil)
		if got.Before(w.Start) || !got.Before(w.End) {
			t.Fatalf("RenewAt() = %v, outside [%v, %v)", got, w.Start, w.End)
		}
		if got.Before(now.Add(2 * time.Hour)) {
			early++
		} else {
			late++
		}
	}
	// Uniform: each half gets about 1000; 800 is >9 standard deviations off.
	if early < 800 || late < 800 {
		t.Errorf("RenewAt() split %d/%d across the window halves, want roughly even", early, late)
	}
}

func TestTwoThirdsAndLatest(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		lifetime   time.Duration
		twoThirds  time.Duration // after notBefore
		latestLeft time.Duration // before notAfter
	}{
		{"90 days", 90 * 24 * time.Hour, 60 * 24 * time.Hour, 9 * 24 * time.Hour},
		{"6 days", 6 * 24 * time.Hour, 4 * 24 * time.Hour, 864 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			na := nb.Add(tt.lifetime)
			if got, want := TwoThirds(nb, na), nb.Add(tt.twoThirds); !got.Equal(want) {
				t.Errorf("TwoThirds(%v, %v) = %v, want %v", nb, na, got, want)
			}
			if got, want := Latest(nb, na), na.Add(-tt.latestLeft); !got.Equal(want) {
				t.Errorf("Latest(%v, %v) = %v, want %v", nb, na, got, want)
			}
		})
	}
}

type fakeInfo struct {
	w   Window
	err error
}

func (f fakeInfo) Get(context.Context, string) (Window, time.Duration, error) {
	return f.w, time.Hour, f.err
}

func TestSchedulerRenewAt(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(90 * 24 * time.Hour)
	leaf := &x509.Certificate{NotBefore: nb, NotAfter: na}
	now := nb.Add(time.Hour)
	day := 24 * time.Hour
	tests := []struct {
		name   string
		info   RenewalInfo
		certID string
		want   time.Time
	}{
		{"no ARI client: two thirds", nil, "a.b", nb.Add(60 * day)},
		{"unsupported: two thirds", fakeInfo{err: ErrUnsupported}, "a.b", nb.Add(60 * day)},
		{"failure: two thirds", fakeInfo{err: errors.New("boom")}, "a.b", nb.Add(60 * day)},
		{"no cert ID: two thirds", fakeInfo{w: Window{Start: nb.Add(10 * day), End: nb.Add(11 * day)}}, "", nb.Add(60 * day)},
		{"window mid-point", fakeInfo{w: Window{Start: nb.Add(58 * day), End: nb.Add(62 * day)}}, "a.b", nb.Add(60 * day)},
		{"window past the safety margin is clamped", fakeInfo{w: Window{Start: na.Add(-2 * day), End: na}}, "a.b", na.Add(-9 * day)},
		{"window already passed: now", fakeInfo{w: Window{Start: nb.Add(-2 * day), End: nb.Add(-day)}}, "a.b", now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Scheduler{Info: tt.info, Now: func() time.Time { return now }, Rand: func() float64 { return 0.5 }}
			ctx := logging.Into(context.Background(), slog.New(slog.DiscardHandler))
			got := s.RenewAt(ctx, leaf, tt.certID)
			if !got.Equal(tt.want) {
				t.Errorf("RenewAt() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClamp(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(100 * time.Hour)
	tests := []struct {
		name   string
		t, now time.Time
		want   time.Time
	}{
		{"inside", nb.Add(50 * time.Hour), nb, nb.Add(50 * time.Hour)},
		{"after latest", nb.Add(95 * time.Hour), nb, nb.Add(90 * time.Hour)},
		{"before now", nb, nb.Add(10 * time.Hour), nb.Add(10 * time.Hour)},
		{"latest already past: now", nb.Add(95 * time.Hour), nb.Add(92 * time.Hour), nb.Add(92 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Clamp(tt.t, nb, na, tt.now); !got.Equal(tt.want) {
				t.Errorf("Clamp(%v, now=%v) = %v, want %v", tt.t, tt.now, got, tt.want)
			}
		})
	}
}
