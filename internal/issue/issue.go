// Package issue is the state machine's Issue step: it takes the domain's
// ACME order from wherever the last attempt left it (package acme) to a
// stored certificate, and returns only metadata.
//
// One order per certificate: the order is stored (certstore.Order) the
// moment the CA creates it, and every later attempt, in this execution or
// the next run of the domain, resumes it (solve the challenges, make and
// seal the key and CSR, finalise, fetch) instead of placing another. A new
// order is placed only when there is none to resume (none yet, or the CA
// will not complete it: invalid, expired, forgotten), and only with the
// execution's slot of the new-order budget (package budget), marked spent
// on the domain before newOrder is sent, so a slot never places two
// orders. One invocation at a time works a domain's order: each holds the
// domain's lease (certstore.Lease) from its start to its end, so an
// execution that ended while its Issue step still ran (stopped, timed
// out, lost with the engine) leaves the next run neither a second order
// nor the same challenges solved twice: that run waits, then resumes the
// order the invocation stored. ARI renewals ("replaces") are exempt from
// the CA's limits and need no slot. The private key is made once per order, sealed before the
// order is finalised and stored with it; it never leaves this step in
// plaintext and is zeroed as soon as it is sealed.
package issue

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/certflow/certflow/internal/acme"
	"github.com/certflow/certflow/internal/budget"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/logging"
)

