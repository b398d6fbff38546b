package acme

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	legoacme "github.com/go-acme/lego/v4/acme"

	"github.com/certflow/certflow/internal/failure"
)

// ErrOrderGone means an order can no longer be followed: the CA does not
// know it (404, or forgotten in a restart), it expired, or it belongs to
// an account the CA no longer accepts (the client has moved to a new
// one). The caller places a new order.
var ErrOrderGone = errors.New("acme: order gone")

// Order is what must survive between steps to resume an order: the caller
// persists it after Place and hands it to State, Authorize, Finalize and
// Fetch, in this invocation or any later one.
type Order struct {
	// URL is the order's URL (the Location of newOrder).
	URL string `json:"url"`
	// Names are the order's identifiers, lower case, sorted.
	Names []string `json:"names"`
	// Replaces is the ARI certificate ID sent as "replaces" (RFC 9773),
	// "" if none.
	Replaces string `json:"replaces,omitempty"`
	// Profile is the profile of the order: as the CA reports it, else as
	// asked, "" for the CA's default.
	Profile string `json:"profile,omitempty"`
	// Account is the URL (JWS kid) of the account the order belongs to.
	Account string `json:"account"`
}

// Order statuses (RFC 8555 section 7.1.6).
const (
	StatusPending    = legoacme.StatusPending
	StatusReady      = legoacme.StatusReady
	StatusProcessing = legoacme.StatusProcessing
	StatusValid      = legoacme.StatusValid
	StatusInvalid    = legoacme.StatusInvalid
)

// OrderState is the order as the CA reports it now.
type OrderState struct {
	// Status is StatusPending, StatusReady, StatusProcessing, StatusValid
	// or StatusInvalid.
	Status         string
	Authorizations []string
	Finalize       string
	// Certificate is the URL of the certificate once valid.
	Certificate string
	Expires     time.Time
	// Problem is the order's error when invalid, classified (Classify).
	Problem error
}

// Place places a new order (newOrder, RFC 8555 section 7.4) for names,
// with the ARI certificate ID of the certificate it replaces (replaces,
// sent only to a CA that advertises renewalInfo; "" for none) and an ACME
// profile ("" means Config.Profile). The CA refusing replaces (already
// replaced, unknown or foreign certificate) is a
// *failure.ReplacesRefusedError: the order is never placed again without
// it here, because that would be a second order under the caller's
// budget.
func (c *Client) Place(ctx context.Context, names []string, replaces, profile string) (Order, error) {
	ids, err := normalizeNames(names)
	if err != nil {
		return Order{}, err
	}
	if err := c.enough(ctx, "place order"); err != nil {
		return Order{}, err
	}
	if profile == "" {
		profile = c.cfg.Profile
	}
	if c.poster.dir.RenewalInfo == "" {
		replaces = ""
	}
	req := legoacme.Order{Profile: profile, Replaces: replaces}
	for _, n := range ids {
		req.Identifiers = append(req.Identifiers, legoacme.Identifier{Type: "dns", Value: n})
	}
	var o Order
	err = c.withAccount(ctx, func(id *identity) error {
		r, err := c.poster.postJSON(ctx, id.signer(), c.poster.dir.NewOrderURL, req)
		if err != nil {
			return err
		}
		var lo legoacme.Order
		if err := r.decode(&lo); err != nil {
			return err
		}
		url := r.header.Get("Location")
		if url == "" || r.status != http.StatusCreated {
			return &answerError{Status: r.status, Method: r.method, URL: r.url, Err: errors.New("no order created (201 with a Location)")}
		}
		if got := identifierValues(lo.Identifiers); !slices.Equal(got, ids) {
			return &answerError{Status: r.status, Method: r.method, URL: r.url, Err: fmt.Errorf("order %s is for %v, not %v", url, got, ids)}
		}
		o = Order{URL: url, Names: ids, Replaces: replaces, Profile: profile, Account: id.uri()}
		if lo.Profile != "" {
			o.Profile = lo.Profile
		}
		return nil
	})
	if err != nil {
		if replaces != "" && replacesRefused(err) {
			return Order{}, &failure.ReplacesRefusedError{Message: refusal(err), Err: err}
		}
		return Order{}, fmt.Errorf("place order for %s: %w", strings.Join(ids, ", "), Classify(err, c.now()))
	}
	return o, nil
}

