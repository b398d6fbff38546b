package certstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/table"
)

// failureAttrs are the attributes that describe failed attempts; a new
// request or a new certificate clears them.
var failureAttrs = []string{table.AttrFailureCount, table.AttrFirstFailureAt, table.AttrLastErrorCode, table.AttrLastErrorMessage,
	table.AttrNextAttemptAt, table.AttrUnpauseURL, table.AttrQuarantineReason, table.AttrWaits, table.AttrOutageCount}

// Request records that the platform requests a certificate for domain with
// sans. A new domain is created as pending with generation 1; a quarantined
// or retired domain starts a new generation: status pending, failure fields
// cleared, sans replaced. Either way the item names the execution that owns
// it from now on (flow.IssueName of the generation, run 1), which the caller
// starts; started reports that. A pending, active or failed domain is left
// as it is (started false): whether its execution still runs is the
// reconciler's question.
//
// Every SAN becomes an alias of domain, claimed before the certificate item
// is written: a name that is another live domain's primary name or SAN
// fails the request with ErrNameTaken and changes nothing. Writes are
// conditioned on the version read, so of two concurrent requests only one
// starts the generation.
func (s *Store) Request(ctx context.Context, domain string, sans []string, now time.Time) (cert *Certificate, started bool, err error) {
	for range maxAttempts {
		cur, err := s.GetConsistent(ctx, domain)
		switch {
		case errors.Is(err, ErrNotFound):
			cur = nil
		case err != nil:
			return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
		case cur.Status.Working():
			return cur, false, nil
		}
		claimed, err := s.claimAliases(ctx, domain, sans)
		if err != nil {
			return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
		}
		c, err := s.writeRequest(ctx, domain, sans, cur, now)
		if errors.Is(err, ErrNameTaken) {
			s.releaseAliases(ctx, domain, claimed)
			return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
		}
		if errors.Is(err, ErrStale) {
			continue // another request wrote the item first
		}
		if err != nil {
			return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
		}
		if cur != nil {
			var dropped []string
			for _, old := range cur.SANs {
				if old != domain && !slices.Contains(sans, old) {
					dropped = append(dropped, old)
				}
			}
			if err := s.deleteAliases(ctx, domain, dropped); err != nil {
				return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
			}
		}
		return c, true, nil
	}
	return nil, false, fmt.Errorf("request certificate %q: item kept changing: %w", domain, ErrStale)
}

// writeRequest writes the certificate item of a new generation: created
// when cur is nil, else updated on condition that it is still the version
// read. The same transaction checks that domain is no other domain's SAN.
func (s *Store) writeRequest(ctx context.Context, domain string, sans []string, cur *Certificate, now time.Time) (*Certificate, error) {
	notAlias := table.NewExpr()
	notAlias.If("attribute_not_exists(%s) OR %s = %s", notAlias.Name(table.AttrPK), notAlias.Name(table.AttrDomain), notAlias.Value(table.S(domain)))
	check := types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName:                 aws.String(s.table),
		Key:                       table.DomainKey(domain, table.SKAlias),
		ConditionExpression:       notAlias.Condition(),
		ExpressionAttributeNames:  notAlias.Names(),
		ExpressionAttributeValues: notAlias.Values(),
	}}
	var (
		write types.TransactWriteItem
		c     *Certificate
	)
	if cur == nil {
		c = &Certificate{Domain: domain, SANs: sans, Status: StatusPending, Version: 1, Generation: 1,
			Execution: flow.IssueName(domain, 1, 1), Run: 1, DueAt: s.due(now), RequestedAt: now, UpdatedAt: now}
		e := table.NewExpr()
		e.If("attribute_not_exists(%s)", e.Name(table.AttrPK))
		write = types.TransactWriteItem{Put: &types.Put{
			TableName:                           aws.String(s.table),
			Item:                                certificateItem(c),
			ConditionExpression:                 e.Condition(),
			ExpressionAttributeNames:            e.Names(),
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}}
	} else {
		next := *cur
		c = &next
		c.Status, c.SANs, c.Generation, c.Run = StatusPending, sans, cur.Generation+1, 1
		c.Execution = flow.IssueName(domain, c.Generation, c.Run)
		c.DueAt, c.RequestedAt, c.UpdatedAt = s.due(now), now, now
		c.Version++
		c.FailureCount, c.FirstFailureAt, c.LastErrorCode, c.LastErrorMessage = 0, time.Time{}, "", ""
		c.NextAttemptAt, c.UnpauseURL, c.QuarantineReason, c.Waits, c.OutageCount = time.Time{}, "", "", 0, 0
		e := table.NewExpr()
		e.Set(table.AttrStatus, table.S(string(StatusPending)))
		e.Set(table.AttrSANs, table.L(sans))
		e.Set(table.AttrGeneration, table.N(c.Generation))
		e.Set(table.AttrRun, table.N(c.Run))
		e.Set(table.AttrExecution, table.S(c.Execution))
		e.Set(table.AttrShard, table.S(table.ShardOf(domain)))
		e.Set(table.AttrDueAt, table.T(c.DueAt))
		e.Set(table.AttrRequestedAt, table.T(now))
		e.Set(table.AttrUpdatedAt, table.T(now))
		e.Remove(failureAttrs...)
		e.Remove(table.AttrSpentSlot)
		e.Add(table.AttrVersion, table.N(1))
		e.If("%s = %s", e.Name(table.AttrVersion), e.Value(table.N(cur.Version)))
		write = s.txUpdateCert(domain, e)
	}
	_, err := s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{write, check}})
	if err == nil {
		return c, nil
	}
	if _, failed, _ := transactionFailure(err, 1); failed {
		return nil, &NameTakenError{Name: domain}
	}
	if _, failed, conflict := transactionFailure(err, 0); failed || conflict {
		return nil, ErrStale
	}
	return nil, err
}

