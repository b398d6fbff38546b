package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/certflow/certflow/internal/failure"
)

// Source is the EventBridge source of certflow's events.
const Source = "certflow"

// Event types, used as the EventBridge detail-type.
const (
	TypeIssued      = "Certificate Issued"
	TypeRenewed     = "Certificate Renewed"
	TypeFailed      = "Certificate Issuance Failed"
	TypeQuarantined = "Domain Quarantined"
	TypeRetired     = "Domain Retired"
	// TypeOffboarded: a domain that had moved away from the platform for
	// the offboarding period was retired by certflow itself.
	TypeOffboarded = "Domain Offboarded"
)

// Event is one platform event. Zero fields are left out of the detail.
type Event struct {
	Type         string // one of the Type constants
	Domain       string
	Serial       string // lower-case hex
	NotAfter     time.Time
	ReasonCode   string // a failure code
	Message      string
	FailureCount int
	UnpauseURL   string
	// Version is the certificate item's version the event reports, when
	// known: subscribers order events of one domain by it.
	Version int64
}

// ID is the event's stable identifier: the same event published twice (a
// step retried after a timeout) has the same ID, so subscribers drop the
// copy. It digests what makes the event this one: its type, domain,
// serial, failure code and count, and version.
func (ev Event) ID() string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%s|%s|%d|%d", ev.Type, ev.Domain, ev.Serial, ev.ReasonCode, ev.FailureCount, ev.Version))
	return hex.EncodeToString(sum[:16])
}

// Detail is the JSON detail of an event as subscribers receive it.
type Detail struct {
	// EventID is Event.ID: the same for every copy of one event.
	EventID      string `json:"eventId"`
	Domain       string `json:"domain"`
	Serial       string `json:"serial,omitempty"`
	NotAfter     string `json:"notAfter,omitempty"` // RFC 3339 UTC
	ReasonCode   string `json:"reasonCode,omitempty"`
	Message      string `json:"message,omitempty"`
	FailureCount int    `json:"failureCount,omitempty"`
	UnpauseURL   string `json:"unpauseURL,omitempty"`
	Version      int64  `json:"version,omitempty"`
}

// PutEventsAPI is the part of the EventBridge client a Publisher uses.
type PutEventsAPI interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Publisher publishes certflow's platform events to one Amazon EventBridge
// bus, so the platform learns about issued, renewed, failed and quarantined
// domains without polling.
type Publisher struct {
	client PutEventsAPI
	bus    string
	source string
}

// New returns a Publisher putting events on the bus busName (a name or ARN;
// empty means the default bus) with source (normally Source).
func New(client PutEventsAPI, busName, source string) *Publisher {
	return &Publisher{client: client, bus: busName, source: source}
}

// Publish puts ev on the bus. An entry EventBridge rejects is an error;
// throttling (of the call or of the entry) is a *failure.TransientError.
func (p *Publisher) Publish(ctx context.Context, ev Event) error {
	if ev.Type == "" || ev.Domain == "" {
		return fmt.Errorf("publish event: type and domain are required (got %q, %q)", ev.Type, ev.Domain)
	}
	d := Detail{
		EventID:      ev.ID(),
		Domain:       ev.Domain,
		Serial:       ev.Serial,
		ReasonCode:   ev.ReasonCode,
		Message:      ev.Message,
		FailureCount: ev.FailureCount,
		UnpauseURL:   ev.UnpauseURL,
		Version:      ev.Version,
	}
	if !ev.NotAfter.IsZero() {
		d.NotAfter = ev.NotAfter.UTC().Format(time.RFC3339)
	}
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("publish %q for %q: %w", ev.Type, ev.Domain, err)
	}
	entry := types.PutEventsRequestEntry{
		Source:     aws.String(p.source),
		DetailType: aws.String(ev.Type),
		Detail:     aws.String(string(b)),
	}
	if p.bus != "" {
		entry.EventBusName = aws.String(p.bus)
	}
	out, err := p.client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry}})
	if err != nil {
		if throttled(err) {
			err = &failure.TransientError{Message: "EventBridge is throttling or unavailable", Err: err}
		}
		return fmt.Errorf("publish %q for %q: %w", ev.Type, ev.Domain, err)
	}
	if out.FailedEntryCount > 0 {
		code, msg := "unknown", ""
		if len(out.Entries) > 0 {
			code, msg = aws.ToString(out.Entries[0].ErrorCode), aws.ToString(out.Entries[0].ErrorMessage)
		}
		err := fmt.Errorf("entry rejected: %s: %s", code, msg)
		if code == "ThrottlingException" || code == "InternalException" || code == "InternalFailure" {
			err = &failure.TransientError{Message: "EventBridge rejected the event: " + code, Err: err}
		}
		return fmt.Errorf("publish %q for %q: %w", ev.Type, ev.Domain, err)
	}
	return nil
}

func throttled(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	return retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary ||
		retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
}
