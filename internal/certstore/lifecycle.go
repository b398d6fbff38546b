package certstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/failure"
)

// failureAttrs are the attributes that describe failed attempts; a new
// request or a new certificate clears them.
var failureAttrs = []string{attrFailureCount, attrFirstFailureAt, attrLastErrorCode, attrLastErrorMessage,
	attrNextAttemptAt, attrUnpauseURL, attrQuarantineReason}

// Request records that the platform requests a certificate for domain with
// sans. A new domain is created as pending with generation 1. A quarantined
// or retired domain starts a new generation: status pending, failure fields
// cleared, sans replaced. A pending, active or failed domain is left as it
// is. started reports whether a new generation began, that is whether the
// caller should start an issuance. Writes are conditioned on the version
// read, so of two concurrent requests only one starts the generation.
func (s *Store) Request(ctx context.Context, domain string, sans []string, now time.Time) (cert *Certificate, started bool, err error) {
	for range maxAttempts {
		cur, err := s.GetConsistent(ctx, domain)
		switch {
		case errors.Is(err, ErrNotFound):
			c := &Certificate{Domain: domain, SANs: sans, Status: StatusPending, Version: 1, Generation: 1,
				RequestedAt: now, UpdatedAt: now}
			e := newExpr()
			e.If("attribute_not_exists(%s)", e.n(attrPK))
			_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
				TableName:                aws.String(s.table),
				Item:                     certificateItem(c),
				ConditionExpression:      e.Condition(),
				ExpressionAttributeNames: e.Names(),
			})
			if _, lost := conditionFailed(err); lost {
				continue
			}
			if err != nil {
				return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
			}
			return c, true, nil
		case err != nil:
			return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
		case cur.Status != StatusQuarantined && cur.Status != StatusRetired:
			return cur, false, nil
		}
		e := newExpr()
		e.Set(attrStatus, avS(string(StatusPending)))
		e.Set(attrSANs, avL(sans))
		e.Set(attrRequestedAt, avT(now))
		e.Set(attrUpdatedAt, avT(now))
		e.Remove(failureAttrs...)
		e.Remove(attrExecution)
		e.Add(attrGeneration, avN(1))
		e.Add(attrVersion, avN(1))
		e.If("%s = %s", e.n(attrVersion), e.v(avN(cur.Version)))
		out, err := s.client.UpdateItem(ctx, s.updateCert(domain, e, types.ReturnValueAllNew))
		if _, lost := conditionFailed(err); lost {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
		}
		c, err := certificateFromItem(out.Attributes)
		if err != nil {
			return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
		}
		return c, true, nil
	}
	return nil, false, fmt.Errorf("request certificate %q: item kept changing: %w", domain, ErrStale)
}

// SetExecution records the ARN of the execution working on generation of
// domain. It returns ErrStale when the domain has moved to another
// generation and ErrNotFound when it does not exist.
func (s *Store) SetExecution(ctx context.Context, domain string, generation int64, executionARN string) error {
	e := newExpr()
	e.Set(attrExecution, avS(executionARN))
	e.Set(attrUpdatedAt, avT(s.now()))
	e.Add(attrVersion, avN(1))
	e.If("attribute_exists(%s)", e.n(attrPK))
	e.If("%s = %s", e.n(attrGeneration), e.v(avN(generation)))
	_, err := s.client.UpdateItem(ctx, s.updateCert(domain, e, types.ReturnValueNone))
	if old, failed := conditionFailed(err); failed {
		if old == nil {
			return fmt.Errorf("set execution of %q: %w", domain, ErrNotFound)
		}
		return fmt.Errorf("set execution of %q: generation %d is no longer current: %w", domain, generation, ErrStale)
	}
	if err != nil {
		return fmt.Errorf("set execution of %q: %w", domain, err)
	}
	return nil
}

