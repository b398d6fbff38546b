// Package notify tells the platform what happened to its domains: the
// state machine's Notify state (this file) and the EventBridge publisher
// every step uses (publisher.go). Events never carry key material.
package notify

import (
	"context"
	"fmt"

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
	Event  string `json:"event"` // the detail-type published
}

// Sender publishes one event; *Publisher implements it.
type Sender interface {
	Publish(ctx context.Context, ev Event) error
}

var _ Sender = (*Publisher)(nil)

// Step runs the Notify state: it publishes Certificate Issued or
// Certificate Renewed and counts it.
type Step struct {
	sender  Sender
	metrics *metrics.Emitter
}

// NewStep returns the Notify step publishing through s; m may be nil.
func NewStep(s Sender, m *metrics.Emitter) *Step { return &Step{sender: s, metrics: m} }

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
