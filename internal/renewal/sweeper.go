package renewal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"golang.org/x/sync/errgroup"

	"github.com/certflow/certflow/internal/ari"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/metrics"
	"github.com/certflow/certflow/internal/reconcile"
	"github.com/certflow/certflow/internal/table"
)

// Sweeper defaults; the zero value of each Sweeper field means these.
const (
	DefaultPageSize       = 100
	DefaultMaxReconciles  = 1000
	DefaultMaxARIChecks   = 10000
	DefaultARIConcurrency = 8
	DefaultRotation       = time.Hour
	DefaultDeadlineMargin = 30 * time.Second
)

// ariHorizon bounds the ARI re-check query: renewAt <= now+ariHorizon covers
// every active certificate (public certificates live at most 398 days).
const ariHorizon = 400 * 24 * time.Hour

// Due lists the domains of a shard whose dueAt is at or before t, earliest
// first, from the ByDue index (a Query, never a Scan). *certstore.Store
// implements it.
type Due interface {
	DueBy(ctx context.Context, shard string, t time.Time, limit int, cursor string) ([]certstore.Due, string, error)
}

// Mover moves an idle active certificate's renewal (its renewAt and its
// timer) to renewAt; certstore.ErrStale means the certificate changed or is
// renewing meanwhile. *certstore.Store implements it.
type Mover interface {
	MoveTimer(ctx context.Context, domain, serial, ariCertID string, renewAt time.Time) error
}

// Positions keeps where the ARI re-check of each shard stopped, so that the
// next visit resumes there. *certstore.Store implements it.
type Positions interface {
	ARICursor(ctx context.Context, shard string) (string, error)
	SaveARICursor(ctx context.Context, shard, cursor string) error
}

// Expiry finds the active certificate that expires first after now, or
// certstore.ErrNotFound. *certstore.Store implements it.
type Expiry interface {
	MinNotAfter(ctx context.Context, now time.Time) (certstore.Expiry, error)
}

// Emitter writes a CloudWatch metric. *metrics.Emitter implements it.
type Emitter interface {
	Emit(name string, value float64, unit string, dims map[string]string) error
}

var (
	_ Due       = (*certstore.Store)(nil)
	_ Mover     = (*certstore.Store)(nil)
	_ Positions = (*certstore.Store)(nil)
	_ Expiry    = (*certstore.Store)(nil)
	_ Emitter   = (*metrics.Emitter)(nil)
)

// Summary is what a sweeper run did; it is the function's result.
type Summary struct {
	// Started counts domains no execution owned (a renewal whose timer
	// was late or lost, a request whose start was lost), Restarted those
	// whose execution was gone or had ended without an outcome, Running
	// those whose execution still ran and was given more time.
	Started    int    `json:"started"`
	Restarted  int    `json:"restarted"`
	Running    int    `json:"running"`
	Offboarded int    `json:"offboarded"`
	Skipped    int    `json:"skipped"`
	Failed     int    `json:"failed"`
	ARIShard   string `json:"ariShard,omitempty"`
	ARIChecked int    `json:"ariChecked"`
	// ARIShardDone is set when the ARI re-check reached its shard's end;
	// otherwise the next visit to the shard resumes where this one stopped.
	ARIShardDone bool `json:"ariShardDone,omitempty"`
	Moved        int  `json:"moved"`
	// MinDaysToExpiry is absent when no active certificate exists.
	MinDaysToExpiry *float64 `json:"minDaysToExpiry,omitempty"`
	// Truncated is set when a cap or the deadline stopped the run early.
	Truncated bool `json:"truncated,omitempty"`
}

