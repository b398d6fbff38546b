package budget

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
)

// Reserver reserves slots of the new-order schedule. *Schedule implements
// it.
type Reserver interface {
	Reserve(ctx context.Context) (Reservation, error)
}

// Awaiter records that the execution owning a domain will act again at a
// time: its deadline moves past the slot, so the reconciler leaves a
// domain that waits in the queue alone. *certstore.Store implements it.
type Awaiter interface {
	Await(ctx context.Context, domain, execution string, until time.Time) error
}

var (
	_ Reserver = (*Schedule)(nil)
	_ Awaiter  = (*certstore.Store)(nil)
)

// Step runs the ReserveOrderSlot state: one atomic reservation of the next
// slot of the new-order schedule, however long the queue, and the domain's
// deadline moved past it. Its answer is the state's $.orderSlot; the state
// machine then waits once, until At (a Wait state's TimestampPath), and
// issues.
type Step struct {
	reservers map[string]Reserver // by CA (flow.CAPrimary, flow.CAFallback)
	awaiter   Awaiter
}

// NewStep returns the ReserveOrderSlot step over the budgets of the
// deployment's CAs, by CA name.
func NewStep(reservers map[string]Reserver, a Awaiter) *Step {
	return &Step{reservers: reservers, awaiter: a}
}

// Handle reserves one new-order slot for the execution in.Execution of
// in.Domain. At is UTC with second precision ("2026-03-01T12:00:00Z"),
// rounded up, so a wait until it never ends before the slot. The budget
// unreachable is a dependency error (retried by the state machine); an
// execution that no longer owns its domain gets SupersededError or
// DomainRetiredError, and its reservation simply goes unused.
func (s *Step) Handle(ctx context.Context, in flow.Input) (flow.OrderSlot, error) {
	if in.Domain == "" || in.Execution == "" {
		return flow.OrderSlot{}, &failure.InvalidInputError{Message: "ReserveOrderSlot needs domain and execution"}
	}
	ca := in.CAOrPrimary()
	reserver, ok := s.reservers[ca]
	if !ok {
		return flow.OrderSlot{}, &failure.InvalidInputError{Message: fmt.Sprintf("no order budget for CA %q", ca)}
	}
	r, err := reserver.Reserve(ctx)
	if err != nil {
		return flow.OrderSlot{}, &failure.TransientError{Code: failure.CodeDependencyError, Message: "the order budget is unavailable", Err: err}
	}
	r.At = ceilSecond(r.At)
	r.CA = ca
	err = s.awaiter.Await(ctx, in.Domain, in.Execution, r.At)
	switch {
	case errors.Is(err, certstore.ErrRetired):
		return flow.OrderSlot{}, &failure.DomainRetiredError{Message: in.Domain, Err: err}
	case errors.Is(err, certstore.ErrSuperseded), errors.Is(err, certstore.ErrQuarantined), errors.Is(err, certstore.ErrNotFound):
		return flow.OrderSlot{}, &failure.SupersededError{Message: in.Execution, Err: err}
	case err != nil:
		return flow.OrderSlot{}, fmt.Errorf("reserve order slot for %q: %w", in.Domain, err)
	}
	return r, nil
}
