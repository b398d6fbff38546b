package certstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/table"
)

// aliasItem points a SAN of primary at primary's certificate item. target is
// the name the alias answers for.
func aliasItem(san, primary string) map[string]types.AttributeValue {
	item := table.DomainKey(san, table.SKAlias)
	item[table.AttrDomain] = table.S(primary)
	item[table.AttrTarget] = table.S(san)
	return item
}

// maxBatchGet is DynamoDB's limit of keys in one BatchGetItem.
const maxBatchGet = 100

// claimAliases makes every name of sans an alias of primary, unless one is
// held by another live domain (its alias, or its own certificate item that
// is not retired): then nothing is claimed and the error wraps
// ErrNameTaken and names the name. It returns the aliases it created (the
// ones primary did not hold yet), for releaseAliases to undo.
func (s *Store) claimAliases(ctx context.Context, primary string, sans []string) ([]string, error) {
	var keys []map[string]types.AttributeValue
	for _, san := range sans {
		keys = append(keys, table.DomainKey(san, table.SKAlias), table.DomainKey(san, table.SKCert))
	}
	items := map[string]map[string]types.AttributeValue{}
	for chunk := range slices.Chunk(keys, maxBatchGet) {
		got, err := s.batchGet(ctx, chunk)
		if err != nil {
			return nil, fmt.Errorf("claim SANs: %w", err)
		}
		for k, v := range got {
			items[k] = v
		}
	}
	var todo []string
	for _, san := range sans {
		if item, ok := items[table.DomainPK(san)+"|"+table.SKCert]; ok && statusOf(item) != StatusRetired {
			return nil, &NameTakenError{Name: san}
		}
		alias, ok := items[table.DomainPK(san)+"|"+table.SKAlias]
		switch owner := table.NewReader(alias).S(table.AttrDomain); {
		case !ok:
			todo = append(todo, san)
		case owner != primary:
			return nil, &NameTakenError{Name: san}
		}
	}
	var claimed []string
	// Two actions per name: the alias, and the check that the name is no
	// live domain's own.
	for chunk := range slices.Chunk(todo, maxTransactItems/2) {
		var actions []types.TransactWriteItem
		for _, san := range chunk {
			free := table.NewExpr()
			free.If("attribute_not_exists(%s) OR %s = %s", free.Name(table.AttrPK), free.Name(table.AttrDomain), free.Value(table.S(primary)))
			notLive := table.NewExpr()
			notLive.If("attribute_not_exists(%s) OR %s = %s", notLive.Name(table.AttrPK), notLive.Name(table.AttrStatus), notLive.Value(table.S(string(StatusRetired))))
			actions = append(actions,
				types.TransactWriteItem{Put: &types.Put{
					TableName: aws.String(s.table), Item: aliasItem(san, primary),
					ConditionExpression: free.Condition(), ExpressionAttributeNames: free.Names(), ExpressionAttributeValues: free.Values(),
				}},
				types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
					TableName: aws.String(s.table), Key: table.DomainKey(san, table.SKCert),
					ConditionExpression: notLive.Condition(), ExpressionAttributeNames: notLive.Names(), ExpressionAttributeValues: notLive.Values(),
				}})
		}
		_, err := s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: actions})
		if err != nil {
			s.releaseAliases(ctx, primary, claimed)
			var tce *types.TransactionCanceledException
			if errors.As(err, &tce) {
				return nil, &NameTakenError{Name: strings.Join(chunk, ", ")}
			}
			return nil, fmt.Errorf("claim SANs: %w", err)
		}
		claimed = append(claimed, chunk...)
	}
	return claimed, nil
}

// releaseAliases undoes claimAliases: best effort, since a name left
// claimed by a failed request only blocks until the request is made again
// or the domain retired.
func (s *Store) releaseAliases(ctx context.Context, primary string, sans []string) {
	_ = s.deleteAliases(ctx, primary, sans)
}

// deleteAliases deletes the alias items of sans that still point at
// primary; an alias another domain holds is left alone.
func (s *Store) deleteAliases(ctx context.Context, primary string, sans []string) error {
	for _, san := range sans {
		if san == primary {
			continue
		}
		e := table.NewExpr()
		e.If("%s = %s", e.Name(table.AttrDomain), e.Value(table.S(primary)))
		_, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName:                 aws.String(s.table),
			Key:                       table.DomainKey(san, table.SKAlias),
			ConditionExpression:       e.Condition(),
			ExpressionAttributeNames:  e.Names(),
			ExpressionAttributeValues: e.Values(),
		})
		if _, failed := conditionFailed(err); failed {
			continue
		}
		if err != nil {
			return fmt.Errorf("delete alias %q: %w", san, err)
		}
	}
	return nil
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
		keys = append(keys, table.DomainKey(n, table.SKCert), table.DomainKey(n, table.SKAlias))
	}
	items, err := s.batchGet(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("get certificate for %q: %w", name, err)
	}
	for _, n := range names {
		if item, ok := items[table.DomainPK(n)+"|"+table.SKCert]; ok {
			c, err := certificateFromItem(item)
			if err != nil {
				return nil, fmt.Errorf("get certificate for %q: %w", name, err)
			}
			if servable(c) {
				return c, nil
			}
		}
		if item, ok := items[table.DomainPK(n)+"|"+table.SKAlias]; ok {
			r := table.NewReader(item)
			primary := r.S(table.AttrDomain)
			if r.Err() != nil || primary == "" {
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
