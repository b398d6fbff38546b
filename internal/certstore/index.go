package certstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"
)

// shardCount is the number of partitions of the sparse renewal and expiry
// indexes.
const shardCount = 16

// ShardOf returns the index shard of domain: the first byte of
// sha256(domain) modulo 16, as two decimal digits ("00".."15").
func ShardOf(domain string) string {
	sum := sha256.Sum256([]byte(domain))
	return fmt.Sprintf("%02d", sum[0]%shardCount)
}

// Shards returns every shard, "00" to "15".
func Shards() []string {
	out := make([]string, shardCount)
	for i := range out {
		out[i] = fmt.Sprintf("%02d", i)
	}
	return out
}

// List returns up to limit certificates in status, ordered by domain, from
// the ByStatus index (no key material, no certificate PEM). cursor is "" for
// the first page or the nextCursor of the previous page; nextCursor is ""
// after the last page. A cursor not issued for this status is ErrBadCursor.
func (s *Store) List(ctx context.Context, status Status, limit int, cursor string) (certs []Certificate, nextCursor string, err error) {
	if !status.Valid() {
		return nil, "", fmt.Errorf("list %s certificates: unknown status", status)
	}
	start, err := decodeCursor(cursor, func(k map[string]string) bool {
		return k[attrStatus] == string(status) && k[attrSK] == skCert && k[attrPK] == domainPK(k[attrDomain])
	}, attrPK, attrSK, attrStatus, attrDomain)
	if err != nil {
		return nil, "", fmt.Errorf("list %s certificates: %w", status, err)
	}
	e := newExpr()
	cond := fmt.Sprintf("%s = %s", e.n(attrStatus), e.v(avS(string(status))))
	items, next, err := s.queryPage(ctx, indexByStatus, e, cond, limit, start)
	if err != nil {
		return nil, "", fmt.Errorf("list %s certificates: %w", status, err)
	}
	certs = make([]Certificate, 0, len(items))
	for _, item := range items {
		c, err := certificateFromItem(item)
		if err != nil {
			return nil, "", fmt.Errorf("list %s certificates: %w", status, err)
		}
		certs = append(certs, *c)
	}
	return certs, next, nil
}

// Renewal is an active certificate due for renewal, as the ByRenewal index
// projects it.
type Renewal struct {
	Domain    string
	SANs      []string
	Serial    string
	ARICertID string
	RenewAt   time.Time
	NotAfter  time.Time
}

// DueForRenewal returns up to limit active certificates of shard whose
// renewAt is at or before now, earliest first. cursor and nextCursor page
// as in List.
func (s *Store) DueForRenewal(ctx context.Context, shard string, now time.Time, limit int, cursor string) (due []Renewal, nextCursor string, err error) {
	start, err := dueStart(shard, cursor)
	if err != nil {
		return nil, "", fmt.Errorf("list renewals due in shard %s: %w", shard, err)
	}
	e := newExpr()
	cond := fmt.Sprintf("%s = %s AND %s <= %s", e.n(attrShard), e.v(avS(shard)), e.n(attrRenewAt), e.v(avT(now)))
	items, next, err := s.queryPage(ctx, indexByRenewal, e, cond, limit, start)
	if err != nil {
		return nil, "", fmt.Errorf("list renewals due in shard %s: %w", shard, err)
	}
	due = make([]Renewal, 0, len(items))
	for _, item := range items {
		r := &itemReader{item: item}
		d := Renewal{
			Domain:    r.s(attrDomain),
			SANs:      r.l(attrSANs),
			Serial:    r.s(attrSerial),
			ARICertID: r.s(attrARICertID),
			RenewAt:   r.t(attrRenewAt),
			NotAfter:  r.t(attrNotAfter),
		}
		if d.Domain == "" {
			d.Domain = r.domainFromKey()
		}
		if r.err != nil {
			return nil, "", fmt.Errorf("list renewals due in shard %s: item %q: %w", shard, d.Domain, r.err)
		}
		due = append(due, d)
	}
	return due, next, nil
}

// dueStart turns a DueForRenewal cursor of shard back into the ByRenewal
// key it stands for (nil for ""), or ErrBadCursor.
func dueStart(shard, cursor string) (map[string]types.AttributeValue, error) {
	return decodeCursor(cursor, func(k map[string]string) bool {
		return k[attrShard] == shard && k[attrSK] == skCert && strings.HasPrefix(k[attrPK], domainPrefix)
	}, attrPK, attrSK, attrShard, attrRenewAt)
}

// Expiry is a certificate's expiry as the ByExpiry index holds it.
type Expiry struct {
	Domain   string
	NotAfter time.Time
}

