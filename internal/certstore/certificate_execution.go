package certstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/table"
)

// Claim makes a new execution the owner of a domain that has work left, on
// condition that the item is still as cur shows it (same run, status,
// execution and certificate): the next run, named flow.RenewName of the
// served certificate for an active domain, flow.IssueName of the
// generation otherwise. Its waits start at zero and dueAt gives it the
// store's grace to act. The caller then starts the execution of the
// returned item's Execution; if that start is lost, the reconciler finds
// the domain due again and claims once more. Of two concurrent claimers one
// wins; the other gets ErrStale. A domain without work left returns
// ErrQuarantined, ErrRetired or ErrStale.
func (s *Store) Claim(ctx context.Context, cur *Certificate, now time.Time) (*Certificate, error) {
	if !cur.Status.Working() {
		return nil, fmt.Errorf("claim %q: status %s: %w", cur.Domain, cur.Status, ErrStale)
	}
	run := cur.Run + 1
	name := flow.IssueName(cur.Domain, cur.Generation, run)
	if cur.Status == StatusActive {
		name = flow.RenewName(cur.Domain, cur.Serial, run)
	}
	e := table.NewExpr()
	e.Set(table.AttrRun, table.N(run))
	e.Set(table.AttrExecution, table.S(name))
	e.Set(table.AttrDueAt, table.T(s.due(now)))
	e.Set(table.AttrUpdatedAt, table.T(now))
	e.Remove(table.AttrWaits)
	e.Add(table.AttrVersion, table.N(1))
	e.If("attribute_exists(%s)", e.Name(table.AttrPK))
	e.If("%s = %s", e.Name(table.AttrStatus), e.Value(table.S(string(cur.Status))))
	if cur.Run == 0 {
		e.If("attribute_not_exists(%s) OR %s = %s", e.Name(table.AttrRun), e.Name(table.AttrRun), e.Value(table.N(0)))
	} else {
		e.If("%s = %s", e.Name(table.AttrRun), e.Value(table.N(cur.Run)))
	}
	if cur.Execution == "" {
		e.If("attribute_not_exists(%s)", e.Name(table.AttrExecution))
	} else {
		e.If("%s = %s", e.Name(table.AttrExecution), e.Value(table.S(cur.Execution)))
	}
	if cur.Status == StatusActive {
		e.If("%s = %s", e.Name(table.AttrSerial), e.Value(table.S(cur.Serial)))
	}
	out, err := s.client.UpdateItem(ctx, s.updateCert(cur.Domain, e, types.ReturnValueAllNew))
	if old, failed := conditionFailed(err); failed {
		switch st := statusOf(old); {
		case old == nil:
			return nil, fmt.Errorf("claim %q: %w", cur.Domain, ErrNotFound)
		case st == StatusRetired:
			return nil, fmt.Errorf("claim %q: %w", cur.Domain, ErrRetired)
		case st == StatusQuarantined:
			return nil, fmt.Errorf("claim %q: %w", cur.Domain, ErrQuarantined)
		}
		return nil, fmt.Errorf("claim %q: the item changed: %w", cur.Domain, ErrStale)
	}
	if err != nil {
		return nil, fmt.Errorf("claim %q: %w", cur.Domain, err)
	}
	return certificateFromItem(out.Attributes)
}

// Await records that execution, which owns domain, will act again at until
// (it waits for a slot of the new-order budget, or a running execution the
// reconciler found overdue is given more time): dueAt becomes until plus the
// grace. It returns ErrSuperseded when another execution owns the domain,
// ErrRetired, ErrQuarantined or ErrNotFound.
func (s *Store) Await(ctx context.Context, domain, execution string, until time.Time) error {
	e := table.NewExpr()
	e.Set(table.AttrDueAt, table.T(s.due(until)))
	e.Set(table.AttrUpdatedAt, table.T(s.now()))
	e.Add(table.AttrVersion, table.N(1))
	if _, err := s.fencedUpdate(ctx, domain, execution, e); err != nil {
		return fmt.Errorf("await %q until %s: %w", domain, table.FormatTime(until), err)
	}
	return nil
}

