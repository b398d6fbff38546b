package issue

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certflow/certflow/internal/acme"
	"github.com/certflow/certflow/internal/budget"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/logging"
)

// maxPhases bounds the phases one invocation walks an order through
// (authorize, make the key, finalise, fetch): an order that keeps going
// back is the CA's problem, retried later.
const maxPhases = 6

// order returns the domain's order to work on, with its state at the CA:
// the stored one when the CA will still complete it, else a new one.
func (h *attempt) order(ctx context.Context, in flow.Input, primary string, names []string) (certstore.Order, acme.OrderState, error) {
	log := logging.From(ctx)
	stored, err := h.cfg.Store.GetOrder(ctx, primary)
	switch {
	case errors.Is(err, certstore.ErrNotFound):
	case err != nil:
		return certstore.Order{}, acme.OrderState{}, err
	default:
		if why := h.unusable(stored, names, in.Profile); why != "" {
			log.InfoContext(ctx, "stored order not resumed", "order", stored.URL, "reason", why)
			if err := h.cfg.Store.DropOrder(ctx, primary); err != nil {
				return certstore.Order{}, acme.OrderState{}, err
			}
			break
		}
		state, err := h.ca.State(ctx, acmeOrder(stored))
		switch {
		case errors.Is(err, acme.ErrOrderGone):
			log.InfoContext(ctx, "stored order gone at the CA, a new one is placed", "order", stored.URL, "error", err.Error())
		case err != nil:
			return certstore.Order{}, acme.OrderState{}, err
		case state.Status == acme.StatusInvalid:
			// The CA will never complete it: the next attempt places a
			// new order, and the reason is this attempt's failure.
			if err := h.cfg.Store.DropOrder(ctx, primary); err != nil {
				return certstore.Order{}, acme.OrderState{}, err
			}
			return certstore.Order{}, acme.OrderState{}, invalidOrder(stored, state)
		default:
			log.InfoContext(ctx, "resuming stored order", "order", stored.URL, "status", state.Status, "placedBy", stored.Execution)
			return stored, state, nil
		}
		if err := h.cfg.Store.DropOrder(ctx, primary); err != nil {
			return certstore.Order{}, acme.OrderState{}, err
		}
	}
	o, err := h.place(ctx, in, primary, names)
	if err != nil {
		return certstore.Order{}, acme.OrderState{}, err
	}
	return o, acme.OrderState{Status: acme.StatusPending}, nil
}

// method is how the execution's names are validated: the domain's own
// method, else the deployment's.
func (h *attempt) method(in flow.Input) acme.Method {
	if in.Validation != "" {
		return in.Validation
	}
	return h.cfg.Method
}

// unusable says why a stored order cannot give the certificate asked for,
// or "" when it can.
func (h *attempt) unusable(o certstore.Order, names []string, profile string) string {
	want := slices.Clone(names)
	slices.Sort(want)
	have := slices.Clone(o.Names)
	slices.Sort(have)
	switch {
	case o.Directory != h.ca.DirectoryURL():
		return "placed with another CA (" + o.Directory + ")"
	case !slices.Equal(have, want):
		return fmt.Sprintf("for other names (%s)", strings.Join(have, ", "))
	case profile != "" && o.Profile != profile:
		return fmt.Sprintf("with profile %q, not %q", o.Profile, profile)
	}
	return ""
}

// invalidOrder is the failure of an order the CA made invalid.
func invalidOrder(o certstore.Order, state acme.OrderState) error {
	if state.Problem != nil {
		return fmt.Errorf("order %s is invalid: %w", o.URL, state.Problem)
	}
	return &failure.ChallengeFailedError{Message: fmt.Sprintf("order %s is invalid", o.URL)}
}

