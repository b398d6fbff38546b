// Package notify tells the platform what happened to its domains: the
// state machine's Notify state (this file) and the EventBridge publisher
// every step uses (publisher.go). Events never carry key material.
package notify

import (
	"context"
	"errors"
	"fmt"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/metrics"
)

// Input is the Notify step's input, built by the state machine's
// Parameters: the certificate the Issue step stored.
type Input struct {
	Domain      string      `json:"domain"`
	Certificate flow.Issued `json:"certificate"`
	// Execution is the Step Functions execution name, for logs.
	Execution string `json:"execution,omitempty"`
}

// LogAttrs are the attributes of every log line of the step.
func (in Input) LogAttrs() []any {
	return flow.Input{Domain: in.Domain, Execution: in.Execution}.LogAttrs()
}

// Result is the answer of the Notify step.
type Result struct {
	Domain string `json:"domain"`
	Serial string `json:"serial"`
	Event  string `json:"event"` // the detail-type published; "" when none was (the domain was retired)
}

// Sender publishes one event; *Publisher implements it.
type Sender interface {
	Publish(ctx context.Context, ev Event) error
}

var _ Sender = (*Publisher)(nil)

// Domains tells the step whether a domain was retired since its
// certificate was stored; *certstore.Store implements it.
type Domains interface {
	// GetConsistent returns the domain's certificate item, or an error
	// wrapping certstore.ErrNotFound.
	GetConsistent(ctx context.Context, domain string) (*certstore.Certificate, error)
}

var _ Domains = (*certstore.Store)(nil)

// Step runs the Notify state: it publishes Certificate Issued or
// Certificate Renewed and counts it.
type Step struct {
	sender  Sender
	metrics *metrics.Emitter
	domains Domains
}

// NewStep returns the Notify step publishing through s; m may be nil.
func NewStep(s Sender, m *metrics.Emitter) *Step { return &Step{sender: s, metrics: m} }

// WithDomains makes the step read the domain's item before it announces a
// certificate, and announce nothing for a domain retired (or deleted) in
// the meantime: the platform got Domain Retired for it already, or will.
func (s *Step) WithDomains(d Domains) *Step {
	s.domains = d
	return s
}

// retired reports whether domain was retired since its certificate was
// stored. A failed read announces anyway: an event the platform can drop
// beats one it never gets.
func (s *Step) retired(ctx context.Context, domain string) bool {
	if s.domains == nil {
		return false
	}
	c, err := s.domains.GetConsistent(ctx, domain)
	switch {
	case errors.Is(err, certstore.ErrNotFound):
		return true
	case err != nil:
		logging.From(ctx).WarnContext(ctx, "read the domain before announcing its certificate", "error", err.Error())
		return false
	}
	return c.Status == certstore.StatusRetired
}

// Handle publishes that the certificate in in was issued or renewed.
func (s *Step) Handle(ctx context.Context, in Input) (Result, error) {
	c := in.Certificate
	if in.Domain == "" || c.Serial == "" || c.NotAfter.IsZero() {
		return Result{}, &failure.InvalidInputError{Message: "notify needs domain, certificate.serial and certificate.notAfter"}
	}
	typ, metric := TypeIssued, metrics.CertificatesIssued
	if c.Renewed {
		typ, metric = TypeRenewed, metrics.CertificatesRenewed
	}
	if s.retired(ctx, in.Domain) {
		logging.From(ctx).InfoContext(ctx, "certificate not announced: the domain was retired", "serial", c.Serial)
		return Result{Domain: in.Domain, Serial: c.Serial}, nil
	}
	if err := s.sender.Publish(ctx, Event{Type: typ, Domain: in.Domain, Serial: c.Serial, NotAfter: c.NotAfter}); err != nil {
		return Result{}, fmt.Errorf("announce certificate of %q: %w", in.Domain, err)
	}
	if s.metrics != nil {
		if err := s.metrics.Emit(metric, 1, metrics.UnitCount, nil); err != nil {
			logging.From(ctx).Warn("emit metric", "metric", metric, "error", err.Error())
		}
	}
	return Result{Domain: in.Domain, Serial: c.Serial, Event: typ}, nil
}