// Attempt is what RecordFailure and RecordWait report about the domain
// after the write.
type Attempt struct {
	FailureCount   int       // consecutive failures that count against the domain
	FirstFailureAt time.Time // the first of them, zero if none
	OutageCount    int       // consecutive failures on the CA's or certflow's side
	Waits          int       // waits of the current execution, this one included
}

func attemptOf(c *Certificate) Attempt {
	return Attempt{FailureCount: c.FailureCount, FirstFailureAt: c.FirstFailureAt, OutageCount: c.OutageCount, Waits: c.Waits}
}

// RecordFailure records, for the execution that owns domain, an attempt
// that failed for a reason that counts against the domain (d's code, see
// failure.CountsAgainstDomain): failureCount is incremented, firstFailureAt
// set on the first failure, the error code and message, nextAttemptAt and
// the unpause link (when d has one) stored, the execution's waits
// incremented and dueAt moved past nextAttemptAt. A pending or failed
// domain becomes failed; an active one stays active and keeps being served.
// It returns ErrSuperseded, ErrRetired, ErrQuarantined or ErrNotFound when
// nothing may be recorded.
func (s *Store) RecordFailure(ctx context.Context, domain, execution string, d failure.Detail, nextAttemptAt, now time.Time) (Attempt, error) {
	e := attemptExpr(d, nextAttemptAt, now, s.due(nextAttemptAt))
	e.Add(table.AttrFailureCount, table.N(1))
	e.SetRaw(fmt.Sprintf("%s = if_not_exists(%s, %s)", e.Name(table.AttrFirstFailureAt), e.Name(table.AttrFirstFailureAt), e.Value(table.T(now))))
	c, err := s.recordAttempt(ctx, domain, execution, e)
	if err != nil {
		return Attempt{}, fmt.Errorf("record failure of %q: %w", domain, err)
	}
	return attemptOf(c), nil
}

// RecordWait records, for the execution that owns domain, an attempt that
// failed for a reason that is not the domain's: a rate limit of the
// account (outage false), or the CA or a dependency failing (outage true,
// which also increments outageCount). Nothing counts towards quarantine: the
// error code and message and nextAttemptAt are stored, the execution's
// waits incremented and dueAt moved past nextAttemptAt; the status is left
// as it is. Errors are those of RecordFailure.
func (s *Store) RecordWait(ctx context.Context, domain, execution string, d failure.Detail, outage bool, nextAttemptAt, now time.Time) (Attempt, error) {
	e := attemptExpr(d, nextAttemptAt, now, s.due(nextAttemptAt))
	if outage {
		e.Add(table.AttrOutageCount, table.N(1))
	}
	c, err := s.recordAttempt(ctx, domain, execution, e)
	if err != nil {
		return Attempt{}, fmt.Errorf("record wait of %q: %w", domain, err)
	}
	return attemptOf(c), nil
}

// attemptExpr is what every recorded attempt writes.
func attemptExpr(d failure.Detail, nextAttemptAt, now, dueAt time.Time) *table.Expr {
	e := table.NewExpr()
	e.Set(table.AttrLastErrorCode, table.S(d.Code))
	e.Set(table.AttrLastErrorMessage, table.S(d.Message))
	e.Set(table.AttrNextAttemptAt, table.T(nextAttemptAt))
	e.Set(table.AttrDueAt, table.T(dueAt))
	e.Set(table.AttrUpdatedAt, table.T(now))
	if d.UnpauseURL != "" {
		e.Set(table.AttrUnpauseURL, table.S(d.UnpauseURL))
	}
	e.Add(table.AttrWaits, table.N(1))
	e.Add(table.AttrVersion, table.N(1))
	return e
}

