package renewal

import (
	"context"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/reconcile"
)

// Reconciler makes sure an execution works on a domain that has work left:
// it claims and starts the next run, or gives a running execution more
// time. *reconcile.Reconciler implements it; the trigger and the sweeper
// both go through it, so a renewal started by one is never started again
// by the other.
type Reconciler interface {
	Reconcile(ctx context.Context, c *certstore.Certificate, by string) (reconcile.Outcome, error)
}

var _ Reconciler = (*reconcile.Reconciler)(nil)