// Sweeper is the scheduled reconciler of every domain with work left, and
// the safety net of renewals. Each run:
//
//  1. emits MinDaysToExpiry (days until the first certificate of a domain
//     with work left expires) from the ByExpiry index;
//  2. queries every shard of the ByDue index for domains whose dueAt has
//     passed and reconciles each (package reconcile): a renewal whose TTL
//     timer was late or whose stream record was lost is started; an
//     execution the engine lost, or that ended without an outcome
//     (postponed after its bound of waits, interrupted), is restarted; one
//     that still runs is given more time. Each start is logged, since it
//     means something went missing;
//  3. asks the CA's ARI again about one shard, chosen by rotation (run time
//     / Rotation mod 16, so an hourly schedule visits every shard every 16
//     hours, or the shard the event's detail names), and moves a renewal
//     earlier when the CA's window now ends before the stored renewAt (a
//     mass revocation, for example). A certificate being renewed is left
//     alone.
//
// Work is bounded: MaxReconciles domains and MaxARIChecks ARI requests per
// run (rounded up to a whole page), pages of PageSize, and nothing new is
// begun within DeadlineMargin of the context's deadline. The ARI re-check walks
// its shard in renewAt order and, with Positions, saves where it stopped:
// the next visit to the shard resumes there, and the one after reaching the
// end starts again. With the defaults and an hourly schedule every
// certificate is re-checked at least every 16 hours up to 160,000
// certificates, and every 112 hours at 1,000,000. Without Positions each visit
// starts at the shard's beginning.
//
// The zero value of each optional field means the documented default.
type Sweeper struct {
	Due        Due        // required
	Reconciler Reconciler // required
	// ARI and Mover enable the ARI re-check; nil ARI skips it.
	ARI   ari.RenewalInfo
	Mover Mover
	// Positions makes the ARI re-check resume across visits; nil starts
	// every visit at the shard's beginning.
	Positions Positions
	// Expiry and Metrics enable the MinDaysToExpiry metric.
	Expiry  Expiry
	Metrics Emitter

	PageSize       int           // DefaultPageSize
	MaxReconciles  int           // DefaultMaxReconciles
	MaxARIChecks   int           // DefaultMaxARIChecks
	ARIConcurrency int           // DefaultARIConcurrency
	Rotation       time.Duration // DefaultRotation: the schedule's period
	DeadlineMargin time.Duration // DefaultDeadlineMargin

	Now  func() time.Time // time.Now
	Rand func() float64   // math/rand/v2.Float64
}

// Detail is what an invocation of the sweeper may ask for in its event's
// detail; the scheduled event's detail is {}.
type Detail struct {
	// ARIShard re-checks this shard ("00".."15") instead of the one of the
	// rotation, from its saved position: after a CA announces a mass
	// revocation, invoking the sweeper per shard until the summary says
	// ARIShardDone re-asks ARI about every certificate at once.
	ARIShard string `json:"ariShard,omitempty"`
}

func requestedARIShard(detail []byte) (string, error) {
	if len(detail) == 0 {
		return "", nil
	}
	var d Detail
	dec := json.NewDecoder(bytes.NewReader(detail))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return "", fmt.Errorf("sweeper event detail %s: want {} or {\"ariShard\": \"00\"..\"15\"}: %w", detail, err)
	}
	if d.ARIShard != "" {
		if err := table.CheckShard(d.ARIShard); err != nil {
			return "", fmt.Errorf("sweeper event detail: ariShard: %w", err)
		}
	}
	return d.ARIShard, nil
}

