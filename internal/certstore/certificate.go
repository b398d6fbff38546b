// Package certstore keeps certificates, their renewal timers and their
// aliases in the certflow DynamoDB table (see docs/ARCHITECTURE.md for the
// item layout).
package certstore

import (
	"errors"
	"time"
)

// Status is the lifecycle state of a domain's certificate.
type Status string

// The statuses a certificate item moves through.
const (
	StatusPending     Status = "pending"     // requested, first issuance in progress
	StatusActive      Status = "active"      // holds a served certificate
	StatusFailed      Status = "failed"      // the last attempt failed; another is scheduled
	StatusQuarantined Status = "quarantined" // no more attempts until requested again
	StatusRetired     Status = "retired"     // deleted by the platform
)

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusActive, StatusFailed, StatusQuarantined, StatusRetired:
		return true
	}
	return false
}

// ErrNotFound is returned when an item does not exist.
var ErrNotFound = errors.New("certstore: not found")

// SealedKey is a private key sealed by the envelope package: a KMS-wrapped
// data key and the AES-256-GCM ciphertext (nonce first).
type SealedKey struct {
	Wrapped    []byte
	Ciphertext []byte
}

// Certificate is the current state of one domain: the certificate served for
// it (if any) and the bookkeeping of its issuance.
type Certificate struct {
	Domain     string
	SANs       []string
	Status     Status
	Version    int64 // incremented by every write
	Generation int64 // incremented each time the platform (re-)requests the domain

	CertPEM   string    // leaf then chain
	Key       SealedKey // never plaintext
	KeyType   string
	NotBefore time.Time
	NotAfter  time.Time
	Serial    string // lower-case hex
	Issuer    string
	ARICertID string
	RenewAt   time.Time

	FailureCount     int
	FirstFailureAt   time.Time
	LastErrorCode    string
	LastErrorMessage string
	NextAttemptAt    time.Time
	UnpauseURL       string
	QuarantineReason string

	Execution   string // ARN of the execution working on this domain
	RequestedAt time.Time
	UpdatedAt   time.Time
}

// Timer is the renewal timer item of a domain. DynamoDB's TTL deletes it at
// RenewAt; that deletion on the stream starts the renewal.
type Timer struct {
	Domain    string
	Serial    string // serial of the certificate to replace
	ARICertID string
	RenewAt   time.Time
}