// MinNotAfter returns the active certificate that expires first after now,
// querying the ByExpiry index of every shard. It returns ErrNotFound when
// no active certificate expires after now.
func (s *Store) MinNotAfter(ctx context.Context, now time.Time) (Expiry, error) {
	var (
		mu    sync.Mutex
		first Expiry
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, shard := range Shards() {
		g.Go(func() error {
			e := newExpr()
			cond := fmt.Sprintf("%s = %s AND %s > %s", e.n(attrShard), e.v(avS(shard)), e.n(attrNotAfter), e.v(avT(now)))
			out, err := s.client.Query(gctx, &dynamodb.QueryInput{
				TableName:                 aws.String(s.table),
				IndexName:                 aws.String(indexByExpiry),
				KeyConditionExpression:    aws.String(cond),
				ExpressionAttributeNames:  e.Names(),
				ExpressionAttributeValues: e.Values(),
				ScanIndexForward:          aws.Bool(true),
				Limit:                     aws.Int32(1),
			})
			if err != nil {
				return fmt.Errorf("shard %s: %w", shard, err)
			}
			if len(out.Items) == 0 {
				return nil
			}
			r := &itemReader{item: out.Items[0]}
			exp := Expiry{Domain: r.domainFromKey(), NotAfter: r.t(attrNotAfter)}
			if r.err != nil {
				return fmt.Errorf("shard %s: %w", shard, r.err)
			}
			mu.Lock()
			defer mu.Unlock()
			if first.Domain == "" || exp.NotAfter.Before(first.NotAfter) {
				first = exp
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Expiry{}, fmt.Errorf("find first expiry: %w", err)
	}
	if first.Domain == "" {
		return Expiry{}, fmt.Errorf("find first expiry: %w", ErrNotFound)
	}
	return first, nil
}

// LeaseRenewal moves the renewAt of an active domain from oldRenewAt to
// newRenewAt, so that the sweeper skips a domain whose renewal was just
// started. It returns ErrStale when renewAt is no longer oldRenewAt (someone
// else took the lease, or the certificate was renewed), ErrNotFound when
// the domain does not exist.
func (s *Store) LeaseRenewal(ctx context.Context, domain string, oldRenewAt, newRenewAt time.Time) error {
	e := newExpr()
	e.Set(attrRenewAt, avT(newRenewAt))
	e.Set(attrUpdatedAt, avT(s.now()))
	e.Add(attrVersion, avN(1))
	e.If("attribute_exists(%s)", e.n(attrPK))
	e.If("%s = %s", e.n(attrRenewAt), e.v(avT(oldRenewAt)))
	e.If("%s = %s", e.n(attrStatus), e.v(avS(string(StatusActive))))
	_, err := s.client.UpdateItem(ctx, s.updateCert(domain, e, types.ReturnValueNone))
	if old, failed := conditionFailed(err); failed {
		if old == nil {
			return fmt.Errorf("lease renewal of %q: %w", domain, ErrNotFound)
		}
		return fmt.Errorf("lease renewal of %q: renewAt is no longer %s: %w", domain, FormatTime(oldRenewAt), ErrStale)
	}
	if err != nil {
		return fmt.Errorf("lease renewal of %q: %w", domain, err)
	}
	return nil
}

// MoveTimer sets the renewal time of domain's certificate to renewAt and
// replaces its timer accordingly, in one transaction, provided the stored
// certificate is still active with serial (ARI may move a renewal earlier).
// It returns ErrStale when the certificate changed, ErrNotFound when the
// domain does not exist.
func (s *Store) MoveTimer(ctx context.Context, domain, serial string, renewAt time.Time) error {
	serial = strings.ToLower(serial)
	cur, err := s.GetConsistent(ctx, domain)
	if err != nil {
		return fmt.Errorf("move timer of %q: %w", domain, err)
	}
	if cur.Serial != serial || cur.Status != StatusActive {
		return fmt.Errorf("move timer of %q: serial %s is no longer the active certificate: %w", domain, serial, ErrStale)
	}
	e := newExpr()
	e.Set(attrRenewAt, avT(renewAt))
	e.Set(attrUpdatedAt, avT(s.now()))
	e.Add(attrVersion, avN(1))
	e.If("%s = %s", e.n(attrSerial), e.v(avS(serial)))
	e.If("%s = %s", e.n(attrStatus), e.v(avS(string(StatusActive))))
	_, err = s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		s.txUpdateCert(domain, e),
		s.putTimer(Timer{Domain: domain, Serial: serial, ARICertID: cur.ARICertID, RenewAt: renewAt}),
	}})
	if _, condFailed, _ := transactionFailure(err, 0); condFailed {
		return fmt.Errorf("move timer of %q: serial %s is no longer the active certificate: %w", domain, serial, ErrStale)
	}
	if err != nil {
		return fmt.Errorf("move timer of %q: %w", domain, err)
	}
	return nil
}

// queryPage runs one page of the key condition cond on index, from start,
// and returns its items and the cursor of the next page ("" after the last).
func (s *Store) queryPage(ctx context.Context, index string, e *expr, cond string, limit int, start map[string]types.AttributeValue) ([]map[string]types.AttributeValue, string, error) {
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
		key[k] = avS(v)
	}
	return key, nil
}
