package budget

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// memDB holds the one budget item and evaluates the two conditions Bucket
// writes with. interfere, when set, runs before each UpdateItem, to play a
// concurrent taker.
type memDB struct {
	mu        sync.Mutex
	item      map[string]types.AttributeValue
	updates   int
	interfere func(item map[string]types.AttributeValue)
}

func (m *memDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !aws.ToBool(in.ConsistentRead) {
		return nil, errors.New("memDB: budget reads must be strongly consistent")
	}
	return &dynamodb.GetItemOutput{Item: maps.Clone(m.item)}, nil
}

func (m *memDB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.item = maps.Clone(in.Item)
	return &dynamodb.PutItemOutput{}, nil
}

func (m *memDB) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.interfere != nil {
		if m.item == nil {
			m.item = key()
		}
		m.interfere(m.item)
		m.interfere = nil
	}
	v := in.ExpressionAttributeValues
	switch cond := aws.ToString(in.ConditionExpression); {
	case strings.HasPrefix(cond, "attribute_not_exists"):
		if m.item != nil {
			return nil, &types.ConditionalCheckFailedException{}
		}
	default:
		if m.item == nil ||
			m.item[attrRefilledAt].(*types.AttributeValueMemberS).Value != v[":oldRefilledAt"].(*types.AttributeValueMemberS).Value ||
			m.item[attrTokens].(*types.AttributeValueMemberN).Value != v[":oldTokens"].(*types.AttributeValueMemberN).Value {
			return nil, &types.ConditionalCheckFailedException{}
		}
	}
	m.updates++
	if m.item == nil {
		m.item = key()
	}
	m.item[attrTokens] = v[":tokens"]
	m.item[attrRefilledAt] = v[":refilledAt"]
	return &dynamodb.UpdateItemOutput{}, nil
}

func (m *memDB) tokens() string {
	return m.item[attrTokens].(*types.AttributeValueMemberN).Value
}

func TestParseSpec(t *testing.T) {
	tests := []struct {
		spec    string
		cap     int
		per     time.Duration
		wantErr bool
	}{
		{"300/3h", 300, 3 * time.Hour, false},
		{" 10/1m ", 10, time.Minute, false},
		{"300", 0, 0, true},
		{"0/3h", 0, 0, true},
		{"-1/3h", 0, 0, true},
		{"x/3h", 0, 0, true},
		{"300/3", 0, 0, true},
		{"300/-3h", 0, 0, true},
	}
	for _, tt := range tests {
		c, p, err := ParseSpec(tt.spec)
		if (err != nil) != tt.wantErr || c != tt.cap || p != tt.per {
			t.Errorf("ParseSpec(%q) = %d, %v, %v, want %d, %v, error %v", tt.spec, c, p, err, tt.cap, tt.per, tt.wantErr)
		}
	}
}

func TestTake(t *testing.T) {
	ctx := context.Background()
	// 3 tokens per 30s: one token every 10s.
	tests := []struct {
		name        string
		stored      *float64 // nil: no item yet
		elapsed     time.Duration
		wantGranted bool
		wantWait    time.Duration
		wantTokens  string
	}{
		{name: "first take fills the bucket", wantGranted: true, wantTokens: "2"},
		{name: "take one", stored: ptr(2), wantGranted: true, wantTokens: "1"},
		{name: "empty", stored: ptr(0), wantWait: 10 * time.Second, wantTokens: "0"},
		{name: "half refilled", stored: ptr(0), elapsed: 5 * time.Second, wantWait: 5 * time.Second, wantTokens: "0"},
		{name: "refilled one", stored: ptr(0), elapsed: 10 * time.Second, wantGranted: true, wantTokens: "0"},
		{name: "refill capped", stored: ptr(1), elapsed: time.Hour, wantGranted: true, wantTokens: "2"},
		{name: "fraction kept", stored: ptr(0.5), elapsed: 7 * time.Second, wantGranted: true, wantTokens: "0.2"},
		{name: "over capacity after a smaller budget", stored: ptr(10), wantGranted: true, wantTokens: "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := &memDB{}
			now := t0
			b := New(db, "tbl", 3, 30*time.Second, func() time.Time { return now })
			if tt.stored != nil {
				if err := b.Set(ctx, *tt.stored); err != nil {
					t.Fatal(err)
				}
			}
			now = now.Add(tt.elapsed)
			granted, wait, err := b.Take(ctx)
			if err != nil {
				t.Fatalf("Take() error = %v", err)
			}
			if granted != tt.wantGranted || wait != tt.wantWait {
				t.Errorf("Take() = %v, %v, want %v, %v", granted, wait, tt.wantGranted, tt.wantWait)
			}
			if got := db.tokens(); got != tt.wantTokens {
				t.Errorf("stored tokens = %s, want %s", got, tt.wantTokens)
			}
		})
	}
}

func ptr(f float64) *float64 { return &f }

func TestTakeRetriesOnConcurrentChange(t *testing.T) {
	ctx := context.Background()
	db := &memDB{}
	b := New(db, "tbl", 3, 30*time.Second, func() time.Time { return t0 })
	if err := b.Set(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// Another taker takes a token between our read and our write.
	db.interfere = func(item map[string]types.AttributeValue) {
		item[attrTokens] = &types.AttributeValueMemberN{Value: "1"}
	}
	granted, _, err := b.Take(ctx)
	if err != nil || !granted {
		t.Fatalf("Take() = %v, %v, want granted", granted, err)
	}
	if got := db.tokens(); got != "0" {
		t.Errorf("stored tokens = %s, want 0 (both takes counted)", got)
	}
}

func TestTakeClockBehind(t *testing.T) {
	ctx := context.Background()
	db := &memDB{}
	now := t0
	b := New(db, "tbl", 3, 30*time.Second, func() time.Time { return now })
	if err := b.Set(ctx, 0); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(-2 * time.Second) // this instance's clock is behind
	granted, wait, err := b.Take(ctx)
	if err != nil || granted || wait != 12*time.Second {
		t.Errorf("Take() = %v, %v, %v, want not granted, wait 12s", granted, wait, err)
	}
}

type fakeTaker struct {
	granted bool
	wait    time.Duration
	err     error
}

func (f fakeTaker) Take(context.Context) (bool, time.Duration, error) {
	return f.granted, f.wait, f.err
}

func TestHandler(t *testing.T) {
	tests := []struct {
		name     string
		taker    fakeTaker
		want     string
		wantType string
	}{
		{"granted", fakeTaker{granted: true}, `{"granted":true,"waitSeconds":0}`, ""},
		{"wait rounds up", fakeTaker{wait: 1500 * time.Millisecond}, `{"granted":false,"waitSeconds":2}`, ""},
		{"wait at least a second", fakeTaker{wait: 0}, `{"granted":false,"waitSeconds":1}`, ""},
		{"error", fakeTaker{err: errors.New("throttled")}, "", "TransientError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHandler(tt.taker, slog.New(slog.NewJSONHandler(io.Discard, nil)))
			res, err := h.Handle(context.Background(), json.RawMessage(`{}`))
			if tt.wantType != "" {
				var ive messages.InvokeResponse_Error
				if !errors.As(err, &ive) || ive.Type != tt.wantType {
					t.Fatalf("Handle() error = %#v, want errorType %s", err, tt.wantType)
				}
				if strings.Contains(ive.Message, "throttled") {
					t.Errorf("Handle() error message %q leaks the internal error", ive.Message)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(res)
			if string(got) != tt.want {
				t.Errorf("Handle() = %s, want %s", got, tt.want)
			}
		})
	}
}
