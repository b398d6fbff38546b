package renewal

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/certflow/certflow/internal/ari"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/reconcile"
)

type fakeGetter struct {
	certs map[string]*certstore.Certificate
	err   error
}

func (f *fakeGetter) Get(_ context.Context, domain string) (*certstore.Certificate, error) {
	if f.err != nil {
		return nil, f.err
	}
	c, ok := f.certs[domain]
	if !ok {
		return nil, fmt.Errorf("get %q: %w", domain, certstore.ErrNotFound)
	}
	return c, nil
}

type reconciled struct {
	Cert *certstore.Certificate
	By   string
}

// fakeReconciler records what it is asked to reconcile and answers
// Started, or the outcome or error set for the domain.
type fakeReconciler struct {
	mu       sync.Mutex
	calls    []reconciled
	outcomes map[string]reconcile.Outcome
	fail     map[string]error
}

func (f *fakeReconciler) Reconcile(_ context.Context, c *certstore.Certificate, by string) (reconcile.Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail[c.Domain]; err != nil {
		return "", err
	}
	f.calls = append(f.calls, reconciled{c, by})
	if out, ok := f.outcomes[c.Domain]; ok {
		return out, nil
	}
	return reconcile.Started, nil
}

func (f *fakeReconciler) domains() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.Cert.Domain)
	}
	slices.Sort(out)
	return out
}

// fakeDue serves rows per shard, filtered by dueAt <= t, earliest first,
// with integer cursors.
type fakeDue struct {
	mu      sync.Mutex
	rows    map[string][]certstore.Due
	fail    map[string]error
	queries int
}

func (f *fakeDue) DueBy(_ context.Context, shard string, t time.Time, limit int, cursor string) ([]certstore.Due, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries++
	if err := f.fail[shard]; err != nil {
		return nil, "", err
	}
	var all []certstore.Due
	for _, r := range f.rows[shard] {
		if !r.DueAt.After(t) {
			all = append(all, r)
		}
	}
	slices.SortStableFunc(all, func(a, b certstore.Due) int { return a.DueAt.Compare(b.DueAt) })
	start := 0
	if cursor != "" {
		start, _ = strconv.Atoi(cursor)
	}
	end := min(start+limit, len(all))
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	return all[start:end], next, nil
}

type move struct {
	Domain, Serial string
	RenewAt        time.Time
}

type fakeMover struct {
	mu    sync.Mutex
	calls []move
	err   error
}

func (f *fakeMover) MoveTimer(_ context.Context, domain, serial, _ string, renewAt time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.calls = append(f.calls, move{domain, serial, renewAt})
	return nil
}

type fakeARI struct {
	windows map[string]ari.Window // by cert ID
	err     error
	mu      sync.Mutex
	asked   []string
}

func (f *fakeARI) Get(_ context.Context, certID string) (ari.Window, time.Duration, error) {
	f.mu.Lock()
	f.asked = append(f.asked, certID)
	f.mu.Unlock()
	if f.err != nil {
		return ari.Window{}, 0, f.err
	}
	w, ok := f.windows[certID]
	if !ok {
		return ari.Window{}, 0, fmt.Errorf("no window for %q", certID)
	}
	return w, time.Hour, nil
}

type fakeExpiry struct {
	e   certstore.Expiry
	err error
}

func (f fakeExpiry) MinNotAfter(context.Context, time.Time) (certstore.Expiry, error) {
	return f.e, f.err
}

type emitted struct {
	Name  string
	Value float64
	Unit  string
}

type fakeEmitter struct{ got []emitted }

func (f *fakeEmitter) Emit(name string, value float64, unit string, _ map[string]string) error {
	f.got = append(f.got, emitted{name, value, unit})
	return nil
}

// fakePositions keeps ARI re-check positions in memory.
type fakePositions struct {
	mu      sync.Mutex
	cursors map[string]string
	saves   int
	err     error
}

func (f *fakePositions) ARICursor(_ context.Context, shard string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cursors[shard], f.err
}

func (f *fakePositions) SaveARICursor(_ context.Context, shard, cursor string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cursors == nil {
		f.cursors = map[string]string{}
	}
	f.cursors[shard] = cursor
	f.saves++
	return f.err
}
