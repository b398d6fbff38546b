// Package flow is the contract between the issuance state machine
// (statemachine/issuance.asl.json) and the code around it: the execution
// input that the API, the renewal trigger and the sweeper start it with,
// what its steps hand each other, and the names of its executions. It
// depends on the standard library and package validation only, so every
// function links it without lego or an AWS SDK client.
package flow

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"github.com/certflow/certflow/internal/validation"
)

// Why an execution was started (Input.Reason).
const (
	ReasonRequest = "request" // the platform requested the domain
	ReasonRenewal = "renewal" // its certificate is due for renewal
)

// What started a renewal (Input.StartedBy): the expired timer (the normal
// path) or the sweeper (a timer late or lost).
const (
	StartedByTimer   = "timer"
	StartedBySweeper = "sweeper"
)

// The ACME CAs a deployment may order from (Input.CA, OrderSlot.CA): its
// primary, and the fallback it turns to when the primary is down, rate
// limits the account, or refuses a name another CA may not refuse.
// Renewals start on the primary.
const (
	CAPrimary  = "primary"
	CAFallback = "fallback"
)

// Input is the execution input of the issuance state machine. Steps that
// receive the whole state (Issue) read it with the fields the state machine
// added; steps given Parameters receive the parts they name.
type Input struct {
	Domain string   `json:"domain"`
	SANs   []string `json:"sans"`
	Reason string   `json:"reason"`
	// Replaces is the ARI certificate ID of the certificate being renewed
	// (RFC 9773 "replaces"), renewals only.
	Replaces string `json:"replaces,omitempty"`
	// ReplacesSerial is the serial of the certificate being renewed,
	// renewals only.
	ReplacesSerial string `json:"replacesSerial,omitempty"`
	// StartedBy is StartedByTimer or StartedBySweeper, renewals only.
	StartedBy string `json:"startedBy,omitempty"`
	// Generation is the domain's generation the execution works for (a
	// new request of a quarantined or retired domain starts a new one).
	Generation int64 `json:"generation"`
	// Execution is the name of the execution, set by whoever starts it
	// (names are deterministic). Steps log it, and a step's writes are
	// fenced by it: only the execution the domain's item names may change
	// the item, so a superseded execution cannot.
	Execution string `json:"execution"`
	// CA is the CA the execution orders from: CAPrimary, until the state
	// machine falls back to CAFallback.
	CA string `json:"ca"`
	// Validation is how the domain proves control (validation.HTTP01 when
	// empty); Records are the DNS records it was asked to publish for it
	// (the DNS-01 delegation CNAME, the DNS-PERSIST-01 TXT), which
	// preflight checks instead of where the domain points.
	Validation validation.Method   `json:"validation,omitempty"`
	Records    []validation.Record `json:"records,omitempty"`
	// Profile is the ACME profile the platform asked for ("" = the
	// deployment's default).
	Profile string `json:"profile,omitempty"`
	// OrderSlot is the slot of the new-order budget the execution holds,
	// once ReserveOrderSlot has run (the state machine adds it).
	OrderSlot *OrderSlot `json:"orderSlot,omitempty"`
	// ReplacesRefused is set by the state machine once the CA refused
	// Replaces (already replaced, unknown to it): orders go without it,
	// under the budget, from then on.
	ReplacesRefused bool `json:"replacesRefused,omitempty"`
}

// ARIReplaces is the ARI "replaces" the execution's next order carries:
// Replaces, unless the CA refused it.
func (in Input) ARIReplaces() string {
	if in.ReplacesRefused {
		return ""
	}
	return in.Replaces
}

// OrderSlot is a reservation of the new-order budget: the Seq-th
// reservation, which may place its order at At (UTC, whole seconds). The
// state machine waits until At before Issue.
type OrderSlot struct {
	Seq int64     `json:"seq"`
	At  time.Time `json:"at"`
	// CA is the CA whose budget the slot is of: a slot of another CA's
	// budget is no use (the state machine reserves anew).
	CA string `json:"ca"`
}

// CAOrPrimary is the CA the execution orders from, CAPrimary when the
// input names none (an execution started before the input had it).
func (in Input) CAOrPrimary() string {
	if in.CA == "" {
		return CAPrimary
	}
	return in.CA
}

// LogAttrs are the attributes every log line about the execution carries.
func (in Input) LogAttrs() []any { return logAttrs(in.Domain, in.Execution) }

func logAttrs(domain, execution string) []any {
	var attrs []any
	if domain != "" {
		attrs = append(attrs, "domain", domain)
	}
	if execution != "" {
		attrs = append(attrs, "execution", execution)
	}
	return attrs
}

// Issued is what the Issue step returns and Notify reads: metadata only,
// never key material. Times are UTC with second precision.
type Issued struct {
	Domain    string    `json:"domain"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	RenewAt   time.Time `json:"renewAt"`
	// Renewed is true when the certificate replaces an earlier one.
	Renewed bool `json:"renewed"`
	// CA is the CA that issued it (CAPrimary or CAFallback).
	CA string `json:"ca,omitempty"`
}

// Caught is what a Catch puts at its ResultPath: the error name (the Lambda
// errorType, see package failure) and its cause. Cause is a JSON string in
// AWS and may be an object in a local engine; failure.ParseCause reads both.
type Caught struct {
	Error string          `json:"Error"`
	Cause json.RawMessage `json:"Cause"`
}

// hashLen is how many hex digits of the SHA-256 a name keeps (160 bits).
const hashLen = 40

// IssueName returns the name of the run-th execution issuing domain for its
// generation: "issue-" and 40 lower-case hex digits. A new request of the
// same domain starts a new generation, and the reconciler restarting an
// execution that ended without an outcome a new run, so each gets a new
// name; the same start made twice gets the same name, and Step Functions
// starts it once.
func IssueName(domain string, generation, run int64) string {
	return "issue-" + digest(domain+"|"+strconv.FormatInt(generation, 10)+"|"+strconv.FormatInt(run, 10))
}

// RenewName returns the name of the run-th execution renewing the
// certificate serial of domain: "renew-" and 40 lower-case hex digits. One
// renewal per certificate at a time: the trigger and the sweeper derive the
// same name for the same certificate and run.
func RenewName(domain, serial string, run int64) string {
	return "renew-" + digest(domain+"|"+serial+"|"+strconv.FormatInt(run, 10))
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:hashLen]
}
