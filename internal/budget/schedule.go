package budget

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/table"
)

// DefaultName is the budget's name when Config.Name is empty.
const DefaultName = "new-orders"

const (
	minMargin     = time.Second
	marginDivisor = 100 // the default margin is 1% of the window
)

// maxAttempts bounds how many times one Reserve starts again after being
// overtaken. Being overtaken once takes Limit reservations completing
// between its two calls; this many times in a row does not happen.
const maxAttempts = 32

// DynamoDB is the part of the DynamoDB API a Schedule uses. Every call is
// an UpdateItem.
type DynamoDB interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Config configures a Schedule. The zero value of an optional field means
// the documented default.
type Config struct {
	// Table is the certflow table. Required.
	Table string
	// Name names the budget, one per CA account; empty means DefaultName.
	Name string
	// Limit is the CA's limit: at most Limit new orders in any Window.
	// Required.
	Limit int
	// Window is the length of the CA's sliding window. Required.
	Window time.Duration
	// Margin is how long after its slot an order may still be placed; zero
	// means DefaultMargin(Window). Slots of one ring position are
	// Window+Margin apart (rounded up to a whole second).
	Margin time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultMargin is the margin for window when Config.Margin is zero: 1% of
// the window, at least a second (108s for 3 hours).
func DefaultMargin(window time.Duration) time.Duration {
	return max(window/marginDivisor, minMargin)
}

// Reservation is a slot of the schedule: the right to place one new order
// at At, or up to the margin later (see Valid). It is the state machine's
// flow.OrderSlot: Seq numbers the reservation (its ring position is
// (Seq-1) mod Limit), At is the slot's time, a whole second in UTC.
type Reservation = flow.OrderSlot

// Valid reports whether r covers an order placed at now: not before its
// slot, and at most margin after it, where margin is the schedule's
// (Config.Margin, or DefaultMargin of the window). Orders placed that way
// are never more than Limit in a Window (see the package documentation).
// An order that would be early must wait; one that would be late needs
// Renew first.
func Valid(r Reservation, now time.Time, margin time.Duration) bool {
	return !now.Before(r.At) && !now.After(r.At.Add(margin))
}

// Covers reports whether r covers an order placed at now under this
// schedule's margin (Valid).
func (s *Schedule) Covers(r Reservation, now time.Time) bool { return Valid(r, now, s.margin) }

// Schedule is the schedule of new orders of one budget. It is safe for
// concurrent use, also across processes: every change is one atomic
// conditional update of one item.
type Schedule struct {
	client DynamoDB
	table  string
	name   string
	limit  int
	margin time.Duration
	step   time.Duration
	now    func() time.Time
}

// New returns the Schedule cfg describes, stored through client, or an
// error naming the first field of cfg that is wrong.
func New(client DynamoDB, cfg Config) (*Schedule, error) {
	switch {
	case cfg.Table == "":
		return nil, errors.New("budget: table is required")
	case cfg.Limit < 1:
		return nil, fmt.Errorf("budget: limit %d, want at least 1", cfg.Limit)
	case cfg.Window <= 0:
		return nil, fmt.Errorf("budget: window %v, want a positive duration", cfg.Window)
	case cfg.Margin < 0:
		return nil, fmt.Errorf("budget: margin %v, want zero (the default) or more", cfg.Margin)
	}
	s := &Schedule{
		client: client,
		table:  cfg.Table,
		name:   cfg.Name,
		limit:  cfg.Limit,
		now:    cfg.Now,
	}
	if s.name == "" {
		s.name = DefaultName
	}
	if s.now == nil {
		s.now = time.Now
	}
	margin := cfg.Margin
	if margin == 0 {
		margin = DefaultMargin(cfg.Window)
	}
	s.margin = margin
	s.step = ceilDuration(cfg.Window + margin)
	return s, nil
}

// Reserve reserves the next slot of the schedule: the current time
// (rounded up to a second) when the slot of the previous reservation of its
// ring position, Limit reservations before, is at least Window+Margin old,
// and otherwise that slot plus Window+Margin. It takes two or three
// DynamoDB calls and never fails because of concurrent reservations (see
// the package documentation for when it starts again).
func (s *Schedule) Reserve(ctx context.Context) (Reservation, error) {
	for range maxAttempts {
		if err := ctx.Err(); err != nil {
			return Reservation{}, fmt.Errorf("reserve order slot in budget %q: %w", s.name, err)
		}
		k, err := s.next(ctx)
		if err != nil {
			return Reservation{}, fmt.Errorf("reserve order slot in budget %q: %w", s.name, err)
		}
		r, ok, err := s.claim(ctx, k)
		if err != nil {
			return Reservation{}, fmt.Errorf("reserve order slot %d in budget %q: %w", k, s.name, err)
		}
		if ok {
			return r, nil
		}
	}
	return Reservation{}, fmt.Errorf("reserve order slot in budget %q: overtaken %d times in a row", s.name, maxAttempts)
}

// next increments the counter and returns the new reservation's number.
func (s *Schedule) next(ctx context.Context) (int64, error) {
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       s.key(table.SKBudgetSeq),
		UpdateExpression:          aws.String("ADD #seq :one"),
		ExpressionAttributeNames:  map[string]string{"#seq": table.AttrSeq},
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": number(1)},
		ReturnValues:              types.ReturnValueUpdatedNew,
	})
	if err != nil {
		return 0, fmt.Errorf("increment counter: %w", err)
	}
	return intAttr(out.Attributes, table.AttrSeq)
}