// recordFailureInput builds RecordFailure's update for an item in status
// from: an active certificate stays active and its renewAt moves to an hour
// after the next attempt, anything else becomes failed.
func (s *Store) recordFailureInput(domain string, from Status, d failure.Detail, nextAttemptAt, now time.Time) *dynamodb.UpdateItemInput {
	e := newExpr()
	e.Add(attrFailureCount, avN(1))
	e.Add(attrVersion, avN(1))
	e.SetRaw(fmt.Sprintf("%s = if_not_exists(%s, %s)", e.n(attrFirstFailureAt), e.n(attrFirstFailureAt), e.v(avT(now))))
	e.Set(attrLastErrorCode, avS(d.Code))
	e.Set(attrLastErrorMessage, avS(d.Message))
	e.Set(attrUpdatedAt, avT(now))
	if !nextAttemptAt.IsZero() {
		e.Set(attrNextAttemptAt, avT(nextAttemptAt))
	}
	if d.UnpauseURL != "" {
		e.Set(attrUnpauseURL, avS(d.UnpauseURL))
	}
	e.If("attribute_exists(%s)", e.n(attrPK))
	if from == StatusActive {
		e.If("%s = %s", e.n(attrStatus), e.v(avS(string(StatusActive))))
		if !nextAttemptAt.IsZero() {
			e.Set(attrRenewAt, avT(nextAttemptAt.Add(time.Hour)))
		}
	} else {
		e.Set(attrStatus, avS(string(StatusFailed)))
		e.If("%s IN (%s, %s)", e.n(attrStatus), e.v(avS(string(StatusPending))), e.v(avS(string(StatusFailed))))
	}
	return s.updateCert(domain, e, types.ReturnValueAllNew)
}

// RecordFailure records a failed attempt on domain atomically: failureCount
// is incremented, firstFailureAt set on the first failure, the error code
// and message, nextAttemptAt (unless zero) and the unpause link (when d has
// one) stored. A pending or failed domain becomes failed; an active one
// stays active and keeps being served, and its renewAt moves to an hour
// after nextAttemptAt so the sweeper does not start a second renewal
// meanwhile. It returns the failure count and the time of the first failure
// since the last success, or ErrNotFound, ErrRetired or ErrQuarantined.
func (s *Store) RecordFailure(ctx context.Context, domain string, d failure.Detail, nextAttemptAt, now time.Time) (count int, firstFailureAt time.Time, err error) {
	from := StatusFailed
	for range maxAttempts {
		out, err := s.client.UpdateItem(ctx, s.recordFailureInput(domain, from, d, nextAttemptAt, now))
		if old, failed := conditionFailed(err); failed {
			switch st := statusOf(old); {
			case old == nil:
				return 0, time.Time{}, fmt.Errorf("record failure of %q: %w", domain, ErrNotFound)
			case st == StatusRetired:
				return 0, time.Time{}, fmt.Errorf("record failure of %q: %w", domain, ErrRetired)
			case st == StatusQuarantined:
				return 0, time.Time{}, fmt.Errorf("record failure of %q: %w", domain, ErrQuarantined)
			case st == StatusActive:
				from = StatusActive
			default:
				from = StatusFailed
			}
			continue
		}
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("record failure of %q: %w", domain, err)
		}
		c, err := certificateFromItem(out.Attributes)
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("record failure of %q: %w", domain, err)
		}
		return c.FailureCount, c.FirstFailureAt, nil
	}
	return 0, time.Time{}, fmt.Errorf("record failure of %q: status kept changing: %w", domain, ErrStale)
}

