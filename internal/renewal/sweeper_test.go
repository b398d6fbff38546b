package renewal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/certflow/certflow/internal/ari"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/fixtures"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/metrics"
	"github.com/certflow/certflow/internal/reconcile"
	"github.com/certflow/certflow/internal/table"
)

func sweeperEvent(t *testing.T) events.EventBridgeEvent {
	t.Helper()
	ev := fixtures.Event[events.EventBridgeEvent](t, "sweeper.json")
	if ev.DetailType != "Scheduled Event" || ev.Source != "aws.events" {
		t.Fatalf("sweeper.json = %+v, want a scheduled event", ev)
	}
	return ev
}

// idle is an active certificate no execution owns, due when its renewal
// time and the grace have passed.
func idle(domain string, renewAt time.Time) certstore.Due {
	return certstore.Due{Domain: domain, SANs: []string{domain}, Status: certstore.StatusActive, Generation: 1, Serial: "aa" + domain[:1],
		ARICertID: "aki." + domain, RenewAt: renewAt, NotAfter: renewAt.Add(30 * 24 * time.Hour), DueAt: renewAt.Add(certstore.DefaultGrace)}
}

// owned is a domain an execution owns, due at dueAt.
func owned(domain string, status certstore.Status, dueAt time.Time) certstore.Due {
	return certstore.Due{Domain: domain, SANs: []string{domain}, Status: status, Generation: 2, Run: 3,
		Execution: flow.IssueName(domain, 2, 3), DueAt: dueAt}
}

func TestSweeperReconcilesDue(t *testing.T) {
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	shards := table.Shards()
	due := &fakeDue{rows: map[string][]certstore.Due{
		// Renewals overdue by more than the grace are the sweeper's; within
		// the grace they are left to their timers.
		shards[0]: {idle("a.example", now.Add(-2*time.Hour)), idle("b.example", now.Add(-time.Hour-time.Minute)),
			idle("timer.example", now.Add(-time.Minute)), idle("later.example", now.Add(time.Hour))},
		shards[7]: {owned("lost.example", certstore.StatusPending, now.Add(-time.Minute)), owned("slow.example", certstore.StatusFailed, now.Add(-time.Hour)),
			owned("raced.example", certstore.StatusPending, now), idle("broken.example", now.Add(-48*time.Hour)),
			owned("future.example", certstore.StatusPending, now.Add(time.Second))},
	}}
	rec := &fakeReconciler{
		outcomes: map[string]reconcile.Outcome{"lost.example": reconcile.Restarted, "slow.example": reconcile.Running, "raced.example": reconcile.Skipped},
		fail:     map[string]error{"broken.example": errors.New("throttled")},
	}
	s := &Sweeper{Due: due, Reconciler: rec, PageSize: 2, Now: func() time.Time { return now }}
	sum, err := s.Handle(context.Background(), sweeperEvent(t))
	if err != nil {
		t.Fatalf("Handle() error = %v", err)
	}
	want := Summary{Started: 2, Restarted: 1, Running: 1, Skipped: 1, Failed: 1}
	if sum != want {
		t.Errorf("Handle() = %+v, want %+v", sum, want)
	}
	if got, want := rec.domains(), []string{"a.example", "b.example", "lost.example", "raced.example", "slow.example"}; !slices.Equal(got, want) {
		t.Errorf("reconciled %v, want %v", got, want)
	}
	for _, c := range rec.calls {
		if c.By != flow.StartedBySweeper {
			t.Errorf("%s reconciled by %q, want %q", c.Cert.Domain, c.By, flow.StartedBySweeper)
		}
		if c.Cert.Domain == "lost.example" && (c.Cert.Execution != flow.IssueName("lost.example", 2, 3) || c.Cert.Run != 3 || c.Cert.Generation != 2) {
			t.Errorf("reconciled %+v, want the owning execution, run and generation the index projects", c.Cert)
		}
	}
}