// claim writes reservation k into its ring position: write A when the
// position's slot is a step or more in the past, write B otherwise. ok is
// false when a later reservation holds the position. Only claim(k) writes
// seq = k, so a failed write that finds seq = k is a retry of one that
// landed, and the slot is ours.
func (s *Schedule) claim(ctx context.Context, k int64) (_ Reservation, ok bool, _ error) {
	now := s.clock()
	values := map[string]types.AttributeValue{
		":k":      number(k),
		":now":    number(now.UnixMilli()),
		":cutoff": number(now.Add(-s.step).UnixMilli()),
	}
	names := map[string]string{"#seq": table.AttrSeq, "#slot": table.AttrSlot}
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 s.slotKey(k),
		UpdateExpression:                    aws.String("SET #slot = :now, #seq = :k"),
		ConditionExpression:                 aws.String("attribute_not_exists(#seq) OR (#seq < :k AND #slot <= :cutoff)"),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValues:                        types.ReturnValueUpdatedNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return reservation(out.Attributes)
	case !errors.As(err, &ccf):
		return Reservation{}, false, fmt.Errorf("write slot now: %w", err)
	}
	switch held, _ := intAttr(ccf.Item, table.AttrSeq); {
	case held == k:
		return reservation(ccf.Item) // the SDK retried write A after it landed
	case held > k:
		return Reservation{}, false, nil // overtaken: write B would fail too
	}
	values = map[string]types.AttributeValue{
		":k":      values[":k"],
		":cutoff": values[":cutoff"],
		":step":   number(s.step.Milliseconds()),
	}
	out, err = s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 s.slotKey(k),
		UpdateExpression:                    aws.String("SET #slot = #slot + :step, #seq = :k"),
		ConditionExpression:                 aws.String("#seq < :k AND #slot > :cutoff"),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValues:                        types.ReturnValueUpdatedNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	switch {
	case err == nil:
		return reservation(out.Attributes)
	case errors.As(err, &ccf):
		if held, _ := intAttr(ccf.Item, table.AttrSeq); held == k {
			return reservation(ccf.Item) // the SDK retried write B after it landed
		}
		// Between writes A and B only a later reservation can have
		// written the position (or one before k that stalled for more
		// than a step between its own two calls). Either way k is left
		// like a crashed reservation, which is safe, and we start again.
		return Reservation{}, false, nil
	default:
		return Reservation{}, false, fmt.Errorf("write slot a step later: %w", err)
	}
}

// Renew re-stamps r, a reservation whose order was not placed, to now: if
// r still holds its ring position it moves the slot to now (or leaves it
// when it is still ahead) and returns the renewed reservation with ok true.
// When a later reservation holds the position, ok is false and the caller
// must Reserve anew.
//
// Moving a slot later is safe while r holds its position. The only
// reservation that steps from r's slot is the next one of the position,
// k+Limit, and it reads r's slot in the same conditional write that makes
// it the holder (seq = k+Limit): while seq is still r.Seq, nobody has
// computed from r's slot, and the slot before it only moves further away.
// Renew must not be used for a reservation whose order may have reached the
// CA: that order counts at its own time, which the ring would forget.
func (s *Schedule) Renew(ctx context.Context, r Reservation) (Reservation, bool, error) {
	if r.Seq < 1 {
		return Reservation{}, false, fmt.Errorf("renew order slot in budget %q: seq %d is not a reservation", s.name, r.Seq)
	}
	now := s.clock()
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 s.slotKey(r.Seq),
		UpdateExpression:                    aws.String("SET #slot = :now"),
		ConditionExpression:                 aws.String("#seq = :k AND #slot <= :now"),
		ExpressionAttributeNames:            map[string]string{"#seq": table.AttrSeq, "#slot": table.AttrSlot},
		ExpressionAttributeValues:           map[string]types.AttributeValue{":k": number(r.Seq), ":now": number(now.UnixMilli())},
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return reservation(out.Attributes)
	case !errors.As(err, &ccf):
		return Reservation{}, false, fmt.Errorf("renew order slot %d in budget %q: %w", r.Seq, s.name, err)
	}
	if held, err := intAttr(ccf.Item, table.AttrSeq); err != nil || held != r.Seq {
		return Reservation{}, false, nil
	}
	// Still held, so the condition failed on a slot ahead of now: keep it.
	return reservation(ccf.Item)
}

// clock returns the current time rounded up to a whole second, the
// schedule's resolution.
func (s *Schedule) clock() time.Time {
	return ceilSecond(s.now())
}

// ceilSecond rounds t up to a whole second, in UTC.
func ceilSecond(t time.Time) time.Time {
	c := t.Truncate(time.Second)
	if c.Before(t) {
		c = c.Add(time.Second)
	}
	return c.UTC()
}

func (s *Schedule) key(sk string) map[string]types.AttributeValue {
	return table.Key(table.BudgetPK(s.name), sk)
}

// slotKey is the key of reservation k's ring position.
func (s *Schedule) slotKey(k int64) map[string]types.AttributeValue {
	r := (k - 1) % int64(s.limit)
	return s.key(table.BudgetSlotSK(int(r), s.limit))
}

// ceilDuration rounds d up to a whole second.
func ceilDuration(d time.Duration) time.Duration {
	if r := d % time.Second; r != 0 {
		d += time.Second - r
	}
	return d
}

func number(n int64) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func intAttr(item map[string]types.AttributeValue, name string) (int64, error) {
	n, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("no number %s in %v", name, item)
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", name, n.Value, err)
	}
	return v, nil
}

// reservation reads a ring item, or the attributes a write returned.
func reservation(item map[string]types.AttributeValue) (Reservation, bool, error) {
	k, err := intAttr(item, table.AttrSeq)
	if err != nil {
		return Reservation{}, false, err
	}
	slot, err := intAttr(item, table.AttrSlot)
	if err != nil {
		return Reservation{}, false, err
	}
	return Reservation{Seq: k, At: time.UnixMilli(slot).UTC()}, true, nil
}
