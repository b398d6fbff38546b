package record

import (
	"context"
	"fmt"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/metrics"
	"github.com/certflow/certflow/internal/notify"
)

// Quarantine quarantines the domain (the Quarantine state) for the
// execution that owns it and publishes Domain Quarantined. Once written,
// the quarantine ends the execution's ownership, so a retry of the step
// could not publish: publishing is best effort after the SDK's own
// retries, and a lost event is logged.
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
	if err := h.quarantiner.Quarantine(ctx, in.Domain, in.Execution, reason, d.Message, d.UnpauseURL); err != nil {
		return Result{}, fmt.Errorf("quarantine %q: %w", in.Domain, err)
	}
	ev := notify.Event{Type: notify.TypeQuarantined, Domain: in.Domain, ReasonCode: reason, Message: d.Message, UnpauseURL: d.UnpauseURL}
	if err := h.publisher.Publish(ctx, ev); err != nil {
		logging.From(ctx).Error("publish quarantine event", "error", err.Error())
	}
	h.emit(ctx, metrics.DomainsQuarantined, map[string]string{"Reason": reason})
	return Result{Code: reason, Message: d.Message, UnpauseURL: d.UnpauseURL, Quarantined: true}, nil
}
