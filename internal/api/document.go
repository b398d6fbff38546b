package api

import (
	"time"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/table"
	"github.com/certflow/certflow/internal/validation"
)

// document is the status document of a domain. Empty members are omitted.
// It never holds key material or the certificate itself.
type document struct {
	Domain           string     `json:"domain"`
	SANs             []string   `json:"sans,omitempty"`
	Tenant           string     `json:"tenant,omitempty"`
	Status           string     `json:"status"`
	NotBefore        string     `json:"notBefore,omitempty"`
	NotAfter         string     `json:"notAfter,omitempty"`
	Serial           string     `json:"serial,omitempty"`
	Issuer           string     `json:"issuer,omitempty"`
	RenewAt          string     `json:"renewAt,omitempty"`
	FailureCount     int        `json:"failureCount,omitempty"`
	LastError        *lastError `json:"lastError,omitempty"`
	NextAttemptAt    string     `json:"nextAttemptAt,omitempty"`
	QuarantineReason string     `json:"quarantineReason,omitempty"`
	UnpauseURL       string     `json:"unpauseURL,omitempty"`
	// Validation is how the domain proves control, DNSRecords the records
	// its customer publishes for it (the delegation CNAME, the
	// DNS-PERSIST-01 TXT), Profile the ACME profile asked for.
	Validation  string              `json:"validation"`
	DNSRecords  []validation.Record `json:"dnsRecords,omitempty"`
	Profile     string              `json:"profile,omitempty"`
	Ownership   *proof              `json:"ownership,omitempty"`
	RequestedAt string              `json:"requestedAt,omitempty"`
	UpdatedAt   string              `json:"updatedAt,omitempty"`
}

// proof is the ownership proof a request asked for: the TXT records to
// publish, and when preflight found them.
type proof struct {
	Records    []validation.Record `json:"records"`
	VerifiedAt string              `json:"verifiedAt,omitempty"`
}

type lastError struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

func newDocument(c *certstore.Certificate) document {
	d := document{
		Domain:           c.Domain,
		SANs:             c.SANs,
		Tenant:           c.Tenant,
		Status:           string(c.Status),
		NotBefore:        formatTime(c.NotBefore),
		NotAfter:         formatTime(c.NotAfter),
		Serial:           c.Serial,
		Issuer:           c.Issuer,
		RenewAt:          formatTime(c.RenewAt),
		FailureCount:     c.FailureCount,
		NextAttemptAt:    formatTime(c.NextAttemptAt),
		QuarantineReason: c.QuarantineReason,
		UnpauseURL:       c.UnpauseURL,
		Validation:       string(c.Validation),
		DNSRecords:       c.Records,
		Profile:          c.Profile,
		RequestedAt:      formatTime(c.RequestedAt),
		UpdatedAt:        formatTime(c.UpdatedAt),
	}
	if d.Validation == "" {
		d.Validation = string(validation.HTTP01)
	}
	if c.OwnershipToken != "" {
		d.Ownership = &proof{
			Records:    validation.OwnershipRecords(append([]string{c.Domain}, c.SANs...), c.OwnershipToken),
			VerifiedAt: formatTime(c.OwnershipVerifiedAt),
		}
	}
	if c.LastErrorCode != "" || c.LastErrorMessage != "" {
		d.LastError = &lastError{Code: c.LastErrorCode, Message: c.LastErrorMessage}
	}
	return d
}

// formatTime formats t as the table does (RFC 3339 UTC, seconds); the zero
// time is "" so that it is omitted.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return table.FormatTime(t)
}
