package renewal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/execution"
	"github.com/certflow/certflow/internal/flow"
)

// DefaultLease is how far a started renewal pushes the certificate's
// renewAt, so that the sweeper does not start it again while it runs. A
// renewal still unfinished after the lease (a CA outage, a long backoff) is
// started again under a new execution name.
const DefaultLease = 6 * time.Hour

// Starter starts a state machine execution; an execution of the same name
// that already exists is a success with alreadyStarted true.
// *execution.Starter implements it.
type Starter interface {
	Start(ctx context.Context, name string, input any) (arn string, alreadyStarted bool, err error)
}

// Leaser moves an active certificate's renewAt from oldRenewAt to
// newRenewAt. It returns an error wrapping certstore.ErrStale when renewAt
// is no longer oldRenewAt (another starter holds the lease, or the
// certificate was renewed) and certstore.ErrNotFound when the domain is
// gone; both mean there is nothing to lease. *certstore.Store implements it.
type Leaser interface {
	LeaseRenewal(ctx context.Context, domain string, oldRenewAt, newRenewAt time.Time) error
}

var (
	_ Starter = (*execution.Starter)(nil)
	_ Leaser  = (*certstore.Store)(nil)
)

// due is one certificate to renew, from a timer or from the ByRenewal index.
type due struct {
	Domain    string
	SANs      []string
	Serial    string
	ARICertID string
	RenewAt   time.Time
}

// starter is what the trigger and the sweeper share, so that both start a
// given renewal under the same execution name and lease it the same way.
type starter struct {
	start Starter
	lease Leaser
	dur   time.Duration
}

// startOne starts the renewal of d and leases it until now+lease. It
// reports whether this call started the execution (false when it existed).
// by (flow.StartedByTimer or flow.StartedBySweeper) is recorded in the
// execution input.
func (s starter) startOne(ctx context.Context, d due, now time.Time, by string) (started bool, err error) {
	serial := strings.ToLower(d.Serial)
	name := flow.RenewName(d.Domain, serial, d.RenewAt)
	sans := d.SANs
	if len(sans) == 0 {
		sans = []string{d.Domain}
	}
	_, already, err := s.start.Start(ctx, name, flow.Input{
		Domain:         d.Domain,
		SANs:           sans,
		Replaces:       d.ARICertID,
		ReplacesSerial: serial,
		Reason:         flow.ReasonRenewal,
		StartedBy:      by,
		Execution:      name,
	})
	if err != nil {
		return false, fmt.Errorf("start renewal of %q: %w", d.Domain, err)
	}
	dur := s.dur
	if dur <= 0 {
		dur = DefaultLease
	}
	err = s.lease.LeaseRenewal(ctx, d.Domain, d.RenewAt, now.Add(dur))
	if err != nil && !errors.Is(err, certstore.ErrStale) && !errors.Is(err, certstore.ErrNotFound) {
		// The execution runs; a retry finds it by name and leases again.
		return !already, fmt.Errorf("lease renewal of %q: %w", d.Domain, err)
	}
	return !already, nil
}
