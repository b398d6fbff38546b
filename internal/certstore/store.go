// Package certstore keeps the domains certflow looks after in its DynamoDB
// tables: the certificate item of each domain (its status, its certificate
// with the key sealed, the bookkeeping of its issuance), its pending ACME
// order, the alias item of each other name it covers, its renewal timer in
// the timers table, and the sweeper's ARI re-check positions. Files follow
// the item kinds: certificate*.go, order.go, alias.go (and delivery
// lookups), timer.go, position.go. The layout itself is package table's.
//
// One execution at a time owns a domain (Certificate.Execution): the
// platform's request or the reconciler names it (a claim), and only its
// writes are accepted afterwards. Every write of an execution is fenced by
// its name, so an execution that was superseded (restarted, retired,
// requested anew) can neither store a certificate nor record a failure.
package certstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/table"
)

// DynamoDB is the part of the DynamoDB API the Store uses. *dynamodb.Client
// implements it.
type DynamoDB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// Errors of conditional writes. They are returned wrapped; match them with
// errors.Is.
var (
	// ErrStale means the write was based on an outdated view of the item:
	// an older certificate than the stored one, a changed generation, serial
	// or renewal time.
	ErrStale = errors.New("certstore: stale write")
	// ErrRetired means the domain was retired by the platform.
	ErrRetired = errors.New("certstore: domain retired")
	// ErrQuarantined means the domain is quarantined: no attempts are made
	// until the platform requests it again.
	ErrQuarantined = errors.New("certstore: domain quarantined")
	// ErrBadCursor means a pagination cursor was not issued by this store
	// for this query.
	ErrBadCursor = errors.New("certstore: bad cursor")
	// ErrSuperseded means another execution owns the domain now.
	ErrSuperseded = errors.New("certstore: execution superseded")
	// ErrNameTaken means a name is already held by another live domain
	// (as its primary name or as a SAN); the error is a *NameTakenError
	// naming it.
	ErrNameTaken = errors.New("certstore: name held by another domain")
)

// NameTakenError says which name of a request another live domain holds.
// It matches ErrNameTaken with errors.Is. It never names the other domain.
type NameTakenError struct {
	Name string
}

func (e *NameTakenError) Error() string { return fmt.Sprintf("%q is held by another domain", e.Name) }

// Is reports whether target is ErrNameTaken.
func (e *NameTakenError) Is(target error) bool { return target == ErrNameTaken }

// ErrNotFound is returned when an item does not exist.
var ErrNotFound = errors.New("certstore: not found")

// maxAttempts bounds the read-modify-write loops that retry on a concurrent
// change of the item.
const maxAttempts = 5

// Store reads and writes the certificate and alias items of the certflow
// table and the renewal timers of the timers table. It is safe for
// concurrent use.
type Store struct {
	client   DynamoDB
	table    string
	timers   string
	grace    time.Duration
	offboard time.Duration
	now      func() time.Time
}

// DefaultGrace is the grace of a Store unless WithGrace says otherwise.
const DefaultGrace = time.Hour

// DefaultOffboardAfter is how long a domain that moved away stays
// quarantined before it is offboarded, unless WithOffboardAfter says
// otherwise: seven days, as Cloudflare deletes hostnames that moved.
const DefaultOffboardAfter = 7 * 24 * time.Hour

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock used for updatedAt and other timestamps the store
// sets itself. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// WithGrace sets how long past the time a domain was expected to need
// attention (its renewal time, the end of a wait) the reconciler leaves it
// alone: dueAt is that time plus grace. A renewal is left to its TTL timer
// for grace; an execution that should have acted is checked grace after.
func WithGrace(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.grace = d
		}
	}
}

// WithOffboardAfter sets how long a domain quarantined because it moved
// away from the platform (failure.MovedAway) waits before the reconciler
// offboards it.
func WithOffboardAfter(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.offboard = d
		}
	}
}

