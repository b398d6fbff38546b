// Package issue is the state machine's Issue step: it obtains a
// certificate for a domain from the CA (package acme), seals its private
// key (package envelope), schedules its renewal (package ari) and stores it
// with its renewal timer (package certstore), returning only metadata.
package issue

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/certflow/certflow/internal/acme"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/logging"
)

// Obtainer obtains certificates from the CA; *acme.Client implements it.
// Its errors are already the types of package failure.
type Obtainer interface {
	Obtain(ctx context.Context, req acme.Request) (*acme.Certificate, error)
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

// Handler runs the Issue step. It is safe for concurrent use.
type Handler struct {
	obtainer  Obtainer
	sealer    Sealer
	scheduler Scheduler
	saver     Saver
	keyType   string
	names     domain.Policy
}

// New returns a Handler. keyType is the configuration name of the
// certificate key type ("ec256", "rsa2048") recorded on the item; names
// decides which domain names may be issued for.
func New(o Obtainer, s Sealer, sch Scheduler, sv Saver, keyType string, names domain.Policy) *Handler {
	return &Handler{obtainer: o, sealer: s, scheduler: sch, saver: sv, keyType: keyType, names: names}
}

// Handle normalises the names of in, obtains the certificate, seals its key
// with the context {"purpose":"certificate-key","domain":<primary>}, stores
// it and returns its metadata. The plaintext key is zeroed before Handle
// returns. Errors carry the types of package failure where the cause is
// known (invalid names are InvalidInputError); they are logged once, by the
// caller.
func (h *Handler) Handle(ctx context.Context, in flow.Input) (flow.Issued, error) {
	primary, sans, err := h.names.NormalizeAll(in.Domain, in.SANs)
	if err != nil {
		var de *domain.Error
		if errors.As(err, &de) {
			return flow.Issued{}, &failure.InvalidInputError{Message: de.Message, Err: err}
		}
		return flow.Issued{}, fmt.Errorf("normalise %q: %w", in.Domain, err)
	}
	cert, err := h.obtainer.Obtain(ctx, acme.Request{Domain: primary, SANs: sans, ReplacesCertID: in.ARIReplaces()})
	if err != nil {
		return flow.Issued{}, err
	}
	defer clear(cert.KeyPEM)
	log := logging.From(ctx).With("serial", cert.Serial)

	sealed, err := h.sealer.Seal(ctx, cert.KeyPEM, envelope.CertificateKeyContext(primary))
	if err != nil {
		return flow.Issued{}, fmt.Errorf("seal key of %q: %w", primary, err)
	}
	clear(cert.KeyPEM)

	renewAt := h.scheduler.RenewAt(ctx, cert.Leaf, cert.ARICertID).UTC().Truncate(time.Second)
	issued := certstore.Issued{
		Domain:    primary,
		Execution: in.Execution,
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
		switch {
		case errors.Is(err, certstore.ErrRetired):
			// Retired while the order ran: the certificate is dropped with
			// its key, and the execution ends.
			return flow.Issued{}, &failure.DomainRetiredError{Message: primary, Err: err}
		case errors.Is(err, certstore.ErrSuperseded), errors.Is(err, certstore.ErrQuarantined):
			return flow.Issued{}, &failure.SupersededError{Message: in.Execution, Err: err}
		}
		return flow.Issued{}, fmt.Errorf("store certificate of %q: %w", primary, err)
	}

	out := flow.Issued{
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