// Retire marks domain retired: the sealed private key is removed, the
// domain leaves the indexes and no execution owns it any more, its timer,
// its pending order and its SAN aliases are deleted. It returns the item as
// it was before, so the caller can revoke the certificate and stop the
// running execution. Retiring a retired domain only finishes the clean-up
// and returns the item. It returns ErrNotFound when the domain does not
// exist.
func (s *Store) Retire(ctx context.Context, domain string) (*Certificate, error) {
	prev, err := s.retire(ctx, domain, func(*Certificate) error { return nil })
	if err != nil {
		return nil, fmt.Errorf("retire %q: %w", domain, err)
	}
	return prev, nil
}

// Offboard retires domain if it is still quarantined because it moved
// away from the platform (failure.MovedAway) and its time to be offboarded
// (its dueAt) has passed at now: the customer left, and the platform
// forgets the domain as Retire does. A domain requested again meanwhile, or
// quarantined for another reason, is left as it is (ErrStale).
func (s *Store) Offboard(ctx context.Context, domain string, now time.Time) (*Certificate, error) {
	prev, err := s.retire(ctx, domain, func(c *Certificate) error {
		if c.Status != StatusQuarantined || !failure.MovedAway(c.QuarantineReason) || c.DueAt.IsZero() || c.DueAt.After(now) {
			return fmt.Errorf("status %s, reason %q, due %s: %w", c.Status, c.QuarantineReason, table.FormatTime(c.DueAt), ErrStale)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("offboard %q: %w", domain, err)
	}
	return prev, nil
}

// retire retires domain when ok accepts the item as read, on condition
// that it is still that version.
func (s *Store) retire(ctx context.Context, domain string, ok func(*Certificate) error) (*Certificate, error) {
	for range maxAttempts {
		prev, err := s.GetConsistent(ctx, domain)
		if err != nil {
			return nil, err
		}
		if prev.Status != StatusRetired {
			if err := ok(prev); err != nil {
				return nil, err
			}
			e := table.NewExpr()
			e.Set(table.AttrStatus, table.S(string(StatusRetired)))
			e.Set(table.AttrUpdatedAt, table.T(s.now()))
			e.Remove(table.AttrKeyWrapped, table.AttrKeyCiphertext, table.AttrShard, table.AttrDueAt, table.AttrNextAttemptAt, table.AttrExecution)
			e.Add(table.AttrVersion, table.N(1))
			e.If("%s = %s", e.Name(table.AttrVersion), e.Value(table.N(prev.Version)))
			_, err = s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
				s.txUpdateCert(domain, e),
				s.deleteTimer(domain),
				s.deleteOrder(domain),
			}})
			if _, condFailed, conflict := transactionFailure(err, 0); condFailed || conflict {
				continue
			}
			if err != nil {
				return nil, err
			}
		}
		if err := s.deleteAliases(ctx, domain, prev.SANs); err != nil {
			return nil, err
		}
		return prev, nil
	}
	return nil, fmt.Errorf("item kept changing: %w", ErrStale)
}
