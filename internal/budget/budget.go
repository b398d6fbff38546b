// Package budget is the account-wide budget of new ACME orders: a token
// bucket kept in one item of the certflow table, so every Lambda instance
// shares it. Renewals do not take tokens; only new orders do, which keeps a
// burst of new domains from exhausting the CA's new-order rate limit.
package budget

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// EnvOrderBudget is the environment variable holding the budget spec.
const EnvOrderBudget = "CERTFLOW_ORDER_BUDGET"

// DefaultSpec is the budget when EnvOrderBudget is empty: Let's Encrypt's
// 300 new orders per account per 3 hours.
const DefaultSpec = "300/3h"

// Item key and attribute names, exactly as docs/ARCHITECTURE.md lists them.
const (
	pkBudget       = "BUDGET#new-orders"
	skBudget       = "BUDGET"
	attrPK         = "pk"
	attrSK         = "sk"
	attrTokens     = "tokens"
	attrRefilledAt = "refilledAt"
	timeLayout     = "2006-01-02T15:04:05Z"
)

// maxAttempts bounds the retries of Take when concurrent takers change the
// bucket between its read and its conditional write.
const maxAttempts = 10

// DynamoDB is the part of the DynamoDB API a Bucket uses.
type DynamoDB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// ParseSpec parses a budget spec "<capacity>/<period>" such as "300/3h":
// capacity tokens, refilled evenly over period (a time.ParseDuration
// string).
func ParseSpec(spec string) (capacity int, per time.Duration, err error) {
	c, p, ok := strings.Cut(strings.TrimSpace(spec), "/")
	if !ok {
		return 0, 0, fmt.Errorf("budget %q: want <capacity>/<period>, e.g. %s", spec, DefaultSpec)
	}
	capacity, err = strconv.Atoi(c)
	if err != nil || capacity < 1 {
		return 0, 0, fmt.Errorf("budget %q: capacity must be a positive integer", spec)
	}
	per, err = time.ParseDuration(p)
	if err != nil || per <= 0 {
		return 0, 0, fmt.Errorf("budget %q: period must be a positive duration such as 3h", spec)
	}
	return capacity, per, nil
}

// Bucket is the new-order token bucket. It is safe for concurrent use, also
// across processes: every change is a conditional write on the state read.
type Bucket struct {
	client   DynamoDB
	table    string
	capacity int
	per      time.Duration
	now      func() time.Time
}

// New returns a Bucket of capacity tokens refilled evenly over per, stored
// in table. now is the clock; nil means time.Now.
func New(client DynamoDB, table string, capacity int, per time.Duration, now func() time.Time) *Bucket {
	if now == nil {
		now = time.Now
	}
	return &Bucket{client: client, table: table, capacity: capacity, per: per, now: now}
}

// state is the stored bucket. raw is the tokens attribute as stored, so the
// conditional write compares exactly what was read.
type state struct {
	exists     bool
	tokens     float64
	raw        string
	refilledAt time.Time
	rawTime    string
}

func key() map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrPK: &types.AttributeValueMemberS{Value: pkBudget},
		attrSK: &types.AttributeValueMemberS{Value: skBudget},
	}
}

func (b *Bucket) read(ctx context.Context) (state, error) {
	out, err := b.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(b.table),
		Key:            key(),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return state{}, err
	}
	if out.Item == nil {
		return state{}, nil
	}
	n, ok := out.Item[attrTokens].(*types.AttributeValueMemberN)
	s, ok2 := out.Item[attrRefilledAt].(*types.AttributeValueMemberS)
	if !ok || !ok2 {
		return state{}, errors.New("budget item lacks tokens or refilledAt")
	}
	tokens, err := strconv.ParseFloat(n.Value, 64)
	if err != nil {
		return state{}, fmt.Errorf("budget item tokens %q: %w", n.Value, err)
	}
	at, err := time.Parse(timeLayout, s.Value)
	if err != nil {
		return state{}, fmt.Errorf("budget item refilledAt %q: %w", s.Value, err)
	}
	return state{exists: true, tokens: tokens, raw: n.Value, refilledAt: at, rawTime: s.Value}, nil
}