func TestSweeperBounds(t *testing.T) {
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	rows := map[string][]certstore.Due{}
	for i, shard := range table.Shards() {
		for j := range 5 {
			rows[shard] = append(rows[shard], idle(fmt.Sprintf("d%02d-%d.example", i, j), now.Add(-time.Hour-time.Duration(j+1)*time.Minute)))
		}
	}
	tests := []struct {
		name          string
		maxReconciles int
		ctx           func() (context.Context, context.CancelFunc)
		wantStart     int
		truncated     bool
	}{
		{"all", 0, func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, 80, false},
		{"capped", 7, func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, 7, true},
		{"deadline too close", 0, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 10*time.Second)
		}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			rec := &fakeReconciler{}
			s := &Sweeper{Due: &fakeDue{rows: rows}, Reconciler: rec, MaxReconciles: tt.maxReconciles, Now: func() time.Time { return now }}
			sum, err := s.Handle(ctx, events.EventBridgeEvent{})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Started != tt.wantStart || len(rec.calls) != tt.wantStart || sum.Truncated != tt.truncated {
				t.Errorf("Handle() = %+v, want %d started, truncated %v", sum, tt.wantStart, tt.truncated)
			}
		})
	}
}

func TestSweeperQueryFailureStillRunsOtherShards(t *testing.T) {
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	shards := table.Shards()
	due := &fakeDue{
		rows: map[string][]certstore.Due{shards[3]: {idle("a.example", now.Add(-2*time.Hour))}},
		fail: map[string]error{shards[1]: errors.New("throttled")},
	}
	s := &Sweeper{Due: due, Reconciler: &fakeReconciler{}, Now: func() time.Time { return now }}
	sum, err := s.Handle(context.Background(), events.EventBridgeEvent{})
	if err == nil {
		t.Fatalf("Handle() error = nil, want the query failure")
	}
	if sum.Started != 1 {
		t.Errorf("Handle() started %d, want 1", sum.Started)
	}
}

func TestARIShardRotates(t *testing.T) {
	base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for h := range 16 {
		seen[ARIShard(base.Add(time.Duration(h)*time.Hour+17*time.Minute), 0)] = true
	}
	if len(seen) != 16 {
		t.Errorf("ARIShard over 16 hours visited %d shards, want 16", len(seen))
	}
	if a, b := ARIShard(base, time.Hour), ARIShard(base.Add(16*time.Hour), time.Hour); a != b {
		t.Errorf("ARIShard(%v) = %s, ARIShard(+16h) = %s, want equal", base, a, b)
	}
}

func TestSweeperARIRecheck(t *testing.T) {
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	shard := ARIShard(now, 0)
	day := 24 * time.Hour
	renewing := idle("renewing.example", now.Add(3*day))
	renewing.Execution = flow.RenewName("renewing.example", renewing.Serial, 1)
	noARI := idle("noari.example", now.Add(5*day))
	noARI.ARICertID = ""
	rows := map[string][]certstore.Due{shard: {
		idle("moved.example", now.Add(20*day)),
		idle("unchanged.example", now.Add(10*day)),
		idle("revoked.example", now.Add(30*day)),
		idle("inside.example", now.Add(8*day+12*time.Hour)),
		idle("due.example", now.Add(-time.Hour)),
		renewing, noARI,
		owned("pending.example", certstore.StatusPending, now.Add(time.Hour)),
	}}
	tests := []struct {
		name      string
		ari       *fakeARI
		moverErr  error
		wantMoves []move
		wantAsked int
		wantErr   bool
	}{
		{
			name: "earlier window moves the renewal; later window, or one the renewal is inside, does not",
			ari: &fakeARI{windows: map[string]ari.Window{
				"aki.moved.example":     {Start: now.Add(4 * day), End: now.Add(6 * day)},
				"aki.unchanged.example": {Start: now.Add(11 * day), End: now.Add(13 * day)},
				"aki.revoked.example":   {Start: now.Add(-2 * day), End: now.Add(-day), ExplanationURL: "https://ca.example/incident"},
				"aki.inside.example":    {Start: now.Add(7 * day), End: now.Add(9 * day)},
			}},
			wantMoves: []move{
				{"moved.example", "aam", now.Add(5 * day)},
				{"revoked.example", "aar", now},
			},
			wantAsked: 4,
		},
		{name: "CA without ARI", ari: &fakeARI{err: ari.ErrUnsupported}, wantAsked: 1},
		{name: "ARI failures are logged, not fatal", ari: &fakeARI{err: errors.New("503")}, wantAsked: 4},
		{
			name:      "stale move is fine",
			ari:       &fakeARI{windows: map[string]ari.Window{"aki.moved.example": {Start: now.Add(4 * day), End: now.Add(6 * day)}}},
			moverErr:  certstore.ErrStale,
			wantAsked: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mv := &fakeMover{err: tt.moverErr}
			s := &Sweeper{Due: &fakeDue{rows: rows}, Reconciler: &fakeReconciler{}, ARI: tt.ari, Mover: mv,
				ARIConcurrency: 1, PageSize: 2, Now: func() time.Time { return now }, Rand: func() float64 { return 0.5 }}
			sum, err := s.Handle(context.Background(), events.EventBridgeEvent{})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Handle() error = %v, want error %v", err, tt.wantErr)
			}
			if len(tt.ari.asked) != tt.wantAsked {
				t.Errorf("asked ARI about %v, want %d certificates", tt.ari.asked, tt.wantAsked)
			}
			got := map[string]move{}
			for _, m := range mv.calls {
				got[m.Domain] = m
			}
			if len(got) != len(tt.wantMoves) || sum.Moved != len(tt.wantMoves) {
				t.Fatalf("moves = %+v (summary %d), want %+v", mv.calls, sum.Moved, tt.wantMoves)
			}
			for _, w := range tt.wantMoves {
				if g := got[w.Domain]; g.Serial != w.Serial || !g.RenewAt.Equal(w.RenewAt) {
					t.Errorf("move of %s = %+v, want %+v", w.Domain, g, w)
				}
			}
			if sum.ARIShard != shard {
				t.Errorf("ARIShard = %q, want %q", sum.ARIShard, shard)
			}
		})
	}
}

