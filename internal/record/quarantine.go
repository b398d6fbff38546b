package record

import (
	"context"
	"errors"
	"fmt"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/metrics"
	"github.com/certflow/certflow/internal/notify"
)

// Quarantine quarantines the domain (the Quarantine state) and publishes
// Domain Quarantined. Both are idempotent, so an error (returned) may be
// retried.
func (h *Handler) Quarantine(ctx context.Context, in Input) (Result, error) {
	var d failure.Detail
	if in.Error != nil {
		d = failure.ParseCause(in.Error.Error, in.Error.Cause)
	}
	reason := in.Reason
	if reason == "" {
		reason = d.Code
	}
	if reason == "" {
		return Result{}, &failure.InvalidInputError{Message: "quarantine action without reason or error"}
	}
	err := h.quarantiner.Quarantine(ctx, in.Domain, reason, d.Message, d.UnpauseURL)
	if errors.Is(err, certstore.ErrRetired) {
		return Result{}, &failure.DomainRetiredError{Message: in.Domain, Err: err}
	}
	if err != nil {
		return Result{}, fmt.Errorf("quarantine %q: %w", in.Domain, err)
	}
	ev := notify.Event{Type: notify.TypeQuarantined, Domain: in.Domain, ReasonCode: reason, Message: d.Message, UnpauseURL: d.UnpauseURL}
	if err := h.publisher.Publish(ctx, ev); err != nil {
		return Result{}, fmt.Errorf("quarantine %q: %w", in.Domain, err)
	}
	h.emit(ctx, metrics.DomainsQuarantined, map[string]string{"Reason": reason})
	return Result{Code: reason, Message: d.Message, UnpauseURL: d.UnpauseURL, Quarantined: true}, nil
}