// refusal is the CA's word on a refused replaces.
func refusal(err error) string {
	var p *legoacme.ProblemDetails
	if errors.As(err, &p) {
		return problemMessage(p)
	}
	return err.Error()
}

// normalizeNames returns names lower case, sorted, without duplicates.
func normalizeNames(names []string) ([]string, error) {
	ids := make([]string, 0, len(names))
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if n == "" {
			return nil, &failure.InvalidInputError{Message: "empty name in order"}
		}
		ids = append(ids, n)
	}
	if len(ids) == 0 {
		return nil, &failure.InvalidInputError{Message: "order without names"}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

func identifierValues(ids []legoacme.Identifier) []string {
	v := make([]string, 0, len(ids))
	for _, id := range ids {
		v = append(v, strings.ToLower(id.Value))
	}
	slices.Sort(v)
	return slices.Compact(v)
}

// State returns the order as the CA reports it now. An invalid order is
// a state, with its Problem, not an error.
func (c *Client) State(ctx context.Context, o Order) (OrderState, error) {
	id, err := c.orderIdentity(o)
	if err != nil {
		return OrderState{}, err
	}
	st, _, err := c.getOrder(ctx, id, o)
	return st, err
}

// orderIdentity returns the identity to sign requests about o with, or
// ErrOrderGone when o belongs to another account than the client's.
func (c *Client) orderIdentity(o Order) (*identity, error) {
	id := c.identity()
	if o.Account != id.uri() {
		return nil, fmt.Errorf("order %s belongs to account %s, not the client's %s: %w", o.URL, o.Account, id.uri(), ErrOrderGone)
	}
	return id, nil
}

// getOrder fetches o (POST-as-GET): its state and the Retry-After of the
// answer.
func (c *Client) getOrder(ctx context.Context, id *identity, o Order) (OrderState, string, error) {
	r, err := c.poster.postAsGet(ctx, id.signer(), o.URL, "")
	if err != nil {
		return OrderState{}, "", c.orderFailed(ctx, id, o, err)
	}
	var lo legoacme.Order
	if err := r.decode(&lo); err != nil {
		return OrderState{}, "", fmt.Errorf("order %s: %w", o.URL, Classify(err, c.now()))
	}
	st := OrderState{
		Status:         lo.Status,
		Authorizations: lo.Authorizations,
		Finalize:       lo.Finalize,
		Certificate:    lo.Certificate,
	}
	if lo.Expires != "" {
		st.Expires, _ = time.Parse(time.RFC3339, lo.Expires)
	}
	expired := !st.Expires.IsZero() && c.now().After(st.Expires)
	switch {
	case lo.Error != nil:
		st.Problem = Classify(fmt.Errorf("order %s: %w", o.URL, lo.Error), c.now())
	case st.Status == StatusInvalid, expired && st.Status != StatusValid:
		// Invalid without a word (an authorization expired or was
		// deactivated), or expired: nothing left to do with it.
		return st, "", fmt.Errorf("order %s is %s, expires %s: %w", o.URL, st.Status, lo.Expires, ErrOrderGone)
	}
	return st, r.retryAfter(), nil
}

// orderFailed returns the error of a request about o: ErrOrderGone when
// the CA does not know the order or its account (which heals), else the
// classified error.
func (c *Client) orderFailed(ctx context.Context, id *identity, o Order, err error) error {
	if accountGone(err) {
		if _, herr := c.heal(ctx, id); herr != nil {
			return fmt.Errorf("order %s: replace the account the CA no longer accepts (%v): %w", o.URL, err, herr)
		}
		return fmt.Errorf("order %s: its account is gone (%v): %w", o.URL, err, ErrOrderGone)
	}
	if orderUnknown(err) {
		return fmt.Errorf("order %s: %v: %w", o.URL, err, ErrOrderGone)
	}
	return fmt.Errorf("order %s: %w", o.URL, Classify(err, c.now()))
}

// orderUnknown reports whether err is the CA saying it has no such order
// (any 404; Boulder answers malformed, Pebble nothing) or that it expired.
func orderUnknown(err error) bool {
	var ae *answerError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return true
	}
	var p *legoacme.ProblemDetails
	if !errors.As(err, &p) {
		return false
	}
	return p.HTTPStatus == http.StatusNotFound ||
		strings.TrimPrefix(p.Type, problemPrefix) == "malformed" && strings.Contains(strings.ToLower(p.Detail), "expired")
}

