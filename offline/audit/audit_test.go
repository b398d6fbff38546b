package audit

import (
	"slices"
	"testing"
	"time"

	"github.com/certflow/certflow/offline/caproxy"
)

func TestAbandoned(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	order := func(id string, s int, names ...string) caproxy.Order {
		return caproxy.Order{URL: "https://ca.test/my-order/" + id, At: at(s), Identifiers: names}
	}
	tests := []struct {
		name       string
		orders     []caproxy.Order
		states     map[string]string
		caRestarts []time.Time
		want       []string // order IDs
	}{{
		name:   "one order completed",
		orders: []caproxy.Order{order("a", 10, "x.example")},
		states: map[string]string{"a": "valid"},
	}, {
		name:   "the last order still in flight as the run ends",
		orders: []caproxy.Order{order("a", 10, "x.example"), order("b", 90, "x.example")},
		states: map[string]string{"a": "valid", "b": "pending"},
	}, {
		name:   "an unfinished order followed by a second one",
		orders: []caproxy.Order{order("a", 10, "x.example"), order("b", 20, "x.example")},
		states: map[string]string{"a": "pending", "b": "valid"},
		want:   []string{"a"},
	}, {
		name:   "an invalid order followed by a new one",
		orders: []caproxy.Order{order("a", 10, "x.example"), order("b", 20, "x.example")},
		states: map[string]string{"a": "invalid", "b": "valid"},
	}, {
		name:       "an order the CA forgot when it restarted",
		orders:     []caproxy.Order{order("a", 10, "x.example"), order("b", 40, "x.example")},
		states:     map[string]string{"a": "ready", "b": "valid"},
		caRestarts: []time.Time{at(30)},
	}, {
		name:   "orders for other names do not count",
		orders: []caproxy.Order{order("a", 10, "x.example"), order("b", 20, "x.example", "www.x.example")},
		states: map[string]string{"a": "pending", "b": "valid"},
	}, {
		name:   "orders before the run began do not count",
		orders: []caproxy.Order{order("a", -10, "x.example"), order("b", 20, "x.example")},
		states: map[string]string{"a": "pending", "b": "valid"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := abandoned(tt.orders, tt.states, t0, tt.caRestarts)
			var ids []string
			for _, o := range got {
				ids = append(ids, caproxy.OrderID(o.URL))
			}
			if !slices.Equal(ids, tt.want) {
				t.Fatalf("abandoned = %v, want %v", ids, tt.want)
			}
		})
	}
}

func TestInFlight(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)
	orders := []caproxy.Order{
		{URL: "https://ca.test/my-order/a", At: t0, Identifiers: []string{"x.example"}},
		{URL: "https://ca.test/my-order/b", At: t0.Add(time.Minute), Identifiers: []string{"x.example"}},
		{URL: "https://ca.test/my-order/c", At: t0, Identifiers: []string{"y.example"}},
		{URL: "https://ca.test/my-order/d", At: t0, Identifiers: []string{"z.example"}},
	}
	states := map[string]string{"a": "pending", "b": "ready", "c": "valid", "d": "invalid"}
	got := InFlight(orders, states)
	if len(got) != 1 || !got["b"] {
		t.Fatalf("InFlight = %v, want only b (the latest unfinished order of its names)", got)
	}
}
