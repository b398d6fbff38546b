package preflight

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/validation"
)

// Owners tells whether a domain has to prove its tenant owns it, and
// records the proof. *certstore.Store implements it.
type Owners interface {
	// GetConsistent returns the domain's certificate item, or an error
	// wrapping certstore.ErrNotFound.
	GetConsistent(ctx context.Context, domain string) (*certstore.Certificate, error)
	// RecordOwnership records, for the execution that owns the domain,
	// when the proof was found; it fails with certstore.ErrSuperseded,
	// ErrRetired or ErrQuarantined when that execution no longer owns it.
	RecordOwnership(ctx context.Context, domain, execution string, at time.Time) error
}

var _ Owners = (*certstore.Store)(nil)

// proveOwnership requires, when the domain's request asked for the proof
// and it has not been found yet, the ownership TXT record with the token
// for every name (validation.Ownership; a *failure.ValidationRecordError
// with CodeOwnershipMissing when one is not there), and records that it
// was found. A domain without an item (an execution started by hand)
// proves nothing.
func (c *Checker) proveOwnership(ctx context.Context, execution string, names []string) error {
	if c.cfg.Owners == nil {
		return nil
	}
	item, err := c.cfg.Owners.GetConsistent(ctx, names[0])
	if errors.Is(err, certstore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return &failure.TransientError{Code: failure.CodeDependencyError, Message: "read the domain's certificate item", Err: err}
	}
	if item.OwnershipToken == "" || !item.OwnershipVerifiedAt.IsZero() {
		return nil
	}
	for _, r := range validation.OwnershipRecords(names, item.OwnershipToken) {
		found, err := c.hasTXT(ctx, r.Name, r.Value)
		if err != nil {
			return err
		}
		if !found {
			return &failure.ValidationRecordError{Code: failure.CodeOwnershipMissing,
				Message: fmt.Sprintf("%s has no TXT record %q: the request asked for the ownership proof, and no certificate is ordered before it is published", r.Name, r.Value)}
		}
	}
	err = c.cfg.Owners.RecordOwnership(ctx, names[0], execution, c.now())
	switch {
	case errors.Is(err, certstore.ErrRetired):
		return &failure.DomainRetiredError{Message: "the domain was retired", Err: err}
	case errors.Is(err, certstore.ErrSuperseded), errors.Is(err, certstore.ErrQuarantined), errors.Is(err, certstore.ErrNotFound):
		return &failure.SupersededError{Message: "another execution owns the domain", Err: err}
	case err != nil:
		return &failure.TransientError{Code: failure.CodeDependencyError, Message: "record the ownership proof", Err: err}
	}
	return nil
}

// hasTXT reports whether name (or the end of its CNAME chain, which the
// resolver follows) has a TXT record whose text is value.
func (c *Checker) hasTXT(ctx context.Context, name, value string) (bool, error) {
	resp, err := c.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return false, err
	}
	for _, rr := range resp.Answer {
		if t, ok := rr.(*dns.TXT); ok && strings.Join(t.Txt, "") == value {
			return true, nil
		}
	}
	return false, nil
}

func (c *Checker) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}
