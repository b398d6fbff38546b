package certstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/table"
)

// Lease is one Issue invocation's turn at a domain's order: taken when the
// invocation starts (TakeLease) and held until it ends (ReleaseLease, or
// SaveIssued), or at the latest until its deadline. One invocation at a
// time works a domain's order, whichever execution it runs for: an
// execution can end (stopped, timed out, lost with the engine) while its
// Issue invocation still runs, and the run the reconciler starts next
// must neither place a second order nor solve the same challenges at the
// same time. It waits for the lease, then resumes the stored order.
type Lease struct {
	// Execution is the execution the invocation runs for.
	Execution string
	// Token is unique to the invocation.
	Token string
	// Until is when the invocation has certainly ended (its deadline): a
	// lease not released by then is over.
	Until time.Time
}

// LeaseHeldError means another Issue invocation holds the domain's lease:
// it releases it when it ends, by Until at the latest.
type LeaseHeldError struct {
	Domain string
	Until  time.Time
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("another Issue invocation is working on the order of %q, until %s at the latest", e.Domain, e.Until.Format(time.RFC3339))
}

// TakeLease gives the invocation of l the domain's lease, for the
// execution that owns the domain. A lease of another invocation still in
// force is a *LeaseHeldError; a superseded execution gets ErrSuperseded
// (ErrRetired, ErrQuarantined, ErrNotFound likewise).
func (s *Store) TakeLease(ctx context.Context, domain string, l Lease) error {
	now := s.now()
	e := table.NewExpr()
	e.Set(table.AttrLease, table.S(l.Token))
	e.Set(table.AttrLeaseUntil, table.T(l.Until))
	e.Add(table.AttrVersion, table.N(1))
	e.If("attribute_not_exists(%s) OR %s < %s", e.Name(table.AttrLeaseUntil), e.Name(table.AttrLeaseUntil), e.Value(table.T(now)))
	fence(e, l.Execution)
	_, err := s.client.UpdateItem(ctx, s.updateCert(domain, e, types.ReturnValueNone))
	if old, failed := conditionFailed(err); failed {
		err := fenceFailure(old, l.Execution)
		if errors.Is(err, ErrStale) {
			err = &LeaseHeldError{Domain: domain, Until: table.NewReader(old).T(table.AttrLeaseUntil)}
		}
		return fmt.Errorf("take the lease of %q: %w", domain, err)
	}
	if err != nil {
		return fmt.Errorf("take the lease of %q: %w", domain, err)
	}
	return nil
}

// ReleaseLease ends the lease l when its invocation ends. A lease already
// over (released, stored with the certificate, past its deadline and taken
// by another) is not an error.
func (s *Store) ReleaseLease(ctx context.Context, domain string, l Lease) error {
	e := table.NewExpr()
	e.Remove(table.AttrLease, table.AttrLeaseUntil)
	e.Add(table.AttrVersion, table.N(1))
	e.If("%s = %s", e.Name(table.AttrLease), e.Value(table.S(l.Token)))
	_, err := s.client.UpdateItem(ctx, s.updateCert(domain, e, types.ReturnValueNone))
	if _, failed := conditionFailed(err); failed {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release the lease of %q: %w", domain, err)
	}
	return nil
}

// SpendSlot records, for the invocation holding the lease l, that a new
// order is about to be placed with the slot seq of the new-order budget:
// that slot may not place another. It is written before the order is
// sent, so a lost answer can never lead to a second order on the same
// slot. spent is false when the slot was spent already. The lease, not
// the execution, fences it: what an invocation places, it stores.
func (s *Store) SpendSlot(ctx context.Context, domain string, l Lease, seq int64) (spent bool, err error) {
	e := table.NewExpr()
	e.Set(table.AttrSpentSlot, table.N(seq))
	e.Set(table.AttrUpdatedAt, table.T(s.now()))
	e.Add(table.AttrVersion, table.N(1))
	e.If("%s = %s", e.Name(table.AttrLease), e.Value(table.S(l.Token)))
	e.If("attribute_not_exists(%s) OR %s <> %s", e.Name(table.AttrSpentSlot), e.Name(table.AttrSpentSlot), e.Value(table.N(seq)))
	_, err = s.client.UpdateItem(ctx, s.updateCert(domain, e, types.ReturnValueNone))
	if old, failed := conditionFailed(err); failed {
		r := table.NewReader(old)
		if old == nil || r.S(table.AttrLease) != l.Token {
			return false, fmt.Errorf("spend order slot %d of %q: %w", seq, domain, lost(domain, r))
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("spend order slot %d of %q: %w", seq, domain, err)
	}
	return true, nil
}

// UnspendSlot gives the slot seq back when the order it was spent on
// certainly never reached the CA: the execution's retry may place its
// order with it.
func (s *Store) UnspendSlot(ctx context.Context, domain string, l Lease, seq int64) error {
	e := table.NewExpr()
	e.Remove(table.AttrSpentSlot)
	e.Add(table.AttrVersion, table.N(1))
	e.If("%s = %s", e.Name(table.AttrLease), e.Value(table.S(l.Token)))
	e.If("%s = %s", e.Name(table.AttrSpentSlot), e.Value(table.N(seq)))
	_, err := s.client.UpdateItem(ctx, s.updateCert(domain, e, types.ReturnValueNone))
	if _, failed := conditionFailed(err); failed {
		return nil
	}
	if err != nil {
		return fmt.Errorf("give back order slot %d of %q: %w", seq, domain, err)
	}
	return nil
}

// StorePlaced stores the order the invocation holding the lease l just
// placed. It is accepted even when another execution owns the domain by
// now: that execution resumes the order once the lease is released. It
// returns ErrRetired when the domain was deleted meanwhile, and a
// *LeaseHeldError or ErrNotFound when the lease is over.
func (s *Store) StorePlaced(ctx context.Context, o Order, l Lease) error {
	e := table.NewExpr()
	e.Add(table.AttrVersion, table.N(1))
	e.If("%s = %s", e.Name(table.AttrLease), e.Value(table.S(l.Token)))
	e.If("%s <> %s", e.Name(table.AttrStatus), e.Value(table.S(string(StatusRetired))))
	_, err := s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		s.txUpdateCert(o.Domain, e),
		{Put: &types.Put{TableName: aws.String(s.table), Item: orderItem(o)}},
	}})
	if old, failed, _ := transactionFailure(err, 0); failed {
		r := table.NewReader(old)
		if old != nil && Status(r.S(table.AttrStatus)) == StatusRetired {
			return fmt.Errorf("store the order of %q: %w", o.Domain, ErrRetired)
		}
		return fmt.Errorf("store the order of %q: %w", o.Domain, lost(o.Domain, r))
	}
	if err != nil {
		return fmt.Errorf("store the order of %q: %w", o.Domain, err)
	}
	return nil
}

// lost is why an invocation no longer holds the domain's lease, from the
// item as it was.
func lost(domain string, r *table.Reader) error {
	if r.S(table.AttrPK) == "" {
		return ErrNotFound
	}
	return &LeaseHeldError{Domain: domain, Until: r.T(table.AttrLeaseUntil)}
}
