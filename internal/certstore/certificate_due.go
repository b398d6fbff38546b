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

// Due is a domain with work left whose dueAt has passed, as the ByDue index
// projects its certificate item: enough to reconcile it (Claim takes it as
// a *Certificate, see Certificate) and to re-ask ARI about it.
type Due struct {
	Domain     string
	SANs       []string
	Status     Status
	Generation int64
	Run        int64
	Execution  string
	Serial     string
	CA         string
	ARICertID  string
	RenewAt    time.Time
	NotAfter   time.Time
	DueAt      time.Time
}

// Certificate is the part of the certificate item d holds, for Claim.
func (d Due) Certificate() *Certificate {
	return &Certificate{Domain: d.Domain, SANs: d.SANs, Status: d.Status, Generation: d.Generation, Run: d.Run,
		Execution: d.Execution, Serial: d.Serial, CA: d.CA, ARICertID: d.ARICertID, RenewAt: d.RenewAt, NotAfter: d.NotAfter, DueAt: d.DueAt}
}

// DueBy returns up to limit domains of shard whose dueAt is at or before
// t, earliest first, from the ByDue index (a Query, never a Scan). cursor
// and nextCursor page as in List.
func (s *Store) DueBy(ctx context.Context, shard string, t time.Time, limit int, cursor string) (due []Due, nextCursor string, err error) {
	start, err := dueStart(shard, cursor)
	if err != nil {
		return nil, "", fmt.Errorf("list domains due in shard %s: %w", shard, err)
	}
	e := table.NewExpr()
	cond := fmt.Sprintf("%s = %s AND %s <= %s", e.Name(table.AttrShard), e.Value(table.S(shard)), e.Name(table.AttrDueAt), e.Value(table.T(t)))
	items, next, err := s.queryPage(ctx, table.IndexByDue, e, cond, limit, start)
	if err != nil {
		return nil, "", fmt.Errorf("list domains due in shard %s: %w", shard, err)
	}
	due = make([]Due, 0, len(items))
	for _, item := range items {
		r := table.NewReader(item)
		d := Due{
			Domain:     r.S(table.AttrDomain),
			SANs:       r.L(table.AttrSANs),
			Status:     Status(r.S(table.AttrStatus)),
			Generation: r.N(table.AttrGeneration),
			Run:        r.N(table.AttrRun),
			Execution:  r.S(table.AttrExecution),
			Serial:     r.S(table.AttrSerial),
			CA:         r.S(table.AttrCA),
			ARICertID:  r.S(table.AttrARICertID),
			RenewAt:    r.T(table.AttrRenewAt),
			NotAfter:   r.T(table.AttrNotAfter),
			DueAt:      r.T(table.AttrDueAt),
		}
		if d.Domain == "" {
			d.Domain = r.Domain()
		}
		if r.Err() != nil {
			return nil, "", fmt.Errorf("list domains due in shard %s: item %q: %w", shard, d.Domain, r.Err())
		}
		due = append(due, d)
	}
	return due, next, nil
}

// dueStart turns a DueBy cursor of shard back into the ByDue key it stands
// for (nil for ""), or ErrBadCursor.
func dueStart(shard, cursor string) (map[string]types.AttributeValue, error) {
	return decodeCursor(cursor, func(k map[string]string) bool {
		return k[table.AttrShard] == shard && k[table.AttrSK] == table.SKCert && strings.HasPrefix(k[table.AttrPK], table.DomainPrefix)
	}, table.AttrPK, table.AttrSK, table.AttrShard, table.AttrDueAt)
}

// Expiry is a certificate's expiry as the ByExpiry index holds it.
type Expiry struct {
	Domain   string
	NotAfter time.Time
}

// MinNotAfter returns the certificate of a domain with work left that
// expires first after now, querying the ByExpiry index of every shard. It
// returns ErrNotFound when no such certificate expires after now.
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

// MoveTimer sets the renewal time of domain's certificate to renewAt (dueAt
// follows) and replaces its timer accordingly, in one transaction, provided
// the stored certificate is still the active serial and no renewal of it is
// running: the ARI re-check moves a renewal earlier, never one in flight. It
// returns ErrStale when the certificate changed or is renewing, ErrNotFound
// when the domain does not exist.
func (s *Store) MoveTimer(ctx context.Context, domain, serial, ariCertID string, renewAt time.Time) error {
	serial = strings.ToLower(serial)
	e := table.NewExpr()
	e.Set(table.AttrRenewAt, table.T(renewAt))
	e.Set(table.AttrDueAt, table.T(s.due(renewAt)))
	e.Set(table.AttrUpdatedAt, table.T(s.now()))
	e.Add(table.AttrVersion, table.N(1))
	e.If("%s = %s", e.Name(table.AttrSerial), e.Value(table.S(serial)))
	e.If("%s = %s", e.Name(table.AttrStatus), e.Value(table.S(string(StatusActive))))
	e.If("attribute_not_exists(%s)", e.Name(table.AttrExecution))
	_, err := s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		s.txUpdateCert(domain, e),
		s.putTimer(Timer{Domain: domain, Serial: serial, ARICertID: ariCertID, RenewAt: renewAt}),
	}})
	if old, condFailed, _ := transactionFailure(err, 0); condFailed {
		if old == nil {
			return fmt.Errorf("move timer of %q: %w", domain, ErrNotFound)
		}
		return fmt.Errorf("move timer of %q: serial %s is no longer the idle active certificate: %w", domain, serial, ErrStale)
	}
	if err != nil {
		return fmt.Errorf("move timer of %q: %w", domain, err)
	}
	return nil
}