// WithTimerTable keeps renewal timers in their own table (template.yaml's
// RenewalTimersTable): a table whose only attributes are its keys, with TTL
// and a stream, so the stream carries timer deletions and nothing else.
// Without it, timers live in the certificate table.
func WithTimerTable(name string) Option {
	return func(s *Store) {
		if name != "" {
			s.timers = name
		}
	}
}

// New returns a Store over table.
func New(client DynamoDB, table string, opts ...Option) *Store {
	s := &Store{client: client, table: table, timers: table, grace: DefaultGrace, offboard: DefaultOffboardAfter, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// batchGet reads keys and returns the items by "pk|sk", retrying
// unprocessed keys.
func (s *Store) batchGet(ctx context.Context, keys []map[string]types.AttributeValue) (map[string]map[string]types.AttributeValue, error) {
	items := make(map[string]map[string]types.AttributeValue, len(keys))
	pending := map[string]types.KeysAndAttributes{s.table: {Keys: keys}}
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			if attempt >= maxAttempts {
				return nil, errors.New("batch get: keys left unprocessed")
			}
			if err := sleep(ctx, time.Duration(attempt)*50*time.Millisecond); err != nil {
				return nil, err
			}
		}
		out, err := s.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
		if err != nil {
			return nil, fmt.Errorf("batch get: %w", err)
		}
		for _, item := range out.Responses[s.table] {
			r := table.NewReader(item)
			items[r.S(table.AttrPK)+"|"+r.S(table.AttrSK)] = item
		}
		pending = out.UnprocessedKeys
	}
	return items, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// conditionFailed returns the ALL_OLD item of a failed ConditionExpression
// (nil when the item did not exist) and whether err is such a failure.
func conditionFailed(err error) (map[string]types.AttributeValue, bool) {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return ccf.Item, true
	}
	return nil, false
}

// transactionFailure tells why a transaction was cancelled: the ALL_OLD item
// of the first condition failure among the action indexes checked and
// whether there was one, and whether the cancellation is a conflict with
// another transaction (retryable).
func transactionFailure(err error, checked ...int) (old map[string]types.AttributeValue, condFailed, conflict bool) {
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return nil, false, false
	}
	for i, r := range tce.CancellationReasons {
		switch aws.ToString(r.Code) {
		case "ConditionalCheckFailed":
			if slices.Contains(checked, i) {
				return r.Item, true, false
			}
		case "TransactionConflict":
			conflict = true
		}
	}
	return nil, false, conflict
}

// statusOf returns the status attribute of an item, "" when there is none.
func statusOf(item map[string]types.AttributeValue) Status {
	r := table.NewReader(item)
	return Status(r.S(table.AttrStatus))
}

// fence adds to e the condition that execution owns domain's item.
func fence(e *table.Expr, execution string) {
	e.If("%s = %s", e.Name(table.AttrExecution), e.Value(table.S(execution)))
}

// fenceFailure says why the fenced write of execution failed, from the
// item as it was (nil: it did not exist).
func fenceFailure(old map[string]types.AttributeValue, execution string) error {
	if old == nil {
		return ErrNotFound
	}
	r := table.NewReader(old)
	switch st := Status(r.S(table.AttrStatus)); {
	case st == StatusRetired:
		return ErrRetired
	case r.S(table.AttrExecution) != execution:
		return fmt.Errorf("the domain belongs to execution %q: %w", r.S(table.AttrExecution), ErrSuperseded)
	case st == StatusQuarantined:
		return ErrQuarantined
	}
	return ErrStale
}

// fencedUpdate runs the update e of domain's certificate item on condition
// that execution owns it, and returns the item as it is after.
func (s *Store) fencedUpdate(ctx context.Context, domain, execution string, e *table.Expr) (*Certificate, error) {
	fence(e, execution)
	out, err := s.client.UpdateItem(ctx, s.updateCert(domain, e, types.ReturnValueAllNew))
	if old, failed := conditionFailed(err); failed {
		return nil, fenceFailure(old, execution)
	}
	if err != nil {
		return nil, err
	}
	return certificateFromItem(out.Attributes)
}

