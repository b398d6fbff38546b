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

// Order is the ACME order an execution placed for a domain and has not yet
// turned into a stored certificate: what a retried Issue step needs to
// resume it instead of placing another. The key is sealed; the CSR is
// public.
type Order struct {
	Domain    string
	Execution string // the execution that placed it
	URL       string
	Names     []string // the order's identifiers
	Replaces  string
	Profile   string
	Directory string    // the ACME directory of the CA
	Account   string    // the account URI it was placed with
	CSR       []byte    // nil until the key is made
	Key       SealedKey // empty until the key is made
	KeyType   string
	CreatedAt time.Time
}

func orderItem(o Order) map[string]types.AttributeValue {
	item := table.DomainKey(o.Domain, table.SKOrder)
	item[table.AttrDomain] = table.S(o.Domain)
	item[table.AttrExecution] = table.S(o.Execution)
	item[table.AttrOrderURL] = table.S(o.URL)
	item[table.AttrNames] = table.L(o.Names)
	item[table.AttrDirectoryURL] = table.S(o.Directory)
	item[table.AttrAccount] = table.S(o.Account)
	item[table.AttrCreatedAt] = table.T(o.CreatedAt)
	if o.Replaces != "" {
		item[table.AttrReplaces] = table.S(o.Replaces)
	}
	if o.Profile != "" {
		item[table.AttrProfile] = table.S(o.Profile)
	}
	if len(o.CSR) > 0 {
		item[table.AttrCSR] = table.B(o.CSR)
		item[table.AttrKeyWrapped] = table.B(o.Key.Wrapped)
		item[table.AttrKeyCiphertext] = table.B(o.Key.Ciphertext)
		item[table.AttrKeyType] = table.S(o.KeyType)
	}
	return item
}

// PutOrder stores the pending order of the execution that owns its domain
// (replacing any earlier one): once right after the CA created it, again
// when its key and CSR are made, before the order is finalised. It returns
// ErrSuperseded, ErrRetired, ErrQuarantined or ErrNotFound when the
// execution no longer owns the domain.
func (s *Store) PutOrder(ctx context.Context, o Order) error {
	owner := table.NewExpr()
	fence(owner, o.Execution)
	_, err := s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{ConditionCheck: &types.ConditionCheck{
			TableName: aws.String(s.table), Key: table.DomainKey(o.Domain, table.SKCert),
			ConditionExpression: owner.Condition(), ExpressionAttributeNames: owner.Names(), ExpressionAttributeValues: owner.Values(),
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
		{Put: &types.Put{TableName: aws.String(s.table), Item: orderItem(o)}},
	}})
	if old, failed, _ := transactionFailure(err, 0); failed {
		return fmt.Errorf("store the order of %q: %w", o.Domain, fenceFailure(old, o.Execution))
	}
	if err != nil {
		return fmt.Errorf("store the order of %q: %w", o.Domain, err)
	}
	return nil
}

// GetOrder returns the pending order of domain (strongly consistent), or
// ErrNotFound.
func (s *Store) GetOrder(ctx context.Context, domain string) (Order, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: table.DomainKey(domain, table.SKOrder), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Order{}, fmt.Errorf("get the order of %q: %w", domain, err)
	}
	if out.Item == nil {
		return Order{}, fmt.Errorf("get the order of %q: %w", domain, ErrNotFound)
	}
	r := table.NewReader(out.Item)
	o := Order{
		Domain:    r.S(table.AttrDomain),
		Execution: r.S(table.AttrExecution),
		URL:       r.S(table.AttrOrderURL),
		Names:     r.L(table.AttrNames),
		Replaces:  r.S(table.AttrReplaces),
		Profile:   r.S(table.AttrProfile),
		Directory: r.S(table.AttrDirectoryURL),
		Account:   r.S(table.AttrAccount),
		CSR:       r.B(table.AttrCSR),
		Key:       SealedKey{Wrapped: r.B(table.AttrKeyWrapped), Ciphertext: r.B(table.AttrKeyCiphertext)},
		KeyType:   r.S(table.AttrKeyType),
		CreatedAt: r.T(table.AttrCreatedAt),
	}
	if r.Err() != nil {
		return Order{}, fmt.Errorf("get the order of %q: %w", domain, r.Err())
	}
	return o, nil
}

// DropOrder deletes the pending order of domain when the CA will never
// complete it (invalid, expired, unknown): the next attempt places a new
// one. Deleting a missing order is not an error.
func (s *Store) DropOrder(ctx context.Context, domain string) error {
	d := s.deleteOrder(domain).Delete
	if _, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: d.TableName, Key: d.Key}); err != nil {
		return fmt.Errorf("drop the order of %q: %w", domain, err)
	}
	return nil
}

// deleteOrder is the transaction item that deletes domain's pending order.
func (s *Store) deleteOrder(domain string) types.TransactWriteItem {
	return types.TransactWriteItem{Delete: &types.Delete{TableName: aws.String(s.table), Key: table.DomainKey(domain, table.SKOrder)}}
}
