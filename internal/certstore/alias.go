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

// aliasItem points a SAN of primary, held by tenant, at primary's
// certificate item. target is the name the alias answers for.
func aliasItem(tenant, san, primary string) map[string]types.AttributeValue {
	item := table.DomainKey(san, table.SKAlias)
	item[table.AttrDomain] = table.S(primary)
	item[table.AttrTarget] = table.S(san)
	if tenant != "" {
		item[table.AttrTenant] = table.S(tenant)
	}
	if p := table.ParentOf(san); p != "" {
		item[table.AttrParent] = table.S(p)
	}
	return item
}

// maxBatchGet is DynamoDB's limit of keys in one BatchGetItem.
const maxBatchGet = 100

// claimAliases makes every name of sans an alias of primary held by
// tenant, unless one is held by another live domain (its alias that is not
// a tombstone, or its own certificate item that is not retired): then
// nothing is claimed and the error wraps ErrNameTaken and names the name.
// It returns the aliases it created (the ones primary did not hold yet),
// for releaseAliases to undo.
func (s *Store) claimAliases(ctx context.Context, tenant, primary string, sans []string) ([]string, error) {
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
		case !ok, table.NewReader(alias).Has(table.AttrRetiredAt):
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
			free.If("attribute_not_exists(%s) OR %s = %s OR attribute_exists(%s)", free.Name(table.AttrPK),
				free.Name(table.AttrDomain), free.Value(table.S(primary)), free.Name(table.AttrRetiredAt))
			notLive := table.NewExpr()
			notLive.If("attribute_not_exists(%s) OR %s = %s", notLive.Name(table.AttrPK), notLive.Name(table.AttrStatus), notLive.Value(table.S(string(StatusRetired))))
			actions = append(actions,
				types.TransactWriteItem{Put: &types.Put{
					TableName: aws.String(s.table), Item: aliasItem(tenant, san, primary),
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

// releaseAliases undoes claimAliases: the aliases a failed request created
// are deleted (they were never held). Best effort, since a name left
// claimed by a failed request only blocks until the request is made again
// or the domain retired.
func (s *Store) releaseAliases(ctx context.Context, primary string, sans []string) {
	for _, san := range sans {
		if san == primary {
			continue
		}
		e := table.NewExpr()
		e.If("%s = %s", e.Name(table.AttrDomain), e.Value(table.S(primary)))
		_, _ = s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName:                 aws.String(s.table),
			Key:                       table.DomainKey(san, table.SKAlias),
			ConditionExpression:       e.Condition(),
			ExpressionAttributeNames:  e.Names(),
			ExpressionAttributeValues: e.Values(),
		})
	}
}

// retireAliases turns the alias items of sans that still point at primary
// into tombstones (retiredAt set): the name is free for anyone to claim,
// and the tombstone remembers the tenant that held it. An alias another
// domain holds is left alone.
func (s *Store) retireAliases(ctx context.Context, primary string, sans []string) error {
	for _, san := range sans {
		if san == primary {
			continue
		}
		e := table.NewExpr()
		e.Set(table.AttrRetiredAt, table.T(s.now()))
		e.If("attribute_exists(%s)", e.Name(table.AttrPK))
		e.If("attribute_not_exists(%s)", e.Name(table.AttrRetiredAt))
		e.If("%s = %s", e.Name(table.AttrDomain), e.Value(table.S(primary)))
		_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(s.table),
			Key:                       table.DomainKey(san, table.SKAlias),
			UpdateExpression:          e.Update(),
			ConditionExpression:       e.Condition(),
			ExpressionAttributeNames:  e.Names(),
			ExpressionAttributeValues: e.Values(),
		})
		if _, failed := conditionFailed(err); failed {
			continue
		}
		if err != nil {
			return fmt.Errorf("retire alias %q: %w", san, err)
		}
	}
	return nil
}

// maxParentPages bounds the ByParent pages checkWildcards reads for one
// wildcard (each up to 1 MB).
const maxParentPages = 100