// place places a new order for names and stores it, under the
// invocation's lease of the domain. A renewal with ARI "replaces" and no
// slot uses the exempt marker 0; everything else needs the execution's
// slot of the new-order budget, unspent and admitted. The slot is marked
// spent on the domain first (refused when an earlier attempt spent it:
// that attempt's order may have reached the CA), then admitted by the
// budget right before newOrder is sent, and both are given back when the
// CA certainly created no order (the request never reached it, or it
// answered with a problem). The order is stored as soon as the CA creates
// it, even if another execution owns the domain by then: that execution
// resumes it once this invocation ends.
func (h *attempt) place(ctx context.Context, in flow.Input, primary string, names []string) (certstore.Order, error) {
	log := logging.From(ctx)
	replaces := in.ARIReplaces()
	var seq int64
	switch {
	case in.OrderSlot != nil && in.OrderSlot.CA != "" && in.OrderSlot.CA != h.caName:
		return certstore.Order{}, &failure.NeedsOrderSlotError{Message: fmt.Sprintf("order slot %d is of CA %s's budget, not %s's", in.OrderSlot.Seq, in.OrderSlot.CA, h.caName)}
	case in.OrderSlot != nil && h.slots == nil:
		return certstore.Order{}, &failure.InvalidInputError{Message: fmt.Sprintf("CA %s has no order budget", h.caName)}
	case in.OrderSlot != nil:
		seq = in.OrderSlot.Seq
	case replaces != "":
		seq = 0 // ARI renewals are exempt from the new-order limits
	default:
		return certstore.Order{}, &failure.NeedsOrderSlotError{Message: "a new order needs a slot of the new-order budget"}
	}
	spent, err := h.cfg.Store.SpendSlot(ctx, primary, h.lease, seq)
	if err != nil {
		return certstore.Order{}, err
	}
	if !spent {
		return certstore.Order{}, &failure.NeedsOrderSlotError{Message: fmt.Sprintf("order slot %d was spent on an order already", seq)}
	}
	var admission *budget.Admission
	giveBack := func() {
		if err := h.cfg.Store.UnspendSlot(ctx, primary, h.lease, seq); err != nil {
			log.WarnContext(ctx, "order slot not given back", "slot", seq, "error", err.Error())
		}
		if admission != nil {
			if err := h.slots.Release(ctx, *admission); err != nil {
				log.WarnContext(ctx, "budget admission not given back", "slot", seq, "error", err.Error())
			}
		}
	}
	if in.OrderSlot != nil {
		a, err := h.admit(ctx, *in.OrderSlot)
		if err != nil {
			giveBack()
			return certstore.Order{}, err
		}
		admission = &a
	}
	o, err := h.ca.Place(ctx, names, replaces, in.Profile)
	if err != nil {
		if notCreated(err) {
			giveBack()
		}
		return certstore.Order{}, err
	}
	stored := certstore.Order{
		Domain: primary, Execution: in.Execution, URL: o.URL, Names: o.Names, Replaces: o.Replaces, Profile: o.Profile,
		Directory: h.ca.DirectoryURL(), Account: o.Account, CreatedAt: h.cfg.Now().UTC().Truncate(time.Second),
	}
	if err := h.cfg.Store.StorePlaced(ctx, stored, h.lease); err != nil {
		return certstore.Order{}, fmt.Errorf("order %s placed but not stored: %w", o.URL, err)
	}
	log.InfoContext(ctx, "order placed", "order", o.URL, "slot", seq, "replaces", o.Replaces, "profile", o.Profile)
	return stored, nil
}

// notCreated reports whether a failed newOrder certainly created no order:
// it never reached the CA, or the CA answered with a problem (rate
// limited, replaces refused, name rejected). A CA error or a lost answer
// may have created one.
func notCreated(err error) bool {
	if acme.NotSent(err) {
		return true
	}
	f, ok := failure.Find(err)
	if !ok {
		return false
	}
	var transient *failure.TransientError
	return !errors.As(f, &transient)
}