// Handle runs one sweep. The event is the scheduled EventBridge event; its
// detail may name the shard to re-check with ARI (Detail). Failures of single domains are logged
// and counted; an error is returned when a whole step failed (an index
// query, the expiry metric), after the other steps ran.
func (s *Sweeper) Handle(ctx context.Context, ev events.EventBridgeEvent) (Summary, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now().UTC().Truncate(time.Second)
	ariShard, err := requestedARIShard(ev.Detail)
	if err != nil {
		return Summary{}, err
	}
	if ariShard == "" {
		ariShard = ARIShard(t, s.Rotation)
	}
	var sum Summary
	var errs []error
	if err := s.expiry(ctx, t, &sum); err != nil {
		errs = append(errs, err)
	}
	if err := s.reconcileDue(ctx, t, &sum); err != nil {
		errs = append(errs, err)
	}
	if err := s.recheckARI(ctx, t, ariShard, &sum); err != nil {
		errs = append(errs, err)
	}
	logging.From(ctx).InfoContext(ctx, "sweep finished", slog.Int("started", sum.Started), slog.Int("restarted", sum.Restarted), slog.Int("running", sum.Running), slog.Int("offboarded", sum.Offboarded),
		slog.Int("failed", sum.Failed), slog.Int("ariChecked", sum.ARIChecked), slog.Int("moved", sum.Moved), slog.Bool("truncated", sum.Truncated))
	if err := errors.Join(errs...); err != nil {
		return sum, fmt.Errorf("sweep: %w", err)
	}
	return sum, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// nearDeadline reports whether too little time is left to begin more work.
func (s *Sweeper) nearDeadline(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && time.Until(d) < orDefault(s.DeadlineMargin, DefaultDeadlineMargin)
}

func (s *Sweeper) expiry(ctx context.Context, now time.Time, sum *Summary) error {
	if s.Expiry == nil {
		return nil
	}
	first, err := s.Expiry.MinNotAfter(ctx, now)
	if errors.Is(err, certstore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("min days to expiry: %w", err)
	}
	days := math.Round(first.NotAfter.Sub(now).Hours()/24*100) / 100
	sum.MinDaysToExpiry = &days
	if s.Metrics != nil {
		if err := s.Metrics.Emit(metrics.MinDaysToExpiry, days, metrics.UnitNone, nil); err != nil {
			return fmt.Errorf("min days to expiry: %w", err)
		}
	}
	return nil
}

func (s *Sweeper) reconcileDue(ctx context.Context, now time.Time, sum *Summary) error {
	limit := orDefault(s.MaxReconciles, DefaultMaxReconciles)
	done := func() int {
		return sum.Started + sum.Restarted + sum.Running + sum.Offboarded + sum.Skipped + sum.Failed
	}
	var errs []error
	for _, shard := range table.Shards() {
		cursor := ""
		for {
			if s.nearDeadline(ctx) || done() >= limit {
				sum.Truncated = true
				return errors.Join(errs...)
			}
			rows, next, err := s.Due.DueBy(ctx, shard, now, orDefault(s.PageSize, DefaultPageSize), cursor)
			if err != nil {
				errs = append(errs, fmt.Errorf("domains due in shard %s: %w", shard, err))
				break
			}
			for _, r := range rows {
				if done() >= limit || s.nearDeadline(ctx) {
					sum.Truncated = true
					return errors.Join(errs...)
				}
				out, err := s.Reconciler.Reconcile(ctx, r.Certificate(), flow.StartedBySweeper)
				log := logging.From(ctx).With(slog.String("domain", r.Domain), slog.String("status", string(r.Status)),
					slog.String("execution", r.Execution), slog.Time("dueAt", r.DueAt))
				switch {
				case err != nil:
					sum.Failed++
					log.ErrorContext(ctx, "sweeper could not reconcile a domain", slog.String("error", err.Error()))
				case out == reconcile.Started:
					sum.Started++
					log.InfoContext(ctx, "sweeper started an execution no one had started (a timer late or lost, a start lost)")
				case out == reconcile.Restarted:
					sum.Restarted++
					log.InfoContext(ctx, "sweeper restarted an execution that was gone or had ended without an outcome")
				case out == reconcile.Running:
					sum.Running++
				case out == reconcile.Offboarded:
					sum.Offboarded++
					log.InfoContext(ctx, "sweeper offboarded a domain that had moved away")
				default:
					sum.Skipped++
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	return errors.Join(errs...)
}

// ARIShard returns the shard whose ARI windows a run at now re-checks.
func ARIShard(now time.Time, rotation time.Duration) string {
	shards := table.Shards()
	slot := now.Unix() / int64(orDefault(rotation, DefaultRotation)/time.Second)
	return shards[int(slot%int64(len(shards)))]
}

func (s *Sweeper) recheckARI(ctx context.Context, now time.Time, shard string, sum *Summary) error {
	if s.ARI == nil || s.Mover == nil {
		return nil
	}
	sum.ARIShard = shard
	maxChecks := orDefault(s.MaxARIChecks, DefaultMaxARIChecks)
	var (
		launched       int
		checked, moved atomic.Int64
		unsupported    atomic.Bool
		once           sync.Once
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(orDefault(s.ARIConcurrency, DefaultARIConcurrency))
	cursor, err := s.position(ctx, shard)
	if err != nil {
		return err
	}
	var queryErr error
	for {
		// Stop only between pages, so that the saved cursor is exactly
		// where the checks stopped.
		if launched >= maxChecks || s.nearDeadline(ctx) || unsupported.Load() {
			sum.Truncated = sum.Truncated || !unsupported.Load()
			break
		}
		rows, next, err := s.Due.DueBy(ctx, shard, now.Add(ariHorizon), orDefault(s.PageSize, DefaultPageSize), cursor)
		if err != nil {
			queryErr = fmt.Errorf("ARI re-check of shard %s: %w", shard, err)
			break
		}
		for _, r := range rows {
			if r.Status != certstore.StatusActive || r.Execution != "" || !r.RenewAt.After(now) || r.ARICertID == "" {
				continue // no idle certificate, due now (reconciled above) or unknown to ARI
			}
			launched++
			g.Go(func() error {
				if unsupported.Load() {
					return nil
				}
				checked.Add(1)
				m, err := s.recheckOne(gctx, r, now)
				if errors.Is(err, ari.ErrUnsupported) {
					once.Do(func() { logging.From(ctx).InfoContext(ctx, "the CA has no ARI, re-check skipped") })
					unsupported.Store(true)
					return nil
				}
				if err != nil {
					logging.From(ctx).WarnContext(ctx, "ARI re-check failed", slog.String("domain", r.Domain), slog.String("error", err.Error()))
				}
				if m {
					moved.Add(1)
				}
				return nil
			})
		}
		cursor = next
		if next == "" {
			sum.ARIShardDone = true
			break
		}
	}
	_ = g.Wait() // recheckOne logs its own failures and returns nil
	sum.ARIChecked = int(checked.Load())
	sum.Moved = int(moved.Load())
	if queryErr != nil || unsupported.Load() {
		return queryErr // keep the saved position: the next visit retries from there
	}
	return s.savePosition(ctx, shard, cursor)
}

// position is where the ARI re-check of shard resumes ("" from the start).
func (s *Sweeper) position(ctx context.Context, shard string) (string, error) {
	if s.Positions == nil {
		return "", nil
	}
	cursor, err := s.Positions.ARICursor(ctx, shard)
	if err != nil {
		return "", fmt.Errorf("ARI re-check of shard %s: %w", shard, err)
	}
	return cursor, nil
}

func (s *Sweeper) savePosition(ctx context.Context, shard, cursor string) error {
	if s.Positions == nil {
		return nil
	}
	if err := s.Positions.SaveARICursor(ctx, shard, cursor); err != nil {
		return fmt.Errorf("ARI re-check of shard %s: %w", shard, err)
	}
	return nil
}

// recheckOne asks ARI about r and moves its renewal earlier when the CA's
// window now ends before the stored renewAt. A renewal inside the window
// stays where it is (it was chosen at random in it; re-drawing would only
// drift renewals towards the window's start and cost writes), and is never
// moved later here: the stored time was already clamped when it was issued.
func (s *Sweeper) recheckOne(ctx context.Context, r certstore.Due, now time.Time) (moved bool, err error) {
	w, _, err := s.ARI.Get(ctx, r.ARICertID)
	if err != nil {
		return false, err
	}
	if !w.End.Before(r.RenewAt) {
		return false, nil
	}
	at := ari.RenewAt(w, now, s.Rand).UTC().Truncate(time.Second)
	if !at.Before(r.RenewAt) {
		return false, nil
	}
	err = s.Mover.MoveTimer(ctx, r.Domain, r.Serial, r.ARICertID, at)
	if errors.Is(err, certstore.ErrStale) || errors.Is(err, certstore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	logging.From(ctx).InfoContext(ctx, "renewal moved earlier by the CA's renewal information", slog.String("domain", r.Domain),
		slog.Time("from", r.RenewAt), slog.Time("to", at), slog.String("explanationURL", w.ExplanationURL))
	return true, nil
}