// Finalize submits the CSR (DER) of a ready order (RFC 8555 section
// 7.4) and waits while the CA processes it, polling as it asks: the state
// returned is valid, with the certificate's URL. An order finalized
// already (the answer was lost) is not finalized again, only waited for.
// An order that ends invalid returns its state and its Problem.
func (c *Client) Finalize(ctx context.Context, o Order, csrDER []byte) (OrderState, error) {
	if err := c.enough(ctx, "finalize"); err != nil {
		return OrderState{}, err
	}
	id, err := c.orderIdentity(o)
	if err != nil {
		return OrderState{}, err
	}
	st, ra, err := c.getOrder(ctx, id, o)
	if err != nil {
		return st, err
	}
	if st.Status == StatusReady {
		msg := map[string]string{"csr": base64.RawURLEncoding.EncodeToString(csrDER)}
		r, err := c.poster.postJSON(ctx, id.signer(), st.Finalize, msg)
		switch {
		case isProblem(err, "orderNotReady"):
			// Finalized meanwhile by an attempt whose answer was lost.
			if st, ra, err = c.getOrder(ctx, id, o); err != nil {
				return st, err
			}
		case err != nil:
			return st, c.orderFailed(ctx, id, o, err)
		default:
			var lo legoacme.Order
			if err := r.decode(&lo); err != nil {
				return st, fmt.Errorf("finalize order %s: %w", o.URL, Classify(err, c.now()))
			}
			st.Status, st.Certificate, ra = lo.Status, lo.Certificate, r.retryAfter()
			if lo.Error != nil {
				st.Problem = Classify(fmt.Errorf("order %s: %w", o.URL, lo.Error), c.now())
			}
		}
	}
	if st.Status == StatusProcessing {
		if st, err = c.waitOrder(ctx, id, o, ra); err != nil {
			return st, err
		}
	}
	switch st.Status {
	case StatusValid:
		return st, nil
	case StatusInvalid:
		if st.Problem == nil {
			st.Problem = fmt.Errorf("order %s is invalid: %w", o.URL, ErrOrderGone)
		}
		return st, fmt.Errorf("finalize: %w", st.Problem)
	}
	return st, fmt.Errorf("finalize order %s: it is %s, not ready (authorize it first)", o.URL, st.Status)
}

// waitOrder polls o while the CA processes it.
func (c *Client) waitOrder(ctx context.Context, id *identity, o Order, ra string) (OrderState, error) {
	var st OrderState
	err := c.poll.until(ctx, "issuance of order "+o.URL, ra, func(ctx context.Context) (bool, string, error) {
		var err error
		st, ra, err = c.getOrder(ctx, id, o)
		return err != nil || st.Status != StatusProcessing, ra, err
	})
	return st, err
}

// isProblem reports whether err holds an ACME problem of type typ.
func isProblem(err error, typ string) bool {
	var p *legoacme.ProblemDetails
	return errors.As(err, &p) && p.Type == problemPrefix+typ
}