// due is the dueAt of a domain expected to need attention at t.
func (s *Store) due(t time.Time) time.Time { return t.Add(s.grace) }

// updateCert is the conditional update of domain's certificate item that e
// describes; a failed condition returns the item as it was.
func (s *Store) updateCert(domain string, e *table.Expr, returnValues types.ReturnValue) *dynamodb.UpdateItemInput {
	return &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 table.DomainKey(domain, table.SKCert),
		UpdateExpression:                    e.Update(),
		ConditionExpression:                 e.Condition(),
		ExpressionAttributeNames:            e.Names(),
		ExpressionAttributeValues:           e.Values(),
		ReturnValues:                        returnValues,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
}

// txUpdateCert is updateCert as a transaction item.
func (s *Store) txUpdateCert(domain string, e *table.Expr) types.TransactWriteItem {
	u := s.updateCert(domain, e, types.ReturnValueNone)
	return types.TransactWriteItem{Update: &types.Update{
		TableName:                           u.TableName,
		Key:                                 u.Key,
		UpdateExpression:                    u.UpdateExpression,
		ConditionExpression:                 u.ConditionExpression,
		ExpressionAttributeNames:            u.ExpressionAttributeNames,
		ExpressionAttributeValues:           u.ExpressionAttributeValues,
		ReturnValuesOnConditionCheckFailure: u.ReturnValuesOnConditionCheckFailure,
	}}
}

// queryPage runs one page of the key condition cond on index, from start,
// and returns its items and the cursor of the next page ("" after the last).
func (s *Store) queryPage(ctx context.Context, index string, e *table.Expr, cond string, limit int, start map[string]types.AttributeValue) ([]map[string]types.AttributeValue, string, error) {
	out, err := s.client.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(index),
		KeyConditionExpression:    aws.String(cond),
		ExpressionAttributeNames:  e.Names(),
		ExpressionAttributeValues: e.Values(),
		Limit:                     limitOf(limit),
		ExclusiveStartKey:         start,
	})
	if err != nil {
		return nil, "", err
	}
	next, err := encodeCursor(out.LastEvaluatedKey)
	if err != nil {
		return nil, "", err
	}
	return out.Items, next, nil
}

func limitOf(limit int) *int32 {
	if limit <= 0 {
		return nil
	}
	return aws.Int32(int32(min(limit, 1000)))
}

// encodeCursor makes an opaque cursor of a LastEvaluatedKey whose
// attributes are all strings.
func encodeCursor(lek map[string]types.AttributeValue) (string, error) {
	if len(lek) == 0 {
		return "", nil
	}
	m := make(map[string]string, len(lek))
	for k, v := range lek {
		s, ok := v.(*types.AttributeValueMemberS)
		if !ok {
			return "", fmt.Errorf("encode cursor: key attribute %s is not a string", k)
		}
		m[k] = s.Value
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode cursor: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// decodeCursor turns a cursor back into an ExclusiveStartKey. It must hold
// exactly the attributes names and satisfy valid.
func decodeCursor(cursor string, valid func(map[string]string) bool, names ...string) (map[string]types.AttributeValue, error) {
	if cursor == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, ErrBadCursor
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, ErrBadCursor
	}
	got := slices.Sorted(maps.Keys(m))
	if !slices.Equal(got, slices.Sorted(slices.Values(names))) || !valid(m) {
		return nil, ErrBadCursor
	}
	for _, v := range m {
		if v == "" {
			return nil, ErrBadCursor
		}
	}
	key := make(map[string]types.AttributeValue, len(m))
	for k, v := range m {
		key[k] = table.S(v)
	}
	return key, nil
}