// refill returns the tokens of st at now (capped at capacity) and the time
// they are valid at. A clock behind refilledAt adds nothing and keeps
// refilledAt.
func (b *Bucket) refill(st state, now time.Time) (float64, time.Time) {
	if !st.exists {
		return float64(b.capacity), now
	}
	if !now.After(st.refilledAt) {
		return math.Min(st.tokens, float64(b.capacity)), st.refilledAt
	}
	elapsed := now.Sub(st.refilledAt)
	tokens := st.tokens + float64(elapsed)*float64(b.capacity)/float64(b.per)
	return math.Min(tokens, float64(b.capacity)), now
}

// formatTokens stores tokens with at most six decimals.
func formatTokens(t float64) string {
	return strconv.FormatFloat(math.Round(t*1e6)/1e6, 'f', -1, 64)
}

// Take takes one token. When the bucket is empty it takes nothing and
// returns granted false and how long until a token is available.
func (b *Bucket) Take(ctx context.Context) (granted bool, wait time.Duration, err error) {
	for attempt := 1; ; attempt++ {
		st, err := b.read(ctx)
		if err != nil {
			return false, 0, fmt.Errorf("take order token: %w", err)
		}
		// Stored times have second precision; refill as of the stored
		// instant so no fraction of a second is counted twice.
		now := b.now().UTC().Truncate(time.Second)
		tokens, at := b.refill(st, now)
		if tokens < 1 {
			missing := 1 - tokens
			wait := time.Duration(math.Ceil(missing * float64(b.per) / float64(b.capacity)))
			return false, wait + at.Sub(now), nil
		}
		err = b.write(ctx, st, tokens-1, at)
		var ccf *types.ConditionalCheckFailedException
		if err == nil {
			return true, 0, nil
		}
		if !errors.As(err, &ccf) {
			return false, 0, fmt.Errorf("take order token: %w", err)
		}
		if attempt == maxAttempts {
			return false, 0, fmt.Errorf("take order token: bucket kept changing after %d attempts: %w", attempt, err)
		}
		backoff := time.Duration(attempt)*10*time.Millisecond + rand.N(20*time.Millisecond)
		select {
		case <-ctx.Done():
			return false, 0, fmt.Errorf("take order token: %w", ctx.Err())
		case <-time.After(backoff):
		}
	}
}

// write stores tokens at refilledAt, on condition that the bucket is still
// st.
func (b *Bucket) write(ctx context.Context, st state, tokens float64, refilledAt time.Time) error {
	in := &dynamodb.UpdateItemInput{
		TableName:        aws.String(b.table),
		Key:              key(),
		UpdateExpression: aws.String("SET #tokens = :tokens, #refilledAt = :refilledAt"),
		ExpressionAttributeNames: map[string]string{
			"#pk": attrPK, "#tokens": attrTokens, "#refilledAt": attrRefilledAt,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":tokens":     &types.AttributeValueMemberN{Value: formatTokens(tokens)},
			":refilledAt": &types.AttributeValueMemberS{Value: refilledAt.UTC().Format(timeLayout)},
		},
	}
	if st.exists {
		in.ConditionExpression = aws.String("#refilledAt = :oldRefilledAt AND #tokens = :oldTokens")
		in.ExpressionAttributeValues[":oldRefilledAt"] = &types.AttributeValueMemberS{Value: st.rawTime}
		in.ExpressionAttributeValues[":oldTokens"] = &types.AttributeValueMemberN{Value: st.raw}
		delete(in.ExpressionAttributeNames, "#pk")
	} else {
		in.ConditionExpression = aws.String("attribute_not_exists(#pk)")
	}
	_, err := b.client.UpdateItem(ctx, in)
	return err
}

// Set overwrites the bucket with tokens as of now, for operators and tests.
func (b *Bucket) Set(ctx context.Context, tokens float64) error {
	item := key()
	item[attrTokens] = &types.AttributeValueMemberN{Value: formatTokens(tokens)}
	item[attrRefilledAt] = &types.AttributeValueMemberS{Value: b.now().UTC().Format(timeLayout)}
	if _, err := b.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(b.table), Item: item}); err != nil {
		return fmt.Errorf("set order budget: %w", err)
	}
	return nil
}