// TestSweeperARIResumes: a shard larger than MaxARIChecks is re-checked
// over several visits, each resuming where the last stopped (at a page
// boundary), and the visit after the end starts again.
func TestSweeperARIResumes(t *testing.T) {
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	shard := ARIShard(now, 0)
	var rows []certstore.Due
	for i := range 10 {
		rows = append(rows, idle(fmt.Sprintf("r%d.example", i), now.Add(time.Duration(i+1)*time.Hour)))
	}
	a := &fakeARI{err: errors.New("down")}
	pos := &fakePositions{}
	s := &Sweeper{Due: &fakeDue{rows: map[string][]certstore.Due{shard: rows}}, Reconciler: &fakeReconciler{},
		ARI: a, Mover: &fakeMover{}, Positions: pos, MaxARIChecks: 4, PageSize: 3, ARIConcurrency: 1,
		Now: func() time.Time { return now }}
	visits := []struct {
		asked     []string
		truncated bool
		done      bool
		saved     string
	}{
		{[]string{"r0", "r1", "r2", "r3", "r4", "r5"}, true, false, "6"}, // cap 4, rounded up to whole pages of 3
		{[]string{"r6", "r7", "r8", "r9"}, false, true, ""},
		{[]string{"r0", "r1", "r2", "r3", "r4", "r5"}, true, false, "6"}, // a new pass
	}
	for i, v := range visits {
		a.asked = nil
		sum, err := s.Handle(context.Background(), events.EventBridgeEvent{})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, d := range v.asked {
			want = append(want, "aki."+d+".example")
		}
		if fmt.Sprint(a.asked) != fmt.Sprint(want) || sum.ARIChecked != len(want) || sum.Truncated != v.truncated || sum.ARIShardDone != v.done {
			t.Errorf("visit %d: asked %v, summary %+v; want %v, truncated %v, done %v", i+1, a.asked, sum, want, v.truncated, v.done)
		}
		if got := pos.cursors[shard]; got != v.saved {
			t.Errorf("visit %d: saved position %q, want %q", i+1, got, v.saved)
		}
	}
}

