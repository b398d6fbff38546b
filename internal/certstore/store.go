package certstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
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
)

// maxAttempts bounds the read-modify-write loops that retry on a concurrent
// change of the item.
const maxAttempts = 5

// Store reads and writes the certificate and alias items of the certflow
// table and the renewal timers of the timers table. It is safe for
// concurrent use.
type Store struct {
	client DynamoDB
	table  string
	timers string
	now    func() time.Time
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock used for updatedAt and other timestamps the store
// sets itself. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
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
	s := &Store{client: client, table: table, timers: table, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Get returns the certificate item of domain with an eventually consistent
// read, or ErrNotFound.
func (s *Store) Get(ctx context.Context, domain string) (*Certificate, error) {
	return s.get(ctx, domain, false)
}

// GetConsistent is Get with a strongly consistent read, for decisions that
// must see the latest write.
func (s *Store) GetConsistent(ctx context.Context, domain string) (*Certificate, error) {
	return s.get(ctx, domain, true)
}

func (s *Store) get(ctx context.Context, domain string, consistent bool) (*Certificate, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            key(domain, skCert),
		ConsistentRead: aws.Bool(consistent),
	})
	if err != nil {
		return nil, fmt.Errorf("get certificate %q: %w", domain, err)
	}
	if out.Item == nil {
		return nil, fmt.Errorf("get certificate %q: %w", domain, ErrNotFound)
	}
	return certificateFromItem(out.Item)
}

// GetTimer returns the renewal timer of domain (strongly consistent), or
// ErrNotFound.
func (s *Store) GetTimer(ctx context.Context, domain string) (Timer, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.timers),
		Key:            key(domain, skTimer),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Timer{}, fmt.Errorf("get timer %q: %w", domain, err)
	}
	if out.Item == nil {
		return Timer{}, fmt.Errorf("get timer %q: %w", domain, ErrNotFound)
	}
	return TimerFromItem(out.Item)
}

// WildcardParent returns the wildcard name one label up from name
// ("a.b.example" -> "*.b.example"), or "" when there is none: name is
// already a wildcard or the parent would be a single label.
func WildcardParent(name string) string {
	if strings.HasPrefix(name, "*.") {
		return ""
	}
	_, parent, ok := strings.Cut(name, ".")
	if !ok || !strings.Contains(parent, ".") {
		return ""
	}
	return "*." + parent
}

// GetForDelivery returns the certificate to serve for name: the exact
// certificate, else the certificate a SAN alias of name points to, else the
// same two for the wildcard one label up. Only items that hold a certificate
// and are not retired count, and an alias counts only when its certificate
// still lists the name. It reads the four candidates with one BatchGetItem
// and the aliased certificate, when needed, with one more GetItem. It
// returns ErrNotFound when nothing can be served.
func (s *Store) GetForDelivery(ctx context.Context, name string) (*Certificate, error) {
	names := []string{name}
	if w := WildcardParent(name); w != "" {
		names = append(names, w)
	}
	keys := make([]map[string]types.AttributeValue, 0, 2*len(names))
	for _, n := range names {
		keys = append(keys, key(n, skCert), key(n, skAlias))
	}
	items, err := s.batchGet(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("get certificate for %q: %w", name, err)
	}
	for _, n := range names {
		if item, ok := items[domainPK(n)+"|"+skCert]; ok {
			c, err := certificateFromItem(item)
			if err != nil {
				return nil, fmt.Errorf("get certificate for %q: %w", name, err)
			}
			if servable(c) {
				return c, nil
			}
		}
		if item, ok := items[domainPK(n)+"|"+skAlias]; ok {
			r := &itemReader{item: item}
			primary := r.s(attrDomain)
			if r.err != nil || primary == "" {
				return nil, fmt.Errorf("get certificate for %q: malformed alias item %q", name, n)
			}
			c, err := s.Get(ctx, primary)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("get certificate for %q: %w", name, err)
			}
			if servable(c) && slices.Contains(c.SANs, n) {
				return c, nil
			}
		}
	}
	return nil, fmt.Errorf("get certificate for %q: %w", name, ErrNotFound)
}

// servable reports whether c holds a certificate that may be served.
func servable(c *Certificate) bool {
	return c.Status != StatusRetired && c.CertPEM != "" && len(c.Key.Ciphertext) > 0
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
			r := &itemReader{item: item}
			items[r.s(attrPK)+"|"+r.s(attrSK)] = item
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
	r := &itemReader{item: item}
	return Status(r.s(attrStatus))
}

// putTimer is the transaction item that replaces domain's renewal timer.
func (s *Store) putTimer(t Timer) types.TransactWriteItem {
	return types.TransactWriteItem{Put: &types.Put{TableName: aws.String(s.timers), Item: timerItem(t)}}
}

// deleteTimer is the transaction item that removes domain's renewal timer,
// so that nothing renews it.
func (s *Store) deleteTimer(domain string) types.TransactWriteItem {
	return types.TransactWriteItem{Delete: &types.Delete{TableName: aws.String(s.timers), Key: key(domain, skTimer)}}
}

// updateCert is the conditional update of domain's certificate item that e
// describes; a failed condition returns the item as it was.
func (s *Store) updateCert(domain string, e *expr, returnValues types.ReturnValue) *dynamodb.UpdateItemInput {
	return &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 key(domain, skCert),
		UpdateExpression:                    e.Update(),
		ConditionExpression:                 e.Condition(),
		ExpressionAttributeNames:            e.Names(),
		ExpressionAttributeValues:           e.Values(),
		ReturnValues:                        returnValues,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
}

// txUpdateCert is updateCert as a transaction item.
func (s *Store) txUpdateCert(domain string, e *expr) types.TransactWriteItem {
	return types.TransactWriteItem{Update: &types.Update{
		TableName:                           aws.String(s.table),
		Key:                                 key(domain, skCert),
		UpdateExpression:                    e.Update(),
		ConditionExpression:                 e.Condition(),
		ExpressionAttributeNames:            e.Names(),
		ExpressionAttributeValues:           e.Values(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}}
}
