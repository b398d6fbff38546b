package certstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/certflow/certflow/internal/table"
)

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
	e := table.NewExpr()
	cond := fmt.Sprintf("%s = %s AND %s <= %s", e.Name(table.AttrShard), e.Value(table.S(shard)), e.Name(table.AttrRenewAt), e.Value(table.T(now)))
	items, next, err := s.queryPage(ctx, table.IndexByRenewal, e, cond, limit, start)
	if err != nil {
		return nil, "", fmt.Errorf("list renewals due in shard %s: %w", shard, err)
	}
	due = make([]Renewal, 0, len(items))
	for _, item := range items {
		r := table.NewReader(item)
		d := Renewal{
			Domain:    r.S(table.AttrDomain),
			SANs:      r.L(table.AttrSANs),
			Serial:    r.S(table.AttrSerial),
			ARICertID: r.S(table.AttrARICertID),
			RenewAt:   r.T(table.AttrRenewAt),
			NotAfter:  r.T(table.AttrNotAfter),
		}
		if d.Domain == "" {
			d.Domain = r.Domain()
		}
		if r.Err() != nil {
			return nil, "", fmt.Errorf("list renewals due in shard %s: item %q: %w", shard, d.Domain, r.Err())
		}
		due = append(due, d)
	}
	return due, next, nil
}

// dueStart turns a DueForRenewal cursor of shard back into the ByRenewal
// key it stands for (nil for ""), or ErrBadCursor.
func dueStart(shard, cursor string) (map[string]types.AttributeValue, error) {
	return decodeCursor(cursor, func(k map[string]string) bool {
		return k[table.AttrShard] == shard && k[table.AttrSK] == table.SKCert && strings.HasPrefix(k[table.AttrPK], table.DomainPrefix)
	}, table.AttrPK, table.AttrSK, table.AttrShard, table.AttrRenewAt)
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
	for _, shard := range table.Shards() {
		g.Go(func() error {
			e := table.NewExpr()
			cond := fmt.Sprintf("%s = %s AND %s > %s", e.Name(table.AttrShard), e.Value(table.S(shard)), e.Name(table.AttrNotAfter), e.Value(table.T(now)))
			out, err := s.client.Query(gctx, &dynamodb.QueryInput{
				TableName:                 aws.String(s.table),
				IndexName:                 aws.String(table.IndexByExpiry),
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
			r := table.NewReader(out.Items[0])
			exp := Expiry{Domain: r.Domain(), NotAfter: r.T(table.AttrNotAfter)}
			if r.Err() != nil {
				return fmt.Errorf("shard %s: %w", shard, r.Err())
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
	e := table.NewExpr()
	e.Set(table.AttrRenewAt, table.T(newRenewAt))
	e.Set(table.AttrUpdatedAt, table.T(s.now()))
	e.Add(table.AttrVersion, table.N(1))
	e.If("attribute_exists(%s)", e.Name(table.AttrPK))
	e.If("%s = %s", e.Name(table.AttrRenewAt), e.Value(table.T(oldRenewAt)))
	e.If("%s = %s", e.Name(table.AttrStatus), e.Value(table.S(string(StatusActive))))
	_, err := s.client.UpdateItem(ctx, s.updateCert(domain, e, types.ReturnValueNone))
	if old, failed := conditionFailed(err); failed {
		if old == nil {
			return fmt.Errorf("lease renewal of %q: %w", domain, ErrNotFound)
		}
		return fmt.Errorf("lease renewal of %q: renewAt is no longer %s: %w", domain, table.FormatTime(oldRenewAt), ErrStale)
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
	e := table.NewExpr()
	e.Set(table.AttrRenewAt, table.T(renewAt))
	e.Set(table.AttrUpdatedAt, table.T(s.now()))
	e.Add(table.AttrVersion, table.N(1))
	e.If("%s = %s", e.Name(table.AttrSerial), e.Value(table.S(serial)))
	e.If("%s = %s", e.Name(table.AttrStatus), e.Value(table.S(string(StatusActive))))
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
