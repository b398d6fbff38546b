package caproxy

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Order is one newOrder request the proxy received.
type Order struct {
	// At is when the CA answered, or when the proxy answered in its place.
	At time.Time
	// Account is the account URL (the JWS kid) that placed the order.
	Account string
	// Identifiers are the values of the order's identifiers, sorted.
	Identifiers []string
	// Replaces is the ARI certificate ID of the replaced certificate
	// (RFC 9773), empty when the order declared none.
	Replaces string
	Profile  string
	// Forwarded is false when a fault answered in the CA's place.
	Forwarded bool
	// Status is the HTTP status of the CA's answer: 201 when the order was
	// placed, zero when it was not forwarded or the CA did not answer.
	Status int
	// URL is the order's URL (its Location) when placed.
	URL string
}

// Stat counts the requests of one operation.
type Stat struct {
	Requests  int         // received from clients
	Forwarded int         // passed on to the CA
	Status    map[int]int // the CA's answers by HTTP status; 0 counts no answer
	Injected  int         // faults injected (several may hit one request)
}

// Injection is one fault the proxy injected.
type Injection struct {
	At   time.Time
	Op   Op // empty for Down, which hits no one request
	Kind Kind
}

// recorder keeps what the proxy saw. It is safe for concurrent use.
type recorder struct {
	mu         sync.Mutex
	stats      map[Op]*Stat
	orders     []Order
	injections []Injection
	states     map[string]string // order ID -> the last status the CA reported
}

// orderState records the status of an order object the CA returned (to
// newOrder, a POST-as-GET of the order, or finalize).
func (r *recorder) orderState(id, status string) {
	if id == "" || status == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.states == nil {
		r.states = map[string]string{}
	}
	r.states[id] = status
}

func (r *recorder) stat(op Op) *Stat {
	if r.stats == nil {
		r.stats = map[Op]*Stat{}
	}
	s, ok := r.stats[op]
	if !ok {
		s = &Stat{Status: map[int]int{}}
		r.stats[op] = s
	}
	return s
}

func (r *recorder) received(op Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stat(op).Requests++
}

// answered records the CA's answer to a forwarded request; status is zero
// when the CA did not answer.
func (r *recorder) answered(op Op, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stat(op)
	s.Forwarded++
	s.Status[status]++
}

func (r *recorder) order(o Order) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.orders = append(r.orders, o)
}

func (r *recorder) injected(in Injection) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if in.Op != "" {
		r.stat(in.Op).Injected++
	}
	r.injections = append(r.injections, in)
}

// newOrders returns every newOrder request, placed or not.
func (r *recorder) newOrders() []Order {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Order, len(r.orders))
	for i, o := range r.orders {
		o.Identifiers = slices.Clone(o.Identifiers)
		out[i] = o
	}
	return out
}

// placed returns the orders the CA answered 201 Created.
func (r *recorder) placed() []Order {
	return slices.DeleteFunc(r.newOrders(), func(o Order) bool { return o.Status != http.StatusCreated })
}

func (r *recorder) snapshot() map[Op]Stat {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[Op]Stat, len(r.stats))
	for op, s := range r.stats {
		c := *s
		c.Status = maps.Clone(s.Status)
		out[op] = c
	}
	return out
}

func (r *recorder) allInjections() []Injection {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.injections)
}

// IdentifierSet is the key of the order's set of names (its identifiers,
// sorted, comma-separated): the orders of one certificate share it.
func (o Order) IdentifierSet() string { return strings.Join(o.Identifiers, ",") }

// maxInWindow returns the largest number of times in any half-open window
// [t, t+w). A fullest window can always be slid right until it starts at
// one of the times, so only those starts are tried.
func maxInWindow(times []time.Time, w time.Duration) int {
	if w <= 0 {
		return 0
	}
	sorted := slices.Clone(times)
	slices.SortFunc(sorted, func(a, b time.Time) int { return a.Compare(b) })
	best, end := 0, 0
	for start := range sorted {
		limit := sorted[start].Add(w)
		for end < len(sorted) && sorted[end].Before(limit) {
			end++
		}
		best = max(best, end-start)
	}
	return best
}
