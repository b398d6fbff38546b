package caproxy

import (
	"testing"
	"time"
)

func TestMaxInWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(offsets ...time.Duration) []time.Time {
		out := make([]time.Time, len(offsets))
		for i, d := range offsets {
			out[i] = t0.Add(d)
		}
		return out
	}
	s, m := time.Second, time.Minute
	tests := []struct {
		name  string
		times []time.Time
		w     time.Duration
		want  int
	}{
		{"none", nil, time.Hour, 0},
		{"one", at(0), time.Hour, 1},
		{"zero window", at(0, 0), 0, 0},
		{"all in one window", at(0, 10*s, 59*s), m, 3},
		{"end is open", at(0, m), m, 1},
		{"just inside", at(0, m-1), m, 2},
		{"same instant", at(5*s, 5*s, 5*s), s, 3},
		{"densest later", at(0, 10*m, 10*m+s, 10*m+2*s, 20*m), 5 * s, 3},
		{"unsorted", at(10*m+2*s, 0, 20*m, 10*m+s, 10*m), 5 * s, 3},
		{"sliding", at(0, 30*s, 60*s, 90*s, 120*s), m, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := maxInWindow(tt.times, tt.w); got != tt.want {
				t.Errorf("maxInWindow(%s) = %d, want %d", tt.w, got, tt.want)
			}
		})
	}
}

func TestRecorderOrders(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &Proxy{}
	r := &p.rec
	r.order(Order{At: t0, Identifiers: []string{"a.example"}, Forwarded: true, Status: 201})
	r.order(Order{At: t0.Add(time.Second), Identifiers: []string{"a.example"}}) // a fault answered
	r.order(Order{At: t0.Add(2 * time.Second), Identifiers: []string{"a.example"}, Forwarded: true, Status: 429})
	r.order(Order{At: t0.Add(time.Hour), Identifiers: []string{"a.example", "b.example"}, Forwarded: true, Status: 201})
	if got := len(p.NewOrders()); got != 4 {
		t.Errorf("NewOrders() has %d, want 4", got)
	}
	if got := len(p.Orders()); got != 2 {
		t.Errorf("Orders() has %d, want 2 (the 201s)", got)
	}
	if got := p.MaxOrdersInWindow(time.Hour); got != 1 {
		t.Errorf("MaxOrdersInWindow(1h) = %d, want 1", got)
	}
	if got := p.MaxOrdersInWindow(time.Hour + 1); got != 2 {
		t.Errorf("MaxOrdersInWindow(1h+1ns) = %d, want 2", got)
	}
	sets := p.OrdersPerIdentifierSet()
	if len(sets) != 2 || sets["a.example"] != 1 || sets["a.example,b.example"] != 1 {
		t.Errorf("OrdersPerIdentifierSet() = %v, want a.example:1 a.example,b.example:1", sets)
	}
}
