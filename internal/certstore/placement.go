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

// Placement is one Issue invocation placing a new order for a domain, from
// spending its budget slot (SpendSlot) until the order is stored
// (StorePlaced) or the invocation knows it will store none
// (EndPlacement). Meanwhile no other invocation places an order for the
// domain, whichever execution it runs for: an execution can end (stopped,
// timed out, lost with the engine) while its Issue invocation still runs,
// and the run the reconciler starts next must resume that invocation's
// order, not place a second one for the same certificate.
type Placement struct {
	// Execution is the execution the invocation runs for.
	Execution string
	// Token is unique to the invocation.
	Token string
	// Until is when the invocation has certainly ended (its deadline): a
	// placement never stored or ended by then is over.
	Until time.Time
}

// PlacementInFlightError means another invocation is placing an order for
// the domain: its order is stored (and resumed) or its placement over by
// Until.
type PlacementInFlightError struct {
	Domain string
	Until  time.Time
}

func (e *PlacementInFlightError) Error() string {
	return fmt.Sprintf("an order for %q is being placed by another invocation, until %s at the latest", e.Domain, e.Until.Format(time.RFC3339))
}

// SpendSlot begins placement p of a new order for domain, with the slot seq
// of the new-order budget, for the execution that owns the domain: the
// slot may not place another order, and no other invocation may place one
// until the placement ends. It is written before the order is sent, so a
// lost answer can never lead to a second order on the same slot. spent is
// false when the slot was spent already; a placement by another
// invocation still in force is a *PlacementInFlightError.
func (s *Store) SpendSlot(ctx context.Context, domain string, p Placement, seq int64) (spent bool, err error) {
	now := s.now()
	e := table.NewExpr()
	e.Set(table.AttrSpentSlot, table.N(seq))
	e.Set(table.AttrPlacing, table.S(p.Token))
	e.Set(table.AttrPlacingUntil, table.T(p.Until))
	e.Set(table.AttrUpdatedAt, table.T(now))
	e.Add(table.AttrVersion, table.N(1))
	e.If("attribute_not_exists(%s) OR %s <> %s", e.Name(table.AttrSpentSlot), e.Name(table.AttrSpentSlot), e.Value(table.N(seq)))
	e.If("attribute_not_exists(%s) OR %s < %s", e.Name(table.AttrPlacingUntil), e.Name(table.AttrPlacingUntil), e.Value(table.T(now)))
	fence(e, p.Execution)
	_, err = s.client.UpdateItem(ctx, s.updateCert(domain, e, types.ReturnValueNone))
	if old, failed := conditionFailed(err); failed {
		err := fenceFailure(old, p.Execution)
		if !errors.Is(err, ErrStale) {
			return false, fmt.Errorf("spend order slot %d of %q: %w", seq, domain, err)
		}
		if until := table.NewReader(old).T(table.AttrPlacingUntil); !until.Before(now.Truncate(time.Second)) {
			return false, &PlacementInFlightError{Domain: domain, Until: until}
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("spend order slot %d of %q: %w", seq, domain, err)
	}
	return true, nil
}

// StorePlaced stores the order placement p just placed and ends the
// placement. It is accepted while the placement is in force, even when
// another execution owns the domain by now: that execution resumes the
// order instead of placing a second one. It returns ErrRetired when the
// domain was deleted meanwhile, and ErrStale when the placement is over.
func (s *Store) StorePlaced(ctx context.Context, o Order, p Placement) error {
	e := table.NewExpr()
	e.Remove(table.AttrPlacing, table.AttrPlacingUntil)
	e.Add(table.AttrVersion, table.N(1))
	e.If("%s = %s", e.Name(table.AttrPlacing), e.Value(table.S(p.Token)))
	e.If("%s <> %s", e.Name(table.AttrStatus), e.Value(table.S(string(StatusRetired))))
	_, err := s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		s.txUpdateCert(o.Domain, e),
		{Put: &types.Put{TableName: aws.String(s.table), Item: orderItem(o)}},
	}})
	if old, failed, _ := transactionFailure(err, 0); failed {
		if Status(table.NewReader(old).S(table.AttrStatus)) == StatusRetired {
			return fmt.Errorf("store the order of %q: %w", o.Domain, ErrRetired)
		}
		return fmt.Errorf("store the order of %q: the placement is over: %w", o.Domain, ErrStale)
	}
	if err != nil {
		return fmt.Errorf("store the order of %q: %w", o.Domain, err)
	}
	return nil
}

// EndPlacement ends placement p when the invocation will store no order
// (newOrder failed), and gives its slot back when the CA certainly
// created no order: the execution's retry may place its order with it.
// A placement already over is not an error.
func (s *Store) EndPlacement(ctx context.Context, domain string, p Placement, giveBack bool) error {
	e := table.NewExpr()
	e.Remove(table.AttrPlacing, table.AttrPlacingUntil)
	if giveBack {
		e.Remove(table.AttrSpentSlot)
	}
	e.Add(table.AttrVersion, table.N(1))
	e.If("%s = %s", e.Name(table.AttrPlacing), e.Value(table.S(p.Token)))
	_, err := s.client.UpdateItem(ctx, s.updateCert(domain, e, types.ReturnValueNone))
	if _, failed := conditionFailed(err); failed {
		return nil
	}
	if err != nil {
		return fmt.Errorf("end the order placement for %q: %w", domain, err)
	}
	return nil
}