// admit has the budget admit the order of slot now (Slots.Admit), waiting
// in the step when that takes at most MaxEarly: until a slot a little
// ahead, or until its ring position is free again after an order of a late
// predecessor. A longer wait is left to the state machine: a slot far
// ahead is retried, a busy position gets the execution a new slot.
func (h *attempt) admit(ctx context.Context, slot flow.OrderSlot) (budget.Admission, error) {
	for range 3 {
		a, wait, err := h.slots.Admit(ctx, slot)
		if err != nil {
			return budget.Admission{}, &failure.TransientError{Code: failure.CodeDependencyError, Message: "the order budget is unavailable", Err: err}
		}
		switch {
		case wait == 0:
			return a, nil
		case wait <= h.cfg.MaxEarly:
			if err := sleep(ctx, wait); err != nil {
				return budget.Admission{}, err
			}
		case h.cfg.Now().Before(slot.At):
			return budget.Admission{}, &failure.TransientError{Message: fmt.Sprintf("order slot %d is at %s, %s from now", slot.Seq, slot.At.Format(time.RFC3339), wait.Round(time.Second))}
		default:
			return budget.Admission{}, &failure.NeedsOrderSlotError{Message: fmt.Sprintf("the ring position of order slot %d is busy for %s", slot.Seq, wait.Round(time.Second))}
		}
	}
	return budget.Admission{}, &failure.TransientError{Message: fmt.Sprintf("order slot %d not admitted after three waits", slot.Seq)}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// complete walks o from state to an issued certificate: solve the
// challenges, make and seal the key and CSR (stored with the order before
// the CA sees the CSR), finalise, fetch. An order the CA invalidates on the
// way is dropped, so the next attempt places a new one.
func (h *attempt) complete(ctx context.Context, in flow.Input, o *certstore.Order, state acme.OrderState) (*acme.Certificate, error) {
	ao := acmeOrder(*o)
	var err error
	for range maxPhases {
		switch state.Status {
		case acme.StatusPending:
			if err := h.ca.Authorize(ctx, ao, h.method(in)); err != nil {
				return nil, h.dropIfInvalid(ctx, *o, err)
			}
			state, err = h.ca.State(ctx, ao)
		case acme.StatusReady:
			if len(o.CSR) == 0 {
				if err := h.makeKey(ctx, in, o); err != nil {
					return nil, err
				}
			}
			state, err = h.ca.Finalize(ctx, ao, o.CSR)
		case acme.StatusProcessing, acme.StatusValid:
			cert, err := h.ca.Fetch(ctx, ao)
			if err != nil {
				return nil, h.dropIfInvalid(ctx, *o, err)
			}
			if err := matchesCSR(cert, o.CSR); err != nil {
				return nil, err
			}
			return cert, nil
		case acme.StatusInvalid:
			if err := h.cfg.Store.DropOrder(ctx, o.Domain); err != nil {
				return nil, err
			}
			return nil, invalidOrder(*o, state)
		default:
			return nil, &failure.TransientError{Code: failure.CodeCAError, Message: fmt.Sprintf("order %s has status %q", o.URL, state.Status)}
		}
		if errors.Is(err, acme.ErrOrderGone) {
			return nil, h.dropIfInvalid(ctx, *o, err)
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, &failure.TransientError{Code: failure.CodeCAError, Message: fmt.Sprintf("order %s did not complete in %d phases (status %s)", o.URL, maxPhases, state.Status)}
}

// dropIfInvalid drops the stored order when err means the CA will not
// complete it (a judged challenge makes the order invalid; a gone order is
// gone) and returns err; a transient error leaves it to be resumed.
func (h *attempt) dropIfInvalid(ctx context.Context, o certstore.Order, err error) error {
	var transient *failure.TransientError
	if errors.As(err, &transient) && !errors.Is(err, acme.ErrOrderGone) {
		return err
	}
	if derr := h.cfg.Store.DropOrder(ctx, o.Domain); derr != nil {
		return errors.Join(err, derr)
	}
	if errors.Is(err, acme.ErrOrderGone) {
		return &failure.TransientError{Code: failure.CodeCAError, Message: fmt.Sprintf("order %s is gone at the CA; the next attempt places a new one", o.URL), Err: err}
	}
	return err
}

// makeKey makes the order's private key and CSR, seals the key and stores
// both with the order, fenced by the execution, before any finalize: a
// finalised order always has its key stored. The plaintext key is zeroed.
func (h *attempt) makeKey(ctx context.Context, in flow.Input, o *certstore.Order) error {
	keyPEM, csr, err := h.ca.NewKeyAndCSR(o.Names)
	if err != nil {
		return fmt.Errorf("key and CSR for %q: %w", o.Domain, err)
	}
	sealed, err := h.cfg.Sealer.Seal(ctx, keyPEM, envelope.CertificateKeyContext(o.Domain))
	clear(keyPEM)
	if err != nil {
		return fmt.Errorf("seal key of %q: %w", o.Domain, err)
	}
	next := *o
	next.Execution = in.Execution
	next.CSR, next.Key, next.KeyType = csr, certstore.SealedKey(sealed), keyType(csr)
	if err := h.cfg.Store.PutOrder(ctx, next); err != nil {
		return err
	}
	*o = next
	return nil
}

// keyType names the key of csr as certificate items record it.
func keyType(csrDER []byte) string {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return ""
	}
	switch csr.PublicKeyAlgorithm {
	case x509.ECDSA:
		return acme.KeyTypeEC256
	case x509.RSA:
		return acme.KeyTypeRSA2048
	}
	return strings.ToLower(csr.PublicKeyAlgorithm.String())
}

// matchesCSR checks that cert is for the key of csrDER: the certificate
// stored with the sealed key must be the one that key serves.
func matchesCSR(cert *acme.Certificate, csrDER []byte) error {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return fmt.Errorf("stored CSR: %w", err)
	}
	type equaler interface{ Equal(x crypto.PublicKey) bool }
	pub, ok := csr.PublicKey.(equaler)
	if !ok || cert.Leaf == nil || !pub.Equal(cert.Leaf.PublicKey) {
		return &failure.TransientError{Code: failure.CodeCAError, Message: fmt.Sprintf("certificate %s is not for the order's key", cert.Serial)}
	}
	return nil
}

// acmeOrder is the acme package's view of a stored order.
func acmeOrder(o certstore.Order) acme.Order {
	return acme.Order{URL: o.URL, Names: o.Names, Replaces: o.Replaces, Profile: o.Profile, Account: o.Account}
}
