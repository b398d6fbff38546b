package certstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/certflow/certflow/internal/table"
)

// TestARICursor: the sweeper's saved position resumes a ByDue walk on
// DynamoDB Local, even after the certificate at the position moved, and the
// position items appear in no index.
func TestARICursor(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const shard = "05"
	var names []string
	for i := 0; len(names) < 5; i++ {
		d := fmt.Sprintf("walk%d.example", i)
		if table.ShardOf(d) != shard {
			continue
		}
		names = append(names, d)
		mustRequest(t, s, d)
		in := issued(t, s, d, fmt.Sprintf("5%d", len(names)), t0)
		in.RenewAt = t0.Add(time.Duration(len(names)) * time.Hour)
		if err := s.SaveIssued(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	horizon := t0.Add(24 * time.Hour)

	if got, err := s.ARICursor(ctx, shard); got != "" || err != nil {
		t.Fatalf("ARICursor(never visited) = %q, %v, want \"\"", got, err)
	}
	rows, next, err := s.DueBy(ctx, shard, horizon, 2, "")
	if err != nil || len(rows) != 2 || next == "" {
		t.Fatalf("DueBy(first page) = %d rows, %q, %v", len(rows), next, err)
	}
	if err := s.SaveARICursor(ctx, shard, next); err != nil {
		t.Fatalf("SaveARICursor() error = %v", err)
	}
	// The certificate the position points at moves meanwhile (ARI).
	moved := mustGet(t, s, rows[1].Domain)
	if err := s.MoveTimer(ctx, moved.Domain, moved.Serial, moved.ARICertID, t0.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}

	saved, err := s.ARICursor(ctx, shard)
	if err != nil || saved != next {
		t.Fatalf("ARICursor() = %q, %v, want %q", saved, err, next)
	}
	var rest []string
	for cursor := saved; ; {
		rows, next, err := s.DueBy(ctx, shard, horizon.Add(time.Hour), 2, cursor)
		if err != nil {
			t.Fatalf("DueBy(resumed) error = %v", err)
		}
		for _, r := range rows {
			rest = append(rest, r.Domain)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if fmt.Sprint(rest) != fmt.Sprint(names[2:]) {
		t.Errorf("resumed walk = %v, want %v", rest, names[2:])
	}

	if err := s.SaveARICursor(ctx, shard, ""); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ARICursor(ctx, shard); got != "" || err != nil {
		t.Errorf("ARICursor(after the end) = %q, %v, want \"\"", got, err)
	}

	// Bad input changes nothing.
	if err := s.SaveARICursor(ctx, shard, "garbage"); !errors.Is(err, ErrBadCursor) {
		t.Errorf("SaveARICursor(garbage) error = %v, want ErrBadCursor", err)
	}
	if err := s.SaveARICursor(ctx, "06", next); !errors.Is(err, ErrBadCursor) {
		t.Errorf("SaveARICursor(another shard's cursor) error = %v, want ErrBadCursor", err)
	}
	if err := s.SaveARICursor(ctx, "16", ""); err == nil {
		t.Error("SaveARICursor(shard 16) succeeded")
	}
	if _, err := s.ARICursor(ctx, "x"); err == nil {
		t.Error("ARICursor(shard x) succeeded")
	}

	// The position items are invisible to every index.
	if err := s.SaveARICursor(ctx, "06", ""); err != nil {
		t.Fatal(err)
	}
	for _, sh := range table.Shards() {
		if _, _, err := s.DueBy(ctx, sh, t0.Add(1000*time.Hour), 100, ""); err != nil {
			t.Errorf("DueBy(%s) error = %v", sh, err)
		}
	}
	for _, st := range []Status{StatusActive, StatusPending} {
		if _, _, err := s.List(ctx, tenantA, st, 100, ""); err != nil {
			t.Errorf("List(%s) error = %v", st, err)
		}
	}
	if _, err := s.MinNotAfter(ctx, t0); err != nil {
		t.Errorf("MinNotAfter() error = %v", err)
	}
}
