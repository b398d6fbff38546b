package budget

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/table"
	"github.com/certflow/certflow/offline/offlinetest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a test clock. tick, when set, advances it after every reading.
type clock struct {
	mu   sync.Mutex
	t    time.Time
	tick func() time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	if c.tick != nil {
		c.t = c.t.Add(c.tick())
	}
	return t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// countingDB counts the DynamoDB calls a Schedule makes.
type countingDB struct {
	DynamoDB
	calls atomic.Int64
}

func (c *countingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.calls.Add(1)
	return c.DynamoDB.UpdateItem(ctx, in, optFns...)
}

// retryingDB sends every conditional write twice and answers with the
// second result, as the SDK does when the answer to a write that landed is
// lost and it retries.
type retryingDB struct{ DynamoDB }

func (r retryingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if in.ConditionExpression != nil {
		if _, err := r.DynamoDB.UpdateItem(ctx, in, optFns...); err != nil && !errors.As(err, new(*types.ConditionalCheckFailedException)) {
			return nil, err
		}
	}
	return r.DynamoDB.UpdateItem(ctx, in, optFns...)
}

// newSchedule returns a Schedule over DynamoDB Local, in a budget of its
// own named after the test, and the counter of its calls.
func newSchedule(t testing.TB, cfg Config) (*Schedule, *countingDB) {
	t.Helper()
	if testDB == nil {
		offlinetest.Require(t)
	}
	db := &countingDB{DynamoDB: testDB}
	cfg.Table = testTable
	if cfg.Name == "" {
		cfg.Name = t.Name()
	}
	s, err := New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

// reserveConcurrently makes n Reserve calls, callers at a time, and fails
// the test on any error.
func reserveConcurrently(t *testing.T, s *Schedule, n, callers int) []Reservation {
	t.Helper()
	rs := make([]Reservation, n)
	errs := make([]error, n)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range callers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				rs[i], errs[i] = s.Reserve(context.Background())
			}
		})
	}
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if err != nil {
			if failed < 3 {
				t.Errorf("Reserve() error = %v", err)
			}
			failed++
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent Reserve calls failed, want 0", failed, n)
	}
	return rs
}

// checkSchedule checks what the package promises of rs, all the
// reservations of one schedule: distinct numbers, slots of one ring
// position a step apart, at most limit slots in any half-open interval of
// a step, and at most limit orders in any window when each is placed up to
// margin after its slot.
func checkSchedule(t *testing.T, rs []Reservation, limit int, window, margin, step time.Duration) {
	t.Helper()
	bySeq := slices.Clone(rs)
	slices.SortFunc(bySeq, func(a, b Reservation) int { return int(a.Seq - b.Seq) })
	last := map[int64]Reservation{}
	for i, r := range bySeq {
		if i > 0 && r.Seq == bySeq[i-1].Seq {
			t.Errorf("seq %d reserved twice", r.Seq)
		}
		pos := (r.Seq - 1) % int64(limit)
		if prev, ok := last[pos]; ok && r.At.Sub(prev.At) < step {
			t.Errorf("position %d: seq %d at %v and seq %d at %v, want at least %v apart", pos, prev.Seq, prev.At, r.Seq, r.At, step)
		}
		last[pos] = r
	}
	slots := make([]time.Time, len(rs))
	placed := make([]time.Time, len(rs))
	rnd := rand.New(rand.NewPCG(1, 2))
	for i, r := range rs {
		slots[i] = r.At
		placed[i] = r.At.Add(time.Duration(rnd.Int64N(int64(margin) + 1)))
	}
	slices.SortFunc(slots, time.Time.Compare)
	slices.SortFunc(placed, time.Time.Compare)
	for i := 0; i+limit < len(rs); i++ {
		if d := slots[i+limit].Sub(slots[i]); d < step {
			t.Fatalf("%d slots from %v to %v (%v), want at most %d in %v", limit+1, slots[i], slots[i+limit], d, limit, step)
		}
		if d := placed[i+limit].Sub(placed[i]); d < window {
			t.Fatalf("%d orders placed from %v to %v (%v), want at most %d in %v", limit+1, placed[i], placed[i+limit], d, limit, window)
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		wantStep time.Duration
		wantErr  bool
	}{
		{"default margin 1%", Config{Table: "t", Limit: 300, Window: 3 * time.Hour}, 3*time.Hour + 108*time.Second, false},
		{"margin at least 5 seconds", Config{Table: "t", Limit: 5, Window: time.Minute}, 65 * time.Second, false},
		{"step rounded up to a second", Config{Table: "t", Limit: 5, Window: 1500 * time.Millisecond, Margin: 600 * time.Millisecond}, 3 * time.Second, false},
		{"explicit margin", Config{Table: "t", Limit: 5, Window: time.Hour, Margin: 10 * time.Second}, time.Hour + 10*time.Second, false},
		{"no table", Config{Limit: 5, Window: time.Hour}, 0, true},
		{"no limit", Config{Table: "t", Window: time.Hour}, 0, true},
		{"no window", Config{Table: "t", Limit: 5}, 0, true},
		{"negative margin", Config{Table: "t", Limit: 5, Window: time.Hour, Margin: -time.Second}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(nil, tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(%+v) error = %v, want error %v", tt.cfg, err, tt.wantErr)
			}
			if err == nil && s.step != tt.wantStep {
				t.Errorf("New(%+v) step = %v, want %v", tt.cfg, s.step, tt.wantStep)
			}
		})
	}
}

