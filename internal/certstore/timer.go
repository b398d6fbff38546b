package certstore

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/table"
)

// Timer is the renewal timer item of a domain. DynamoDB's TTL deletes it at
// RenewAt; that deletion on the stream starts the renewal.
type Timer struct {
	Domain    string
	Serial    string // serial of the certificate to replace
	ARICertID string
	RenewAt   time.Time
}

// timerItem is the renewal timer item; its TTL is the renewal time.
func timerItem(t Timer) map[string]types.AttributeValue {
	item := table.DomainKey(t.Domain, table.SKTimer)
	item[table.AttrDomain] = table.S(t.Domain)
	item[table.AttrSerial] = table.S(t.Serial)
	if t.ARICertID != "" {
		item[table.AttrARICertID] = table.S(t.ARICertID)
	}
	item[table.AttrRenewAt] = table.T(t.RenewAt)
	item[table.AttrExpiresAt] = table.N(t.RenewAt.Unix())
	return item
}

// TimerFromItem reads a timer item, for example the old image of a stream
// record.
func TimerFromItem(item map[string]types.AttributeValue) (Timer, error) {
	r := table.NewReader(item)
	t := Timer{
		Domain:    r.S(table.AttrDomain),
		Serial:    r.S(table.AttrSerial),
		ARICertID: r.S(table.AttrARICertID),
		RenewAt:   r.T(table.AttrRenewAt),
	}
	if sk := r.S(table.AttrSK); sk != table.SKTimer {
		return Timer{}, fmt.Errorf("read timer item: sort key %q is not %s", sk, table.SKTimer)
	}
	if t.Domain == "" {
		t.Domain = r.Domain()
	}
	if r.Err() != nil {
		return Timer{}, fmt.Errorf("read timer item %q: %w", t.Domain, r.Err())
	}
	return t, nil
}

// GetTimer returns the renewal timer of domain (strongly consistent), or
// ErrNotFound.
func (s *Store) GetTimer(ctx context.Context, domain string) (Timer, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.timers),
		Key:            table.DomainKey(domain, table.SKTimer),
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

// putTimer is the transaction item that replaces domain's renewal timer.
func (s *Store) putTimer(t Timer) types.TransactWriteItem {
	return types.TransactWriteItem{Put: &types.Put{TableName: aws.String(s.timers), Item: timerItem(t)}}
}

// deleteTimer is the transaction item that removes domain's renewal timer,
// so that nothing renews it.
func (s *Store) deleteTimer(domain string) types.TransactWriteItem {
	return types.TransactWriteItem{Delete: &types.Delete{TableName: aws.String(s.timers), Key: table.DomainKey(domain, table.SKTimer)}}
}