func TestSweeperARIPositionErrors(t *testing.T) {
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	shard := ARIShard(now, 0)
	rows := map[string][]certstore.Due{shard: {idle("late.example", now.Add(time.Hour)), idle("due.example", now.Add(-2*time.Hour))}}
	tests := []struct {
		name      string
		ari       *fakeARI
		pos       *fakePositions
		wantErr   bool
		wantSaves int
	}{
		{"unreadable position: no re-check, the rest of the sweep runs", &fakeARI{}, &fakePositions{err: errors.New("throttled")}, true, 0},
		{"CA without ARI: the position is kept", &fakeARI{err: ari.ErrUnsupported}, &fakePositions{cursors: map[string]string{shard: "1"}}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &fakeReconciler{}
			s := &Sweeper{Due: &fakeDue{rows: rows}, Reconciler: rec, ARI: tt.ari, Mover: &fakeMover{}, Positions: tt.pos,
				Now: func() time.Time { return now }}
			sum, err := s.Handle(context.Background(), events.EventBridgeEvent{})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Handle() error = %v, want error %v", err, tt.wantErr)
			}
			if sum.Started != 1 || len(rec.calls) != 1 {
				t.Errorf("started %d renewals, want the overdue one", sum.Started)
			}
			if tt.pos.saves != tt.wantSaves {
				t.Errorf("positions saved %d times, want %d", tt.pos.saves, tt.wantSaves)
			}
			if tt.pos.err == nil && tt.pos.cursors[shard] != "1" {
				t.Errorf("position = %q, want it kept", tt.pos.cursors[shard])
			}
		})
	}
}

func TestSweeperMinDaysToExpiry(t *testing.T) {
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		expiry   fakeExpiry
		wantDays *float64
		wantErr  bool
	}{
		{"first expiry in 12.5 days", fakeExpiry{e: certstore.Expiry{Domain: "a.example", NotAfter: now.Add(300 * time.Hour)}}, ptr(12.5), false},
		{"no active certificates", fakeExpiry{err: fmt.Errorf("find: %w", certstore.ErrNotFound)}, nil, false},
		{"query failure", fakeExpiry{err: errors.New("throttled")}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			em := &fakeEmitter{}
			s := &Sweeper{Due: &fakeDue{}, Reconciler: &fakeReconciler{}, Expiry: tt.expiry, Metrics: em,
				Now: func() time.Time { return now }}
			sum, err := s.Handle(context.Background(), events.EventBridgeEvent{})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Handle() error = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantDays == nil {
				if sum.MinDaysToExpiry != nil || len(em.got) != 0 {
					t.Errorf("Handle() minDaysToExpiry = %v, metrics %v; want none", sum.MinDaysToExpiry, em.got)
				}
				return
			}
			if sum.MinDaysToExpiry == nil || *sum.MinDaysToExpiry != *tt.wantDays {
				t.Fatalf("Handle() minDaysToExpiry = %v, want %v", sum.MinDaysToExpiry, *tt.wantDays)
			}
			want := emitted{metrics.MinDaysToExpiry, *tt.wantDays, metrics.UnitNone}
			if len(em.got) != 1 || em.got[0] != want {
				t.Errorf("emitted %+v, want [%+v]", em.got, want)
			}
			b, _ := json.Marshal(sum)
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			if m["minDaysToExpiry"] != 12.5 || m["started"] != 0.0 || m["moved"] != 0.0 {
				t.Errorf("summary JSON = %s", b)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestSweeperDetail(t *testing.T) {
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		detail    string
		wantShard string
		wantErr   bool
	}{
		{detail: ``, wantShard: ARIShard(now, DefaultRotation)},
		{detail: `{}`, wantShard: ARIShard(now, DefaultRotation)},
		{detail: `{"ariShard": "07"}`, wantShard: "07"},
		{detail: `{"ariShard": "16"}`, wantErr: true},
		{detail: `{"ariShard": "7"}`, wantErr: true},
		{detail: `{"shard": "07"}`, wantErr: true},
		{detail: `[]`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.detail, func(t *testing.T) {
			due := &fakeDue{rows: map[string][]certstore.Due{"07": {idle("a.example", now.Add(-48*time.Hour))}}}
			st := &fakeReconciler{}
			s := &Sweeper{Due: due, Reconciler: st, ARI: &fakeARI{}, Mover: &fakeMover{},
				Now: func() time.Time { return now }}
			sum, err := s.Handle(context.Background(), events.EventBridgeEvent{Detail: json.RawMessage(tt.detail)})
			if tt.wantErr {
				if err == nil || len(st.calls) != 0 || due.queries != 0 {
					t.Errorf("Handle() = %+v, %v after %d starts and %d queries; want an error and nothing done", sum, err, len(st.calls), due.queries)
				}
				return
			}
			if err != nil || sum.ARIShard != tt.wantShard {
				t.Errorf("Handle() = %+v, %v; want ARI shard %s", sum, err, tt.wantShard)
			}
		})
	}
}
