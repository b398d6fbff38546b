package renewal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/table"
)

// The stream record fields that mark a deletion by DynamoDB's TTL.
const (
	ttlIdentityType      = "Service"
	ttlIdentityPrincipal = "dynamodb.amazonaws.com"
)

// Getter reads a domain's certificate item; a missing domain is an error
// wrapping certstore.ErrNotFound. *certstore.Store implements it.
type Getter interface {
	Get(ctx context.Context, domain string) (*certstore.Certificate, error)
}

var _ Getter = (*certstore.Store)(nil)

// Trigger handles the renewal timers table's DynamoDB stream: a renewal
// timer deleted by TTL starts the renewal of the certificate it was set
// for, unless a renewal of it already runs.
type Trigger struct {
	// Certificates reads certificate items.
	Certificates Getter
	// Reconciler claims the domain and starts the renewal.
	Reconciler Reconciler
}

// Handle processes a batch of stream records. Only REMOVE records of timer
// items deleted by TTL (userIdentity Service / dynamodb.amazonaws.com) act;
// the event source mapping filters the same way, this is the second check.
// A timer deleted by the platform or by quarantine renews nothing.
//
// Failures of single records are reported in BatchItemFailures by sequence
// number, so Lambda retries from the first failed record; starting an
// execution is idempotent by name, so records retried after a success are
// harmless. Handle itself never returns an error.
func (t *Trigger) Handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	resp := events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{}}
	for i := range ev.Records {
		rec := &ev.Records[i]
		if err := t.handleRecord(ctx, rec); err != nil {
			logging.From(ctx).ErrorContext(ctx, "renewal trigger record failed",
				slog.String("sequenceNumber", rec.Change.SequenceNumber), slog.String("error", err.Error()))
			resp.BatchItemFailures = append(resp.BatchItemFailures,
				events.DynamoDBBatchItemFailure{ItemIdentifier: rec.Change.SequenceNumber})
		}
	}
	return resp, nil
}

// IsTTLTimerRemoval reports whether rec is the deletion of a renewal timer
// by DynamoDB's TTL.
func IsTTLTimerRemoval(rec *events.DynamoDBEventRecord) bool {
	if rec.EventName != string(events.DynamoDBOperationTypeRemove) {
		return false
	}
	if rec.UserIdentity == nil || rec.UserIdentity.Type != ttlIdentityType || rec.UserIdentity.PrincipalID != ttlIdentityPrincipal {
		return false
	}
	sk, ok := rec.Change.Keys[table.AttrSK]
	return ok && sk.DataType() == events.DataTypeString && sk.String() == table.SKTimer
}

func (t *Trigger) handleRecord(ctx context.Context, rec *events.DynamoDBEventRecord) error {
	log := logging.From(ctx)
	if !IsTTLTimerRemoval(rec) {
		log.DebugContext(ctx, "stream record is not a timer expiry, skipped",
			slog.String("eventName", rec.EventName), slog.String("sequenceNumber", rec.Change.SequenceNumber))
		return nil
	}
	timer, err := timerFromImage(rec.Change.OldImage)
	if err != nil {
		// Retrying cannot repair the image: record it once and move on.
		log.ErrorContext(ctx, "unreadable timer image, skipped",
			slog.String("sequenceNumber", rec.Change.SequenceNumber), slog.String("error", err.Error()))
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("renew %q: %w", timer.Domain, err)
	}
	cert, err := t.Certificates.Get(ctx, timer.Domain)
	if errors.Is(err, certstore.ErrNotFound) {
		log.InfoContext(ctx, "timer of a missing domain, skipped", slog.String("domain", timer.Domain))
		return nil
	}
	if err != nil {
		return fmt.Errorf("renew %q: %w", timer.Domain, err)
	}
	if reason := skipReason(cert, timer.Serial); reason != "" {
		log.InfoContext(ctx, "timer expired, renewal not needed", slog.String("domain", timer.Domain),
			slog.String("serial", timer.Serial), slog.String("reason", reason))
		return nil
	}
	if cert.ARICertID == "" {
		cert.ARICertID = timer.ARICertID
	}
	out, err := t.Reconciler.Reconcile(ctx, cert, flow.StartedByTimer)
	if err != nil {
		return fmt.Errorf("renew %q: %w", timer.Domain, err)
	}
	log.InfoContext(ctx, "renewal started by timer", slog.String("domain", cert.Domain), slog.String("serial", cert.Serial),
		slog.String("outcome", string(out)))
	return nil
}

// skipReason says why cert needs no renewal of serial now, or "" if it
// does: an execution owns the domain already (the sweeper started the
// renewal, or the record is a duplicate), or there is nothing to renew.
func skipReason(cert *certstore.Certificate, serial string) string {
	switch {
	case cert.Status == certstore.StatusRetired:
		return "retired"
	case cert.Status == certstore.StatusQuarantined:
		return "quarantined"
	case cert.Status != certstore.StatusActive:
		return "not active"
	case !strings.EqualFold(cert.Serial, serial):
		return "already renewed"
	case cert.Execution != "":
		return "already renewing"
	}
	return ""
}