// recordAttempt writes an attempt of execution: a pending domain becomes
// failed, a failed or active one keeps its status. The status written
// depends on the one stored, so the write is conditioned on it and retried
// once the status is known.
func (s *Store) recordAttempt(ctx context.Context, domain, execution string, e *table.Expr) (*Certificate, error) {
	status := StatusPending
	for range maxAttempts {
		w := e.Clone()
		w.If("%s = %s", w.Name(table.AttrStatus), w.Value(table.S(string(status))))
		if status == StatusPending {
			w.Set(table.AttrStatus, table.S(string(StatusFailed)))
		}
		c, err := s.fencedUpdate(ctx, domain, execution, w)
		if errors.Is(err, ErrStale) {
			cur, gerr := s.GetConsistent(ctx, domain)
			if gerr != nil {
				return nil, gerr
			}
			if cur.Execution != execution {
				return nil, fenceFailure(certificateItem(cur), execution)
			}
			status = cur.Status
			continue
		}
		return c, err
	}
	return nil, fmt.Errorf("status kept changing: %w", ErrStale)
}

// Quarantine stops all attempts for domain until the platform requests it
// again, for the execution that owns it: status quarantined with the
// reason code, message and unpause link, no execution owns the domain any
// more, and its renewal timer and pending order are deleted, all in one
// transaction. A certificate it holds is still served. A domain that moved
// away from the platform (failure.MovedAway) stays in the due index, due
// when it is to be offboarded (WithOffboardAfter); any other leaves the
// indexes. It returns ErrSuperseded, ErrRetired or ErrNotFound.
func (s *Store) Quarantine(ctx context.Context, domain, execution, reasonCode, message, unpauseURL string) error {
	now := s.now()
	e := table.NewExpr()
	e.Set(table.AttrStatus, table.S(string(StatusQuarantined)))
	e.Set(table.AttrQuarantineReason, table.S(reasonCode))
	e.Set(table.AttrLastErrorCode, table.S(reasonCode))
	e.Set(table.AttrLastErrorMessage, table.S(message))
	if unpauseURL != "" {
		e.Set(table.AttrUnpauseURL, table.S(unpauseURL))
	}
	e.Set(table.AttrUpdatedAt, table.T(now))
	if failure.MovedAway(reasonCode) {
		e.Set(table.AttrShard, table.S(table.ShardOf(domain)))
		e.Set(table.AttrDueAt, table.T(now.Add(s.offboard)))
		e.Remove(table.AttrNextAttemptAt, table.AttrExecution, table.AttrWaits)
	} else {
		e.Remove(table.AttrShard, table.AttrDueAt, table.AttrNextAttemptAt, table.AttrExecution, table.AttrWaits)
	}
	e.Add(table.AttrVersion, table.N(1))
	fence(e, execution)
	input := &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		s.txUpdateCert(domain, e),
		s.deleteTimer(domain),
		s.deleteOrder(domain),
	}}
	for attempt := 1; ; attempt++ {
		_, err := s.client.TransactWriteItems(ctx, input)
		if err == nil {
			return nil
		}
		old, condFailed, conflict := transactionFailure(err, 0)
		switch {
		case condFailed:
			return fmt.Errorf("quarantine %q: %w", domain, fenceFailure(old, execution))
		case !conflict || attempt == maxAttempts:
			return fmt.Errorf("quarantine %q: %w", domain, err)
		}
		if err := sleep(ctx, time.Duration(attempt)*20*time.Millisecond); err != nil {
			return fmt.Errorf("quarantine %q: %w", domain, err)
		}
	}
}

// RecordOwnership records, for the execution that owns domain, that
// preflight found the ownership records at: the proof stands for the
// tenant from now on (ownershipVerifiedAt). It returns ErrSuperseded,
// ErrRetired, ErrQuarantined or ErrNotFound.
func (s *Store) RecordOwnership(ctx context.Context, domain, execution string, at time.Time) error {
	e := table.NewExpr()
	e.Set(table.AttrOwnershipVerifiedAt, table.T(at))
	e.Set(table.AttrUpdatedAt, table.T(s.now()))
	e.Add(table.AttrVersion, table.N(1))
	e.If("attribute_exists(%s)", e.Name(table.AttrOwnershipToken))
	if _, err := s.fencedUpdate(ctx, domain, execution, e); err != nil {
		return fmt.Errorf("record ownership of %q: %w", domain, err)
	}
	return nil
}