func TestSlotKey(t *testing.T) {
	tests := []struct {
		limit int
		seq   int64
		want  string
	}{
		{1, 1, "SLOT#0"},
		{1, 7, "SLOT#0"},
		{10, 10, "SLOT#9"},
		{11, 1, "SLOT#00"},
		{11, 11, "SLOT#10"},
		{300, 1, "SLOT#000"},
		{300, 300, "SLOT#299"},
		{300, 301, "SLOT#000"},
		{1000, 1000, "SLOT#999"},
	}
	for _, tt := range tests {
		s, err := New(nil, Config{Table: "t", Name: "ca", Limit: tt.limit, Window: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		k := s.slotKey(tt.seq)
		pk, sk := k[table.AttrPK].(*types.AttributeValueMemberS).Value, k[table.AttrSK].(*types.AttributeValueMemberS).Value
		if pk != "BUDGET#ca" || sk != tt.want {
			t.Errorf("slotKey(%d) with limit %d = %s %s, want BUDGET#ca %s", tt.seq, tt.limit, pk, sk, tt.want)
		}
	}
}

func TestReserveFirstIsImmediate(t *testing.T) {
	tests := []struct {
		name string
		now  time.Time
		want time.Time
	}{
		{"on a second", t0, t0},
		{"within a second, rounded up", t0.Add(300 * time.Millisecond), t0.Add(time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, db := newSchedule(t, Config{Limit: 300, Window: 3 * time.Hour, Now: func() time.Time { return tt.now }})
			r, err := s.Reserve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if want := (Reservation{Seq: 1, At: tt.want}); r != want {
				t.Errorf("Reserve() = %+v, want %+v", r, want)
			}
			if got := db.calls.Load(); got != 2 {
				t.Errorf("Reserve() made %d DynamoDB calls, want 2", got)
			}
		})
	}
}

func TestReserveBurst(t *testing.T) {
	const limit = 5
	c := &clock{t: t0}
	s, _ := newSchedule(t, Config{Limit: limit, Window: time.Hour, Now: c.Now})
	step := time.Hour + 36*time.Second // the margin is 1% of the window
	later := t0.Add(2*step + time.Hour)
	steps := []struct {
		now  time.Time
		want time.Time
	}{
		// A burst of limit at once, then the next one a step after the first.
		{t0, t0}, {t0, t0}, {t0, t0}, {t0, t0}, {t0, t0},
		{t0, t0.Add(step)},
		// A step after the burst, its positions are free again.
		{t0.Add(step), t0.Add(step)}, {t0.Add(step), t0.Add(step)}, {t0.Add(step), t0.Add(step)}, {t0.Add(step), t0.Add(step)},
		// Position 0 holds seq 6 at t0+step.
		{t0.Add(step), t0.Add(2 * step)},
		// Long after, the window is free.
		{later, later},
	}
	var all []Reservation
	for i, st := range steps {
		c.Set(st.now)
		r, err := s.Reserve(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if want := (Reservation{Seq: int64(i + 1), At: st.want}); r != want {
			t.Errorf("reservation %d at %v: Reserve() = %+v, want %+v", i+1, st.now, r, want)
		}
		all = append(all, r)
	}
	checkSchedule(t, all, limit, time.Hour, 36*time.Second, step)
}

func TestReserveConcurrent(t *testing.T) {
	const limit = 300
	window, margin := 3*time.Hour, 108*time.Second
	s, db := newSchedule(t, Config{Limit: limit, Window: window, Now: func() time.Time { return t0 }})
	step := window + margin

	first := reserveConcurrently(t, s, limit, limit)
	for _, r := range first {
		if !r.At.Equal(t0) {
			t.Fatalf("first %d at once: seq %d at %v, want %v (immediate)", limit, r.Seq, r.At, t0)
		}
	}
	if got := db.calls.Load(); got != 2*limit {
		t.Errorf("first %d reservations made %d DynamoDB calls, want %d", limit, got, 2*limit)
	}

	db.calls.Store(0)
	second := reserveConcurrently(t, s, limit, limit)
	for _, r := range second {
		if !r.At.Equal(t0.Add(step)) {
			t.Fatalf("next %d at once: seq %d at %v, want %v (the next window)", limit, r.Seq, r.At, t0.Add(step))
		}
	}
	if got := db.calls.Load(); got != 3*limit {
		t.Errorf("next %d reservations made %d DynamoDB calls, want %d", limit, got, 3*limit)
	}
	checkSchedule(t, append(first, second...), limit, window, margin, step)
}

// TestReserveInterleaved lets four times as many callers as the limit race
// on a clock that moves, so both writes and overtaking happen, and checks
// the invariant over all the reservations.
func TestReserveInterleaved(t *testing.T) {
	const limit, callers, n = 10, 40, 400
	window, margin := 10*time.Second, time.Second
	c := &clock{t: t0, tick: func() time.Duration { return rand.N(50 * time.Millisecond) }}
	s, _ := newSchedule(t, Config{Limit: limit, Window: window, Now: c.Now})
	rs := reserveConcurrently(t, s, n, callers)
	checkSchedule(t, rs, limit, window, margin, window+margin)
	last, err := s.next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d reservations took %d numbers (%d overtaken)", n, last-1, last-1-n)
}

func TestClaimOvertaken(t *testing.T) {
	const limit = 3
	ctx := context.Background()
	s, db := newSchedule(t, Config{Limit: limit, Window: time.Hour, Now: func() time.Time { return t0 }})
	k, err := s.next(ctx) // seq 1, not written yet
	if err != nil {
		t.Fatal(err)
	}
	var rs []Reservation
	for range limit {
		r, err := s.Reserve(ctx) // seq 2..4; 4 takes position 0
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	db.calls.Store(0)
	_, ok, err := s.claim(ctx, k)
	if err != nil || ok {
		t.Errorf("claim(%d) after seq %d took its position = %v, %v, want not ok", k, k+limit, ok, err)
	}
	if got := db.calls.Load(); got != 1 {
		t.Errorf("overtaken claim made %d DynamoDB calls, want 1 (write B skipped)", got)
	}
	// Reserve starts again with a new number.
	r, err := s.Reserve(ctx)
	if err != nil || r.Seq != 5 {
		t.Errorf("Reserve() = %+v, %v, want seq 5", r, err)
	}
	checkSchedule(t, append(rs, r), limit, time.Hour, 36*time.Second, time.Hour+36*time.Second)
}

func TestReserveAfterRetriedWrite(t *testing.T) {
	const limit = 3
	ctx := context.Background()
	step := time.Hour + 36*time.Second
	s, _ := newSchedule(t, Config{Limit: limit, Window: time.Hour, Now: func() time.Time { return t0 }})
	s.client = retryingDB{s.client}
	var got []Reservation
	for range 2 * limit { // write A, then write B
		r, err := s.Reserve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	want := []Reservation{{Seq: 1, At: t0}, {Seq: 2, At: t0}, {Seq: 3, At: t0}, {Seq: 4, At: t0.Add(step)}, {Seq: 5, At: t0.Add(step)}, {Seq: 6, At: t0.Add(step)}}
	if !slices.Equal(got, want) {
		t.Errorf("reservations with retried writes = %v, want %v (no number or slot lost)", got, want)
	}
}

func TestReserveTakesOverCrashedPosition(t *testing.T) {
	const limit = 3
	ctx := context.Background()
	step := time.Hour + 36*time.Second
	s, _ := newSchedule(t, Config{Limit: limit, Window: time.Hour, Now: func() time.Time { return t0 }})
	var got []Reservation
	reserve := func() {
		t.Helper()
		r, err := s.Reserve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	crash := func() {
		t.Helper()
		if _, err := s.next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	crash()   // seq 1 never writes position 0
	reserve() // seq 2, position 1
	reserve() // seq 3, position 2
	reserve() // seq 4 takes position 0 over, still empty
	crash()   // seq 5 never writes position 1
	reserve() // seq 6, position 2, a step after seq 3
	reserve() // seq 7, position 0, a step after seq 4
	reserve() // seq 8 takes position 1 over, a step after seq 2
	want := []Reservation{
		{Seq: 2, At: t0}, {Seq: 3, At: t0}, {Seq: 4, At: t0},
		{Seq: 6, At: t0.Add(step)}, {Seq: 7, At: t0.Add(step)}, {Seq: 8, At: t0.Add(step)},
	}
	if !slices.Equal(got, want) {
		t.Errorf("reservations = %v, want %v", got, want)
	}
	checkSchedule(t, got, limit, time.Hour, 36*time.Second, step)
}

// TestAdmit: an order is admitted once its slot has come and its ring
// position admitted nothing for a step; a late reservation whose
// successor was admitted first waits for the position.
func TestAdmit(t *testing.T) {
	const limit = 2
	ctx := context.Background()
	step := time.Hour + 36*time.Second
	c := &clock{t: t0}
	s, _ := newSchedule(t, Config{Limit: limit, Window: time.Hour, Now: c.Now})
	var rs []Reservation
	for range 3 {
		r, err := s.Reserve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	r1, r2, r3 := rs[0], rs[1], rs[2] // r1 and r3 share position 0; r3 at t0+step
	admit := func(r Reservation, want time.Duration) Admission {
		t.Helper()
		a, got, err := s.Admit(ctx, r)
		if err != nil || got != want {
			t.Errorf("Admit(%+v) at %v = %v, %v, want %v", r, c.Now(), got, err, want)
		}
		return a
	}
	admit(r2, 0)    // on time
	admit(r3, step) // early: wait for its slot
	c.Set(t0.Add(step + time.Second))
	a3 := admit(r3, 0) // r3 on time, r1 never came
	admit(r1, step)    // r1 late: its position admitted r3 just now
	c.Set(t0.Add(2*step + time.Second))
	a1 := admit(r1, 0) // a step after r3
	if _, _, err := s.Admit(ctx, Reservation{}); err == nil {
		t.Error("Admit(zero Reservation) error = nil, want an error")
	}
	// An admission given back (its order never reached the CA) puts the
	// position's stamp back: r3's was overwritten by r1's, so giving r3
	// back changes nothing; giving r1 back restores r3's stamp.
	if err := s.Release(ctx, a3); err != nil {
		t.Fatal(err)
	}
	admit(r1, step) // r1's own stamp still holds the position
	if err := s.Release(ctx, a1); err != nil {
		t.Fatal(err)
	}
	admit(r1, 0) // given back: admitted again at once
}

func TestItemLayout(t *testing.T) {
	ctx := context.Background()
	s, _ := newSchedule(t, Config{Name: "layout", Limit: 300, Window: 3 * time.Hour, Now: func() time.Time { return t0 }})
	if _, err := s.Reserve(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		sk   string
		want map[string]string
	}{
		{"SEQ", map[string]string{"seq": "1"}},
		{"SLOT#000", map[string]string{"seq": "1", "slot": fmt.Sprint(t0.UnixMilli())}},
	}
	for _, tt := range tests {
		out, err := testDB.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(testTable),
			Key: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: "BUDGET#layout"},
				"sk": &types.AttributeValueMemberS{Value: tt.sk},
			},
			ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for name, v := range out.Item {
			if n, ok := v.(*types.AttributeValueMemberN); ok {
				got[name] = n.Value
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("item BUDGET#layout %s numbers = %v, want %v", tt.sk, got, tt.want)
		}
	}
}

// BenchmarkReserve measures reservations per second against DynamoDB
// Local, by one caller and by 32 at once, in a budget of Let's Encrypt's
// size. In a free window every reservation finds its position a window old
// (write A); in a busy one, the queue of new orders, the ring is full and
// every reservation takes write B after write A failed.
func BenchmarkReserve(b *testing.B) {
	for _, busy := range []bool{false, true} {
		for _, callers := range []int{1, 32} {
			window := map[bool]string{false: "free", true: "busy"}[busy]
			var (
				s  *Schedule
				db *countingDB
			)
			b.Run(fmt.Sprintf("window=%s/goroutines=%d", window, callers), func(b *testing.B) {
				switch {
				case !busy:
					// So many positions that each reservation has its own.
					s, db = newSchedule(b, Config{Name: fmt.Sprintf("%s-%d", b.Name(), b.N), Limit: 1 << 30, Window: 3 * time.Hour})
				case s == nil:
					// Filled once, for every run of this benchmark.
					s, db = newSchedule(b, Config{Limit: 300, Window: 3 * time.Hour})
					for range 300 {
						if _, err := s.Reserve(context.Background()); err != nil {
							b.Fatal(err)
						}
					}
				}
				db.calls.Store(0)
				b.ResetTimer()
				start := time.Now()
				var (
					next atomic.Int64
					wg   sync.WaitGroup
				)
				for range callers {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if _, err := s.Reserve(context.Background()); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reservations/s")
				b.ReportMetric(float64(db.calls.Load())/float64(b.N), "calls/op")
			})
		}
	}
}
