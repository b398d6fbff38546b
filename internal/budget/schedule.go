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
	minMargin     = 5 * time.Second
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
// the window, at least 5 seconds (108s for 3 hours): the order's way from
// the Issue step to the CA must fit in half of it, also under load.
func DefaultMargin(window time.Duration) time.Duration {
	return max(window/marginDivisor, minMargin)
}

// Reservation is a slot of the schedule: the right to place one new order
// at At, or up to the margin later (see Valid). It is the state machine's
// flow.OrderSlot: Seq numbers the reservation (its ring position is
// (Seq-1) mod Limit), At is the slot's time, a whole second in UTC.
type Reservation = flow.OrderSlot

// Schedule is the schedule of new orders of one budget. It is safe for
// concurrent use, also across processes: every change is one atomic
// conditional update of one item.
type Schedule struct {
	client DynamoDB
	table  string
	name   string
	limit  int
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

// Admission is an order admitted by the budget: what Release needs to
// give it back.
type Admission struct {
	Seq int64
	// At is the stamp the admission wrote, Previous the one it replaced
	// (Unix milliseconds; 0: none).
	At, Previous int64
}

// Admit admits the order of reservation r now, or says how long to wait:
// the order may be sent when its slot has come and no order of r's ring
// position was admitted in the last step (Window plus Margin). One
// conditional write stamps the position with the time of admission:
//
//	SET placed = now IF attribute_not_exists(placed) OR placed <= now-step
//
// so the orders admitted for one position are a step or more apart
// whatever the lateness of their executions, and any Window at the CA
// holds at most Limit of them, as long as an order reaches the CA within
// Margin of being admitted. wait is zero when the order is admitted; it is
// the time until r's slot, or until the position is free again, when not.
func (s *Schedule) Admit(ctx context.Context, r Reservation) (a Admission, wait time.Duration, err error) {
	if r.Seq < 1 {
		return Admission{}, 0, fmt.Errorf("admit an order in budget %q: seq %d is not a reservation", s.name, r.Seq)
	}
	now := s.now().UTC()
	if early := r.At.Sub(now); early > 0 {
		return Admission{}, early, nil
	}
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 s.slotKey(r.Seq),
		UpdateExpression:                    aws.String("SET #placed = :now"),
		ConditionExpression:                 aws.String("attribute_not_exists(#placed) OR #placed <= :cutoff"),
		ExpressionAttributeNames:            map[string]string{"#placed": table.AttrPlaced},
		ExpressionAttributeValues:           map[string]types.AttributeValue{":now": number(now.UnixMilli()), ":cutoff": number(now.Add(-s.step).UnixMilli())},
		ReturnValues:                        types.ReturnValueUpdatedOld,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		a := Admission{Seq: r.Seq, At: now.UnixMilli()}
		if _, ok := out.Attributes[table.AttrPlaced]; ok {
			if a.Previous, err = intAttr(out.Attributes, table.AttrPlaced); err != nil {
				return Admission{}, 0, fmt.Errorf("admit the order of slot %d in budget %q: %w", r.Seq, s.name, err)
			}
		}
		return a, 0, nil
	case !errors.As(err, &ccf):
		return Admission{}, 0, fmt.Errorf("admit the order of slot %d in budget %q: %w", r.Seq, s.name, err)
	}
	placed, err := intAttr(ccf.Item, table.AttrPlaced)
	if err != nil {
		return Admission{}, 0, fmt.Errorf("admit the order of slot %d in budget %q: %w", r.Seq, s.name, err)
	}
	return Admission{}, max(time.Millisecond, time.UnixMilli(placed).Add(s.step).Sub(now)), nil
}

// Release gives an admission back when its order certainly never reached
// the CA (the CA could not be connected to, or answered with a problem):
// the position's stamp goes back to what it was, on condition that it is
// still the admission's, so a retry of the order is admitted at once and
// a CA that is down does not drain the budget.
func (s *Schedule) Release(ctx context.Context, a Admission) error {
	e := "SET #placed = :previous"
	values := map[string]types.AttributeValue{":at": number(a.At), ":previous": number(a.Previous)}
	if a.Previous == 0 {
		e = "REMOVE #placed"
		delete(values, ":previous")
	}
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       s.slotKey(a.Seq),
		UpdateExpression:          aws.String(e),
		ConditionExpression:       aws.String("#placed = :at"),
		ExpressionAttributeNames:  map[string]string{"#placed": table.AttrPlaced},
		ExpressionAttributeValues: values,
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("release the admission of slot %d in budget %q: %w", a.Seq, s.name, err)
	}
	return nil
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
