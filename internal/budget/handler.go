package budget

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"time"

	"github.com/certflow/certflow/internal/failure"
)

// Taker takes order tokens. *Bucket implements it.
type Taker interface {
	Take(ctx context.Context) (granted bool, wait time.Duration, err error)
}

// Result is the answer of the order-budget function to the state machine:
// whether a new order may be placed, and otherwise how many seconds to wait
// before asking again.
type Result struct {
	Granted     bool `json:"granted"`
	WaitSeconds int  `json:"waitSeconds"`
}

// Handler is the order-budget Lambda handler.
type Handler struct {
	taker Taker
	log   *slog.Logger
}

// NewHandler returns a Handler taking tokens from taker and logging
// failures to log.
func NewHandler(taker Taker, log *slog.Logger) *Handler {
	return &Handler{taker: taker, log: log}
}

// Handle takes one new-order token. Its input is ignored (the state machine
// sends {}). A failure to reach the bucket is a TransientError, so the state
// machine retries the step.
func (h *Handler) Handle(ctx context.Context, _ json.RawMessage) (Result, error) {
	granted, wait, err := h.taker.Take(ctx)
	if err != nil {
		h.log.ErrorContext(ctx, "take order token failed", "error", err)
		return Result{}, failure.ForLambda(&failure.TransientError{Message: "order budget unavailable", Err: err})
	}
	if granted {
		return Result{Granted: true}, nil
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	return Result{WaitSeconds: secs}, nil
}
