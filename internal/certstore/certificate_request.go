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
	"github.com/certflow/certflow/internal/validation"
)

// failureAttrs are the attributes that describe failed attempts; a new
// request or a new certificate clears them.
var failureAttrs = []string{table.AttrFailureCount, table.AttrFirstFailureAt, table.AttrLastErrorCode, table.AttrLastErrorMessage,
	table.AttrNextAttemptAt, table.AttrUnpauseURL, table.AttrQuarantineReason, table.AttrWaits, table.AttrOutageCount}

// RequestInput is what a tenant asks for when it requests a domain.
type RequestInput struct {
	// Tenant is who asks; it holds the domain from now on. Required.
	Tenant string
	Domain string
	SANs   []string
	// ProveOwnership asks for the ownership proof (validation.Ownership)
	// before the first order of the generation the request starts.
	ProveOwnership bool
	// Unpaused says the operator lifted the CA's pause of the name: a
	// domain quarantined as account_paused is requested again only then.
	Unpaused bool
	// Validation, Records and Profile are how the generation the request
	// starts validates and what it orders (Certificate.Validation,
	// Records, Profile). A request of a domain already under way changes
	// none of them.
	Validation validation.Method
	Records    []validation.Record
	Profile    string
	Now        time.Time
}

// Request records that a tenant requests a certificate for in.Domain with
// in.SANs. A new domain is created as pending with generation 1; a
// quarantined domain of the tenant, or a retired domain of anyone, starts a
// new generation: status pending, failure fields cleared, sans replaced,
// the tenant recorded. Either way the item names the execution that owns
// it from now on (flow.IssueName of the generation, run 1), which the
// caller starts; started reports that. A pending, active or failed domain
// of the tenant is left as it is (started false): whether its execution
// still runs is the reconciler's question.
//
// Refusals change nothing and return, wrapped:
//   - a *NameTakenError naming the domain, OtherTenant set, when another
//     tenant holds it (any status but retired), or naming the domain or a
//     SAN another live domain holds as a SAN (or a SAN another holds as
//     its primary name);
//   - a *WildcardConflictError when a wildcard name covers a name one
//     label below it that another tenant holds;
//   - ErrPaused when the domain is quarantined because the CA paused it
//     and in.Unpaused is not set;
//   - a *CooldownError when the domain's item last changed (its
//     generation started, an attempt was recorded, it was quarantined or
//     retired) less than the store's request cooldown ago
//     (WithRequestCooldown): a new generation's first attempt is then at
//     least that long after the last one, as the state machine spaces the
//     attempts within a generation, and repeated requests cannot spend the
//     CA's failed-validation allowance.
//
// Every SAN becomes an alias of the domain, claimed before the certificate
// item is written. Writes are conditioned on the version read, so of two
// concurrent requests only one starts the generation.
func (s *Store) Request(ctx context.Context, in RequestInput) (cert *Certificate, started bool, err error) {
	domain := in.Domain
	if in.Tenant == "" {
		return nil, false, fmt.Errorf("request certificate %q: no tenant", domain)
	}
	for range maxAttempts {
		cur, err := s.GetConsistent(ctx, domain)
		switch {
		case errors.Is(err, ErrNotFound):
			cur = nil
		case err != nil:
			return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
		case cur.Status != StatusRetired && cur.Tenant != in.Tenant:
			return nil, false, fmt.Errorf("request certificate %q: %w", domain, &NameTakenError{Name: domain, OtherTenant: true})
		case cur.Status.Working():
			return cur, false, nil
		}
		if cur != nil {
			if err := s.mayRestart(cur, in); err != nil {
				return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
			}
		}
		if err := s.checkWildcards(ctx, in.Tenant, append([]string{domain}, in.SANs...)); err != nil {
			return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
		}
		claimed, err := s.claimAliases(ctx, in.Tenant, domain, in.SANs)
		if err != nil {
			return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
		}
		c, err := s.writeRequest(ctx, in, cur)
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
				if old != domain && !slices.Contains(in.SANs, old) {
					dropped = append(dropped, old)
				}
			}
			if err := s.retireAliases(ctx, domain, dropped); err != nil {
				return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
			}
		}
		return c, true, nil
	}
	return nil, false, fmt.Errorf("request certificate %q: item kept changing: %w", domain, ErrStale)
}

// mayRestart says whether cur, quarantined or retired, may start a new
// generation for in.
func (s *Store) mayRestart(cur *Certificate, in RequestInput) error {
	if cur.Status == StatusQuarantined && cur.QuarantineReason == failure.CodeAccountPaused && !in.Unpaused {
		return ErrPaused
	}
	// From the item's last change: the last attempt was recorded then (or
	// the domain quarantined or retired after it), so attempts of
	// successive generations are as far apart as the store's cooldown.
	last := cur.RequestedAt
	if cur.UpdatedAt.After(last) {
		last = cur.UpdatedAt
	}
	if until := last.Add(s.cooldown); s.cooldown > 0 && in.Now.Before(until) {
		return &CooldownError{Until: until}
	}
	return nil
}

