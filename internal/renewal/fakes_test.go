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
	"github.com/certflow/certflow/internal/flow"
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

type started struct {
	Name  string
	Input flow.Input
}

type fakeStarter struct {
	mu       sync.Mutex
	calls    []started
	existing map[string]bool  // names that already exist
	fail     map[string]error // by domain
}

func (f *fakeStarter) Start(_ context.Context, name string, input any) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := input.(flow.Input)
	if err := f.fail[in.Domain]; err != nil {
		return "", false, err
	}
	f.calls = append(f.calls, started{Name: name, Input: in})
	if f.existing == nil {
		f.existing = map[string]bool{}
	}
	already := f.existing[name]
	f.existing[name] = true
	return "arn:aws:states:us-east-1:123456789012:execution:certflow:" + name, already, nil
}

type lease struct {
	Domain   string
	Old, New time.Time
}

type fakeLeaser struct {
	mu    sync.Mutex
	calls []lease
	fail  map[string]error
}

func (f *fakeLeaser) LeaseRenewal(_ context.Context, domain string, oldRenewAt, newRenewAt time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, lease{domain, oldRenewAt, newRenewAt})
	return f.fail[domain]
}

// fakeDue serves rows per shard, filtered by renewAt <= now, earliest first,
// with integer cursors.
type fakeDue struct {
	mu      sync.Mutex
	rows    map[string][]certstore.Renewal
	fail    map[string]error
	queries int
}

func (f *fakeDue) DueForRenewal(_ context.Context, shard string, now time.Time, limit int, cursor string) ([]certstore.Renewal, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries++
	if err := f.fail[shard]; err != nil {
		return nil, "", err
	}
	var all []certstore.Renewal
	for _, r := range f.rows[shard] {
		if !r.RenewAt.After(now) {
			all = append(all, r)
		}
	}
	slices.SortFunc(all, func(a, b certstore.Renewal) int { return a.RenewAt.Compare(b.RenewAt) })
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

func (f *fakeMover) MoveTimer(_ context.Context, domain, serial string, renewAt time.Time) error {
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
