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

// deleteAliases deletes the alias items of sans that still point at
// primary; an alias another domain took over is left alone.
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
