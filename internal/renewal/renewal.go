package renewal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/execution"
)

// DefaultLease is how far a started renewal pushes the certificate's
// renewAt, so that the sweeper does not start it again while it runs. A
// renewal still unfinished after the lease (a CA outage, a long backoff) is
// started again under a new execution name.
const DefaultLease = 6 * time.Hour

// ReasonRenewal is the execution input's reason for a renewal.
const ReasonRenewal = "renewal"

// What started a renewal, in the execution input's startedBy: the expired
// timer (the normal path) or the sweeper (a timer late or lost).
const (
	StartedByTimer   = "timer"
	StartedBySweeper = "sweeper"
)

// Input is the issuance state machine's execution input for a renewal
// (docs/ARCHITECTURE.md, "Execution input").
type Input struct {
	Domain         string   `json:"domain"`
	SANs           []string `json:"sans"`
	Replaces       string   `json:"replaces,omitempty"` // ARI certificate ID of the certificate replaced
	ReplacesSerial string   `json:"replacesSerial"`
	Reason         string   `json:"reason"`
	StartedBy      string   `json:"startedBy"` // StartedByTimer or StartedBySweeper
}

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
// by is recorded in the execution input.
func (s starter) startOne(ctx context.Context, d due, now time.Time, by string) (started bool, err error) {
	serial := strings.ToLower(d.Serial)
	name := execution.RenewName(d.Domain, serial, d.RenewAt)
	sans := d.SANs
	if len(sans) == 0 {
		sans = []string{d.Domain}
	}
	_, already, err := s.start.Start(ctx, name, Input{
		Domain:         d.Domain,
		SANs:           sans,
		Replaces:       d.ARICertID,
		ReplacesSerial: serial,
		Reason:         ReasonRenewal,
		StartedBy:      by,
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