// writeRequest writes the certificate item of a new generation: created
// when cur is nil, else updated on condition that it is still the version
// read. The same transaction checks that domain is no other domain's SAN.
func (s *Store) writeRequest(ctx context.Context, in RequestInput, cur *Certificate) (*Certificate, error) {
	domain, sans, now := in.Domain, in.SANs, in.Now
	notAlias := table.NewExpr()
	notAlias.If("attribute_not_exists(%s) OR %s = %s OR %s = %s", notAlias.Name(table.AttrPK),
		notAlias.Name(table.AttrDomain), notAlias.Value(table.S(domain)),
		notAlias.Name(table.AttrStatus), notAlias.Value(table.S(string(StatusRetired))))
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
		c = &Certificate{Domain: domain, SANs: sans, Tenant: in.Tenant, Status: StatusPending, Version: 1, Generation: 1,
			Execution: flow.IssueName(domain, 1, 1), Run: 1, DueAt: s.due(now), RequestedAt: now, UpdatedAt: now,
			Validation: in.Validation, Records: in.Records, Profile: in.Profile}
		if in.ProveOwnership {
			token, err := validation.NewOwnershipToken()
			if err != nil {
				return nil, err
			}
			c.OwnershipToken = token
		}
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
		c.Status, c.SANs, c.Tenant, c.Generation, c.Run = StatusPending, sans, in.Tenant, cur.Generation+1, 1
		c.Execution = flow.IssueName(domain, c.Generation, c.Run)
		c.DueAt, c.RequestedAt, c.UpdatedAt = s.due(now), now, now
		c.Version++
		c.FailureCount, c.FirstFailureAt, c.LastErrorCode, c.LastErrorMessage = 0, time.Time{}, "", ""
		c.NextAttemptAt, c.UnpauseURL, c.QuarantineReason, c.Waits, c.OutageCount = time.Time{}, "", "", 0, 0
		e := table.NewExpr()
		e.Set(table.AttrStatus, table.S(string(StatusPending)))
		e.Set(table.AttrSANs, table.L(sans))
		e.Set(table.AttrTenant, table.S(in.Tenant))
		if p := table.ParentOf(domain); p != "" {
			e.Set(table.AttrParent, table.S(p))
		}
		e.Set(table.AttrGeneration, table.N(c.Generation))
		e.Set(table.AttrRun, table.N(c.Run))
		e.Set(table.AttrExecution, table.S(c.Execution))
		e.Set(table.AttrShard, table.S(table.ShardOf(domain)))
		e.Set(table.AttrDueAt, table.T(c.DueAt))
		e.Set(table.AttrRequestedAt, table.T(now))
		e.Set(table.AttrUpdatedAt, table.T(now))
		e.Remove(failureAttrs...)
		e.Remove(table.AttrSpentSlot)
		c.Validation, c.Records, c.Profile = in.Validation, in.Records, in.Profile
		setOrRemove(e, table.AttrValidation, string(in.Validation))
		setOrRemove(e, table.AttrProfile, in.Profile)
		if len(in.Records) > 0 {
			e.Set(table.AttrRecords, recordsValue(in.Records))
		} else {
			e.Remove(table.AttrRecords)
		}
		// A proof asked for again by the same tenant stands (verified or
		// not); a new tenant, or a domain that was retired, proves anew.
		keepProof := in.ProveOwnership && cur.OwnershipToken != "" && cur.Tenant == in.Tenant && cur.Status != StatusRetired
		switch {
		case keepProof:
		case in.ProveOwnership:
			token, err := validation.NewOwnershipToken()
			if err != nil {
				return nil, err
			}
			c.OwnershipToken, c.OwnershipVerifiedAt = token, time.Time{}
			e.Set(table.AttrOwnershipToken, table.S(token))
			e.Remove(table.AttrOwnershipVerifiedAt)
		default:
			c.OwnershipToken, c.OwnershipVerifiedAt = "", time.Time{}
			e.Remove(table.AttrOwnershipToken, table.AttrOwnershipVerifiedAt)
		}
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

// setOrRemove sets attribute name to the string v, or removes it when v is
// empty.
func setOrRemove(e *table.Expr, name, v string) {
	if v == "" {
		e.Remove(name)
		return
	}
	e.Set(name, table.S(v))
}

// Retire marks domain retired for tenant, which must hold it: the sealed
// private key is removed, the domain leaves the indexes and no execution
// owns it any more, its timer and pending order are deleted and its SAN
// aliases become tombstones (they keep the tenant, so delivery never falls
// back from them to another tenant's wildcard). The certificate item keeps
// the tenant for the same reason. It returns the item as it was before, so
// the caller can revoke the certificate and stop the running execution.
// Retiring a retired domain only finishes the clean-up and returns the
// item. It returns ErrNotFound when the domain does not exist or another
// tenant holds it.
func (s *Store) Retire(ctx context.Context, tenant, domain string) (*Certificate, error) {
	if tenant == "" {
		return nil, fmt.Errorf("retire %q: no tenant: %w", domain, ErrNotFound)
	}
	prev, err := s.retire(ctx, domain, tenant, func(*Certificate) error { return nil })
	if err != nil {
		return nil, fmt.Errorf("retire %q: %w", domain, err)
	}
	return prev, nil
}

// Offboard retires domain, whoever holds it, if it is still quarantined
// because it moved away from the platform (failure.MovedAway) and its time
// to be offboarded (its dueAt) has passed at now: the customer left, and
// the platform forgets the domain as Retire does. A domain requested again
// meanwhile, or quarantined for another reason, is left as it is
// (ErrStale).
func (s *Store) Offboard(ctx context.Context, domain string, now time.Time) (*Certificate, error) {
	prev, err := s.retire(ctx, domain, "", func(c *Certificate) error {
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

// retire retires domain when tenant holds it (any tenant when "") and ok
// accepts the item as read, on condition that it is still that version.
func (s *Store) retire(ctx context.Context, domain, tenant string, ok func(*Certificate) error) (*Certificate, error) {
	for range maxAttempts {
		prev, err := s.GetConsistent(ctx, domain)
		if err != nil {
			return nil, err
		}
		if tenant != "" && prev.Tenant != tenant {
			return nil, ErrNotFound
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
		if err := s.retireAliases(ctx, domain, prev.SANs); err != nil {
			return nil, err
		}
		return prev, nil
	}
	return nil, fmt.Errorf("item kept changing: %w", ErrStale)
}