// checkWildcards refuses the request of tenant when a wildcard among names
// covers a name that another tenant holds: a certificate item that is not
// retired, or an alias that is not a tombstone, one label below the
// wildcard's base, from the ByParent index. An item with no tenant (written
// before tenancy) counts as another tenant's.
func (s *Store) checkWildcards(ctx context.Context, tenant string, names []string) error {
	for _, n := range names {
		base, ok := strings.CutPrefix(n, "*.")
		if !ok {
			continue
		}
		e := table.NewExpr()
		cond := fmt.Sprintf("%s = %s", e.Name(table.AttrParent), e.Value(table.S(base)))
		filter := fmt.Sprintf("(attribute_not_exists(%s) OR %s <> %s) AND (attribute_not_exists(%s) OR %s <> %s) AND attribute_not_exists(%s)",
			e.Name(table.AttrTenant), e.Name(table.AttrTenant), e.Value(table.S(tenant)),
			e.Name(table.AttrStatus), e.Name(table.AttrStatus), e.Value(table.S(string(StatusRetired))),
			e.Name(table.AttrRetiredAt))
		var start map[string]types.AttributeValue
		for page := 0; ; page++ {
			if page == maxParentPages {
				return fmt.Errorf("check wildcard %q: more than %d pages of names below %s", n, maxParentPages, base)
			}
			out, err := s.client.Query(ctx, &dynamodb.QueryInput{
				TableName:                 aws.String(s.table),
				IndexName:                 aws.String(table.IndexByParent),
				KeyConditionExpression:    aws.String(cond),
				FilterExpression:          aws.String(filter),
				ExpressionAttributeNames:  e.Names(),
				ExpressionAttributeValues: e.Values(),
				ExclusiveStartKey:         start,
			})
			if err != nil {
				return fmt.Errorf("check wildcard %q: %w", n, err)
			}
			for _, item := range out.Items {
				// Another wildcard one label up does not cover it.
				if name, _ := table.DomainOfPK(table.NewReader(item).S(table.AttrPK)); !strings.HasPrefix(name, "*.") {
					return &WildcardConflictError{Wildcard: n}
				}
			}
			if len(out.LastEvaluatedKey) == 0 {
				break
			}
			start = out.LastEvaluatedKey
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
// still lists the name. The wildcard's certificate is served only when no
// other tenant holds or held name (by a certificate item or an alias,
// tombstones included): a name its tenant retired is never served with
// another tenant's key. It reads the four candidates with one BatchGetItem
// and an aliased certificate, when needed, with one more GetItem each. It
// returns ErrNotFound when nothing can be served.
func (s *Store) GetForDelivery(ctx context.Context, name string) (*Certificate, error) {
	names := []string{name}
	w := WildcardParent(name)
	if w != "" {
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
	c, holders, err := s.servableFor(ctx, items, name)
	if err != nil || c != nil {
		return c, err
	}
	if w != "" {
		wc, _, err := s.servableFor(ctx, items, w)
		if err != nil {
			return nil, err
		}
		if wc != nil && !slices.ContainsFunc(holders, func(t string) bool { return t != wc.Tenant }) {
			return wc, nil
		}
	}
	return nil, fmt.Errorf("get certificate for %q: %w", name, ErrNotFound)
}

// servableFor returns, from the items GetForDelivery read, the certificate
// that serves n (nil when none), and the tenants that hold or held n by
// those items.
func (s *Store) servableFor(ctx context.Context, items map[string]map[string]types.AttributeValue, n string) (*Certificate, []string, error) {
	var holders []string
	if item, ok := items[table.DomainPK(n)+"|"+table.SKCert]; ok {
		c, err := certificateFromItem(item)
		if err != nil {
			return nil, nil, fmt.Errorf("get certificate for %q: %w", n, err)
		}
		if servable(c) {
			return c, nil, nil
		}
		holders = append(holders, c.Tenant)
	}
	item, ok := items[table.DomainPK(n)+"|"+table.SKAlias]
	if !ok {
		return nil, holders, nil
	}
	r := table.NewReader(item)
	primary, tenant := r.S(table.AttrDomain), r.S(table.AttrTenant)
	if r.Err() != nil || primary == "" {
		return nil, nil, fmt.Errorf("get certificate for %q: malformed alias item", n)
	}
	holders = append(holders, tenant)
	if r.Has(table.AttrRetiredAt) {
		return nil, holders, nil
	}
	c, err := s.Get(ctx, primary)
	if errors.Is(err, ErrNotFound) {
		return nil, holders, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get certificate for %q: %w", n, err)
	}
	if servable(c) && slices.Contains(c.SANs, n) {
		return c, nil, nil
	}
	return nil, append(holders, c.Tenant), nil
}

// servable reports whether c holds a certificate that may be served.
func servable(c *Certificate) bool {
	return c.Status != StatusRetired && c.CertPEM != "" && len(c.Key.Ciphertext) > 0
}