// CA is the ACME CA, order by order; *acme.Lazy implements it. Its errors
// are already the types of package failure.
type CA interface {
	Place(ctx context.Context, names []string, replaces, profile string) (acme.Order, error)
	State(ctx context.Context, o acme.Order) (acme.OrderState, error)
	Authorize(ctx context.Context, o acme.Order, m acme.Method) error
	Finalize(ctx context.Context, o acme.Order, csrDER []byte) (acme.OrderState, error)
	Fetch(ctx context.Context, o acme.Order) (*acme.Certificate, error)
	NewKeyAndCSR(names []string) (keyPEM, csrDER []byte, err error)
	DirectoryURL() string
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

// Store keeps the domain's pending order and stores the certificate;
// *certstore.Store implements it. Every write is fenced by the execution.
type Store interface {
	GetOrder(ctx context.Context, domain string) (certstore.Order, error)
	PutOrder(ctx context.Context, o certstore.Order) error
	DropOrder(ctx context.Context, domain string) error
	TakeLease(ctx context.Context, domain string, l certstore.Lease) error
	ReleaseLease(ctx context.Context, domain string, l certstore.Lease) error
	SpendSlot(ctx context.Context, domain string, l certstore.Lease, seq int64) (bool, error)
	UnspendSlot(ctx context.Context, domain string, l certstore.Lease, seq int64) error
	StorePlaced(ctx context.Context, o certstore.Order, l certstore.Lease) error
	SaveIssued(ctx context.Context, in certstore.Issued) error
}

// Slots admits the order of a slot of the new-order budget, or says how
// long to wait, and takes an admission back when its order never reached
// the CA; *budget.Schedule implements it.
type Slots interface {
	Admit(ctx context.Context, r budget.Reservation) (a budget.Admission, wait time.Duration, err error)
	Release(ctx context.Context, a budget.Admission) error
}

var (
	_ CA     = (*acme.Lazy)(nil)
	_ Sealer = (*envelope.Sealer)(nil)
	_ Store  = (*certstore.Store)(nil)
	_ Slots  = (*budget.Schedule)(nil)
)

// CAConfig is what the step needs of one of the deployment's CAs.
type CAConfig struct {
	CA CA
	// Slots is the CA's new-order budget.
	Slots Slots
	// Renewal decides when its certificates are renewed (its ARI).
	Renewal Scheduler
}

// Config holds a Handler's dependencies and settings.
type Config struct {
	// CAs are the deployment's CAs by name (flow.CAPrimary and, when
	// configured, flow.CAFallback); the execution input says which one
	// to order from.
	CAs    map[string]CAConfig
	Sealer Sealer
	Store  Store
	// Method is the challenge for ordinary names (wildcards always use
	// DNS-01); empty means HTTP-01.
	Method acme.Method
	// Names decides which domain names may be issued for.
	Names domain.Policy
	// MaxEarly is the longest the step waits for the budget to admit its
	// order; default DefaultMaxEarly.
	MaxEarly time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultLease is how long an invocation's lease of the domain lasts
// when it has no deadline: the Issue function's timeout in template.yaml.
const DefaultLease = 5 * time.Minute

// DefaultMaxEarly is Config.MaxEarly when zero: clocks of the state
// machine's Wait and of the function agree to well within it.
const DefaultMaxEarly = 30 * time.Second

// Handler runs the Issue step. It is safe for concurrent use.
type Handler struct {
	cfg Config
}

// attempt is one invocation's work with the CA it orders from.
type attempt struct {
	*Handler
	caName  string
	ca      CA
	slots   Slots
	renewal Scheduler
	lease   certstore.Lease // the invocation's turn at the domain's order
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.Method == "" {
		cfg.Method = acme.MethodHTTP01
	}
	if cfg.MaxEarly <= 0 {
		cfg.MaxEarly = DefaultMaxEarly
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{cfg: cfg}
}

// Handle takes the order of in.Domain one step further each time it can,
// to a stored certificate, for the execution in.Execution, and returns the
// certificate's metadata. Errors carry the types of package failure where
// the cause is known: invalid names are InvalidInputError, an execution
// that no longer owns the domain gets SupersededError or
// DomainRetiredError, another invocation holding the domain's lease a
// TransientError (CodeIssueInProgress), a new order without a usable slot
// NeedsOrderSlotError, the CA's answers their classes (package acme). They
// are logged once, by the caller.
func (h *Handler) Handle(ctx context.Context, in flow.Input) (flow.Issued, error) {
	if in.Domain == "" || in.Execution == "" {
		return flow.Issued{}, &failure.InvalidInputError{Message: "Issue needs domain and execution"}
	}
	primary, sans, err := h.cfg.Names.NormalizeAll(in.Domain, in.SANs)
	if err != nil {
		var de *domain.Error
		if errors.As(err, &de) {
			return flow.Issued{}, &failure.InvalidInputError{Message: de.Message, Err: err}
		}
		return flow.Issued{}, fmt.Errorf("normalise %q: %w", in.Domain, err)
	}
	names := append([]string{primary}, sans...)
	a := &attempt{Handler: h, caName: in.CAOrPrimary()}
	ca, ok := h.cfg.CAs[a.caName]
	if !ok {
		return flow.Issued{}, &failure.InvalidInputError{Message: fmt.Sprintf("no CA %q is configured", a.caName)}
	}
	a.ca, a.slots, a.renewal = ca.CA, ca.Slots, ca.Renewal
	a.lease = h.lease(ctx, in.Execution)
	if err := h.cfg.Store.TakeLease(ctx, primary, a.lease); err != nil {
		return flow.Issued{}, stepError(in, primary, err)
	}
	out, err := a.issue(ctx, in, primary, names)
	if err != nil {
		// The lease goes with the certificate when it is stored.
		h.release(ctx, primary, a.lease)
		return flow.Issued{}, stepError(in, primary, err)
	}
	return out, nil
}

// issue works the domain's order to a stored certificate.
func (h *attempt) issue(ctx context.Context, in flow.Input, primary string, names []string) (flow.Issued, error) {
	o, state, err := h.order(ctx, in, primary, names)
	if err != nil {
		return flow.Issued{}, err
	}
	cert, err := h.complete(ctx, in, &o, state)
	if err != nil {
		return flow.Issued{}, err
	}
	return h.save(ctx, in, primary, o, cert)
}

// leaseMargin covers the clocks of the functions differing.
const leaseMargin = 5 * time.Second

// lease is the invocation's lease of the domain: until its deadline (the
// Issue function's timeout), or DefaultLease when the context has none.
func (h *Handler) lease(ctx context.Context, execution string) certstore.Lease {
	until, ok := ctx.Deadline()
	if !ok {
		until = h.cfg.Now().Add(DefaultLease)
	}
	return certstore.Lease{Execution: execution, Token: execution + "/" + rand.Text(), Until: until.Add(leaseMargin)}
}

// release gives the lease back as the invocation ends, even when its
// context is done; a lease not given back ends at its deadline.
func (h *Handler) release(ctx context.Context, domain string, l certstore.Lease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := h.cfg.Store.ReleaseLease(ctx, domain, l); err != nil {
		logging.From(ctx).WarnContext(ctx, "lease not released: the next attempt waits for its deadline", "until", l.Until, "error", err.Error())
	}
}

// stepError turns the store refusing a write into the failure the state
// machine ends on.
func stepError(in flow.Input, primary string, err error) error {
	var held *certstore.LeaseHeldError
	switch {
	case errors.As(err, &held):
		return &failure.TransientError{Code: failure.CodeIssueInProgress, Message: held.Error(), Err: err}
	case errors.Is(err, certstore.ErrRetired):
		return &failure.DomainRetiredError{Message: primary, Err: err}
	case errors.Is(err, certstore.ErrSuperseded), errors.Is(err, certstore.ErrQuarantined), errors.Is(err, certstore.ErrNotFound):
		return &failure.SupersededError{Message: in.Execution, Err: err}
	}
	return err
}

// save seals nothing (the key was sealed with the order), schedules the
// renewal and stores the certificate, its timer and aliases; the pending
// order goes in the same transaction.
func (h *attempt) save(ctx context.Context, in flow.Input, primary string, o certstore.Order, cert *acme.Certificate) (flow.Issued, error) {
	renewAt := h.renewal.RenewAt(ctx, cert.Leaf, cert.ARICertID).UTC().Truncate(time.Second)
	sans := slices.Clone(o.Names)
	sans = slices.DeleteFunc(sans, func(n string) bool { return n == primary })
	issued := certstore.Issued{
		Domain:    primary,
		Execution: in.Execution,
		SANs:      append([]string{primary}, sans...),
		CertPEM:   string(cert.CertPEM),
		Key:       o.Key,
		KeyType:   o.KeyType,
		NotBefore: cert.NotBefore,
		NotAfter:  cert.NotAfter,
		Serial:    cert.Serial,
		Issuer:    cert.Issuer,
		CA:        h.caName,
		ARICertID: cert.ARICertID,
		RenewAt:   renewAt,
	}
	if err := h.cfg.Store.SaveIssued(ctx, issued); err != nil {
		return flow.Issued{}, fmt.Errorf("store certificate of %q: %w", primary, err)
	}
	out := flow.Issued{
		Domain:    primary,
		Serial:    cert.Serial,
		NotBefore: cert.NotBefore.UTC().Truncate(time.Second),
		NotAfter:  cert.NotAfter.UTC().Truncate(time.Second),
		RenewAt:   renewAt,
		Renewed:   in.Replaces != "" || in.ReplacesSerial != "",
		CA:        h.caName,
	}
	logging.From(ctx).InfoContext(ctx, "certificate issued", "serial", cert.Serial, "ca", h.caName,
		"sans", sans, "issuer", cert.Issuer, "notAfter", out.NotAfter, "renewAt", out.RenewAt,
		"renewed", out.Renewed, "replacesSerial", in.ReplacesSerial, "order", o.URL)
	return out, nil
}
