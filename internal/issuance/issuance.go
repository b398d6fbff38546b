// Package issuance is the logic of the issue function: it obtains a
// certificate for a domain, seals its private key, schedules its renewal and
// stores it, returning only metadata to the state machine.
package issuance

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/issuer"
)

// Input is the issue step's input: the execution input of the state machine
// (unknown fields such as "reason" are ignored).
type Input struct {
	Domain string   `json:"domain"`
	SANs   []string `json:"sans,omitempty"`
	// Replaces is the ARI certificate ID of the certificate being renewed.
	Replaces string `json:"replaces,omitempty"`
	// ReplacesSerial is the serial of the certificate being renewed.
	ReplacesSerial string `json:"replacesSerial,omitempty"`
}

// Output is what the issue step returns: metadata only, never key material.
// Times are UTC with second precision.
type Output struct {
	Domain    string    `json:"domain"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	RenewAt   time.Time `json:"renewAt"`
	// Renewed is true when the certificate replaces an earlier one.
	Renewed bool `json:"renewed"`
}

// Obtainer obtains certificates from the CA; *issuer.Issuer implements it.
// Its errors are already the types of package failure.
type Obtainer interface {
	Obtain(ctx context.Context, req issuer.Request) (*issuer.Certificate, error)
}

// Sealer encrypts a private key under an encryption context;
// *envelope.Sealer implements it.
type Sealer interface {
	Seal(ctx context.Context, plaintext []byte, encCtx map[string]string) (envelope.Sealed, error)
}

// Scheduler decides when a certificate is to be renewed (the ari package:
// the CA's ARI window, or a share of the lifetime).
type Scheduler interface {
	RenewAt(ctx context.Context, leaf *x509.Certificate, ariCertID string) time.Time
}

// Saver stores an issued certificate with its renewal timer and aliases;
// *certstore.Store implements it.
type Saver interface {
	SaveIssued(ctx context.Context, in certstore.Issued) error
}

// Handler runs the issue step. It is safe for concurrent use.
type Handler struct {
	obtainer  Obtainer
	sealer    Sealer
	scheduler Scheduler
	saver     Saver
	keyType   string
	logger    *slog.Logger
}

// New returns a Handler. keyType is the configuration name of the
// certificate key type ("ec256", "rsa2048") recorded on the item.
func New(o Obtainer, s Sealer, sch Scheduler, sv Saver, keyType string, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.Default()
	}
	return &Handler{obtainer: o, sealer: s, scheduler: sch, saver: sv, keyType: keyType, logger: logger}
}

// Handle normalises the names of in, obtains the certificate, seals its key
// with the context {"purpose":"certificate-key","domain":<primary>}, stores
// it and returns its metadata. The plaintext key is zeroed before Handle
// returns. Errors carry the types of package failure where the cause is
// known (invalid names are InvalidInputError).
func (h *Handler) Handle(ctx context.Context, in Input) (Output, error) {
	primary, sans, err := domain.NormalizeAll(in.Domain, in.SANs)
	if err != nil {
		var de *domain.Error
		if errors.As(err, &de) {
			return Output{}, &failure.InvalidInputError{Message: de.Message, Err: err}
		}
		return Output{}, fmt.Errorf("normalise %q: %w", in.Domain, err)
	}
	log := h.logger.With("domain", primary)

	cert, err := h.obtainer.Obtain(ctx, issuer.Request{Domain: primary, SANs: sans, ReplacesCertID: in.Replaces})
	if err != nil {
		log.ErrorContext(ctx, "certificate issuance failed", "error", err)
		return Output{}, err
	}
	defer clear(cert.KeyPEM)
	log = log.With("serial", cert.Serial)

	sealed, err := h.sealer.Seal(ctx, cert.KeyPEM, envelope.CertificateKeyContext(primary))
	if err != nil {
		log.ErrorContext(ctx, "sealing certificate key failed", "error", err)
		return Output{}, fmt.Errorf("seal key of %q: %w", primary, err)
	}
	clear(cert.KeyPEM)

	renewAt := h.scheduler.RenewAt(ctx, cert.Leaf, cert.ARICertID).UTC().Truncate(time.Second)
	issued := certstore.Issued{
		Domain:    primary,
		SANs:      append([]string{primary}, slices.Clone(sans)...),
		CertPEM:   string(cert.CertPEM),
		Key:       certstore.SealedKey(sealed),
		KeyType:   h.keyType,
		NotBefore: cert.NotBefore,
		NotAfter:  cert.NotAfter,
		Serial:    cert.Serial,
		Issuer:    cert.Issuer,
		ARICertID: cert.ARICertID,
		RenewAt:   renewAt,
	}
	if err := h.saver.SaveIssued(ctx, issued); err != nil {
		if errors.Is(err, certstore.ErrRetired) {
			// Retired while the order ran: the certificate is dropped with
			// its key, and the execution ends.
			log.InfoContext(ctx, "domain retired during issuance; certificate discarded")
			return Output{}, &failure.DomainRetiredError{Message: primary, Err: err}
		}
		log.ErrorContext(ctx, "storing certificate failed", "error", err)
		return Output{}, fmt.Errorf("store certificate of %q: %w", primary, err)
	}

	out := Output{
		Domain:    primary,
		Serial:    cert.Serial,
		NotBefore: cert.NotBefore.UTC().Truncate(time.Second),
		NotAfter:  cert.NotAfter.UTC().Truncate(time.Second),
		RenewAt:   renewAt,
		Renewed:   in.Replaces != "" || in.ReplacesSerial != "",
	}
	log.InfoContext(ctx, "certificate issued",
		"sans", sans, "issuer", cert.Issuer, "notAfter", out.NotAfter, "renewAt", out.RenewAt,
		"renewed", out.Renewed, "replacesSerial", in.ReplacesSerial)
	return out, nil
}