// Quarantine stops all attempts for domain until the platform requests it
// again: status quarantined with the reason code, message and unpause link,
// the domain leaves the renewal and expiry indexes, and its renewal timer is
// deleted, all in one transaction. A certificate it holds is still served.
// It returns ErrNotFound or ErrRetired.
func (s *Store) Quarantine(ctx context.Context, domain, reasonCode, message, unpauseURL string) error {
	e := newExpr()
	e.Set(attrStatus, avS(string(StatusQuarantined)))
	e.Set(attrQuarantineReason, avS(reasonCode))
	e.Set(attrLastErrorCode, avS(reasonCode))
	e.Set(attrLastErrorMessage, avS(message))
	if unpauseURL != "" {
		e.Set(attrUnpauseURL, avS(unpauseURL))
	}
	e.Set(attrUpdatedAt, avT(s.now()))
	e.Remove(attrShard, attrRenewAt, attrNextAttemptAt)
	e.Add(attrVersion, avN(1))
	e.If("attribute_exists(%s)", e.n(attrPK))
	e.If("%s <> %s", e.n(attrStatus), e.v(avS(string(StatusRetired))))
	input := &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		s.txUpdateCert(domain, e),
		s.deleteTimer(domain),
	}}
	for attempt := 1; ; attempt++ {
		_, err := s.client.TransactWriteItems(ctx, input)
		if err == nil {
			return nil
		}
		old, condFailed, conflict := transactionFailure(err, 0)
		switch {
		case condFailed && old == nil:
			return fmt.Errorf("quarantine %q: %w", domain, ErrNotFound)
		case condFailed:
			return fmt.Errorf("quarantine %q: %w", domain, ErrRetired)
		case !conflict || attempt == maxAttempts:
			return fmt.Errorf("quarantine %q: %w", domain, err)
		}
		if err := sleep(ctx, time.Duration(attempt)*20*time.Millisecond); err != nil {
			return fmt.Errorf("quarantine %q: %w", domain, err)
		}
	}
}

// Retire marks domain retired: the sealed private key is removed, the
// domain leaves the renewal and expiry indexes, its timer and its SAN
// aliases are deleted. It returns the item as it was before, so the caller
// can revoke the certificate and stop the running execution. Retiring a
// retired domain only finishes the alias clean-up and returns the item.
// It returns ErrNotFound when the domain does not exist.
func (s *Store) Retire(ctx context.Context, domain string) (*Certificate, error) {
	for range maxAttempts {
		prev, err := s.GetConsistent(ctx, domain)
		if err != nil {
			return nil, fmt.Errorf("retire %q: %w", domain, err)
		}
		if prev.Status != StatusRetired {
			e := newExpr()
			e.Set(attrStatus, avS(string(StatusRetired)))
			e.Set(attrUpdatedAt, avT(s.now()))
			e.Remove(attrKeyWrapped, attrKeyCiphertext, attrShard, attrRenewAt, attrNextAttemptAt, attrExecution)
			e.Add(attrVersion, avN(1))
			e.If("%s = %s", e.n(attrVersion), e.v(avN(prev.Version)))
			_, err = s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
				s.txUpdateCert(domain, e),
				s.deleteTimer(domain),
			}})
			if _, condFailed, conflict := transactionFailure(err, 0); condFailed || conflict {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("retire %q: %w", domain, err)
			}
		}
		if err := s.deleteAliases(ctx, domain, prev.SANs); err != nil {
			return nil, fmt.Errorf("retire %q: %w", domain, err)
		}
		return prev, nil
	}
	return nil, fmt.Errorf("retire %q: item kept changing: %w", domain, ErrStale)
}

// deleteAliases deletes the alias items of sans that still point at
// primary; an alias another domain took over is left alone.
func (s *Store) deleteAliases(ctx context.Context, primary string, sans []string) error {
	for _, san := range sans {
		if san == primary {
			continue
		}
		e := newExpr()
		e.If("%s = %s", e.n(attrDomain), e.v(avS(primary)))
		_, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName:                 aws.String(s.table),
			Key:                       key(san, skAlias),
			ConditionExpression:       e.Condition(),
			ExpressionAttributeNames:  e.Names(),
			ExpressionAttributeValues: e.Values(),
		})
		if _, failed := conditionFailed(err); failed {
			continue
		}
		if err != nil {
			return fmt.Errorf("delete alias %q: %w", san, err)
		}
	}
	return nil
}
