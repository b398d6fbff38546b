// Package issuer obtains, renews and revokes certificates with an ACME CA
// through lego, and classifies the CA's failures into the failure types the
// issuance state machine decides on.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	legoacme "github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"
	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/registration"

	"github.com/certflow/certflow/internal/account"
	"github.com/certflow/certflow/internal/failure"
)

const userAgent = "certflow"

// orderTimeout bounds the wait for the CA to issue after finalization; lego
// polls the order every orderTimeout/60.
const orderTimeout = 30 * time.Second

// Accounts loads the ACME account of a directory, registering it through
// register the first time. Implementations must be safe for concurrent use;
// internal/account provides one.
type Accounts interface {
	LoadOrCreate(ctx context.Context, directoryURL, email string, register func(ctx context.Context, a *account.Account) error) (*account.Account, error)
}

// Request names the certificate to obtain.
type Request struct {
	// Domain is the primary name (also the CSR's common name when short
	// enough). Names are expected normalised (lower case, A-labels).
	Domain string
	// SANs are the other names of the certificate.
	SANs []string
	// ReplacesCertID is the ARI certificate ID of the certificate this one
	// replaces (RFC 9773), empty for a first issuance.
	ReplacesCertID string
}

// Certificate is an issued certificate. KeyPEM is the only copy of the
// private key: the caller seals it and then zeroes it.
type Certificate struct {
	CertPEM   []byte // leaf, then the chain
	KeyPEM    []byte
	NotBefore time.Time
	NotAfter  time.Time
	Serial    string // lower-case hex of the serial's bytes
	Issuer    string // common name of the issuing CA
	ARICertID string
	Leaf      *x509.Certificate
	// Replaced is the ARI certificate ID the order declared it replaces:
	// Request.ReplacesCertID, or empty when the CA refused it and the order
	// was placed again without.
	Replaced string
}

// Client talks to one ACME directory with one account. It is built once per
// cold start and is safe for concurrent use. It uses lego's ACME core,
// certifier and challenge types, with its own resolver (solve.go) that
// validates the names of an order in parallel and polls early. lego does not
// take contexts: Obtain and Revoke check ctx before starting and are bounded
// by the HTTP timeout of each request.
type Client struct {
	cfg       Config
	core      *api.Core
	certifier *certificate.Certifier
	account   *account.Account
	now       func() time.Time
}

// New loads (or registers) the account of cfg.DirectoryURL and builds the
// ACME client.
func New(ctx context.Context, cfg Config, accounts Accounts) (*Client, error) {
	if cfg.DirectoryURL == "" {
		cfg.DirectoryURL = DirectoryProduction
	}
	if cfg.KeyType == "" {
		cfg.KeyType = certcrypto.EC256
	}
	if cfg.HTTPTimeout <= 0 {
		cfg.HTTPTimeout = DefaultHTTPTimeout
	}
	if cfg.HTTP01 == nil {
		return nil, errors.New("issuer config: no HTTP-01 provider")
	}
	transport, err := newTransport(cfg)
	if err != nil {
		return nil, err
	}
	newCore := func(key any, kid string) (*api.Core, error) {
		client := &http.Client{Timeout: cfg.HTTPTimeout, Transport: transport}
		core, err := api.New(client, userAgent, cfg.DirectoryURL, kid, key)
		if err != nil {
			return nil, fmt.Errorf("ACME directory %s: %w", cfg.DirectoryURL, err)
		}
		return core, nil
	}

	// A newly registered account keeps the client that registered it (its
	// key ID is set), saving a second directory fetch.
	var (
		core       *api.Core
		registered *account.Account
	)
	acct, err := accounts.LoadOrCreate(ctx, cfg.DirectoryURL, cfg.Email, func(ctx context.Context, a *account.Account) error {
		c, err := newCore(a.Key, "")
		if err != nil {
			return err
		}
		reg, err := register(c, a, cfg.EAB)
		if err != nil {
			return err
		}
		a.Registration = reg
		core, registered = c, a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ACME account for %s: %w", cfg.DirectoryURL, Classify(err, time.Now()))
	}
	if acct.Registration == nil || acct.Registration.URI == "" {
		return nil, fmt.Errorf("ACME account for %s has no registration URI", cfg.DirectoryURL)
	}
	if registered != acct {
		// Another cold start stored its account first; use that one.
		core = nil
	}
	if core == nil {
		if core, err = newCore(acct.Key, acct.Registration.URI); err != nil {
			return nil, Classify(err, time.Now())
		}
	}

	certifier := certificate.NewCertifier(core, newSolver(core, cfg), certificate.CertifierOptions{
		KeyType: cfg.KeyType,
		Timeout: orderTimeout,
	})
	return &Client{cfg: cfg, core: core, certifier: certifier, account: acct, now: time.Now}, nil
}

// register creates the account at the CA, with external account binding
// when configured. The CA's terms of service are agreed to.
func register(core *api.Core, a *account.Account, eab *EAB) (*registration.Resource, error) {
	r := registration.NewRegistrar(core, a)
	if eab != nil {
		return r.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{
			TermsOfServiceAgreed: true,
			Kid:                  eab.KID,
			HmacEncoded:          eab.HMAC,
		})
	}
	return r.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
}

// NewHTTPClient returns an HTTP client for the CA of cfg: system roots plus
// cfg.CARoots, and cfg.HTTPTimeout per request. Other clients of the CA (the
// ARI client) use it.
func NewHTTPClient(cfg Config) (*http.Client, error) {
	if cfg.HTTPTimeout <= 0 {
		cfg.HTTPTimeout = DefaultHTTPTimeout
	}
	t, err := newTransport(cfg)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: cfg.HTTPTimeout, Transport: t}, nil
}

func newTransport(cfg Config) (*http.Transport, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if cfg.CARoots != "" {
		pemBytes, err := os.ReadFile(cfg.CARoots)
		if err != nil {
			return nil, fmt.Errorf("read ACME CA roots: %w", err)
		}
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("read ACME CA roots %s: no PEM certificate found", cfg.CARoots)
		}
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: cfg.HTTPTimeout,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}, nil
}

// Obtain orders a certificate for req's names: HTTP-01 for ordinary names,
// DNS-01 for wildcard names. When the CA refuses the replaces field of a
// renewal (already replaced, unknown certificate), the order is placed once
// more without it. Failures come back as the types of package failure.
func (i *Client) Obtain(ctx context.Context, req Request) (*Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	domains := append([]string{req.Domain}, req.SANs...)
	for _, d := range domains {
		if d == "" {
			return nil, &failure.InvalidInputError{Message: "empty name in certificate request"}
		}
		if strings.HasPrefix(d, "*.") && i.cfg.DNS01 == nil {
			return nil, &failure.InvalidInputError{Message: fmt.Sprintf("%s: wildcard names need DNS-01, which is not configured", d)}
		}
	}
	or := certificate.ObtainRequest{
		Domains:        domains,
		Bundle:         true,
		Profile:        i.cfg.Profile,
		ReplacesCertID: req.ReplacesCertID,
	}
	res, err := i.certifier.Obtain(or)
	if err != nil && or.ReplacesCertID != "" && replacesRefused(err, i.core.GetDirectory().NewOrderURL) {
		or.ReplacesCertID = ""
		res, err = i.certifier.Obtain(or)
	}
	if err != nil {
		return nil, fmt.Errorf("obtain certificate for %s: %w", strings.Join(domains, ", "), Classify(err, i.now()))
	}
	cert, err := parseResource(res)
	if err != nil {
		clear(res.PrivateKey)
		return nil, fmt.Errorf("obtain certificate for %s: %w", strings.Join(domains, ", "), err)
	}
	cert.Replaced = or.ReplacesCertID
	return cert, nil
}

// replacesRefused reports whether err is the CA refusing the replaces field
// of a new order (posted to newOrderURL) rather than the order itself.
func replacesRefused(err error, newOrderURL string) bool {
	var ar *legoacme.AlreadyReplacedError
	if errors.As(err, &ar) {
		return true
	}
	var p *legoacme.ProblemDetails
	if !errors.As(err, &p) {
		return false
	}
	if p.URL != "" && p.URL != newOrderURL {
		return false
	}
	if p.Type == legoacme.AlreadyReplacedErr {
		return true
	}
	// CAs word it differently: Boulder answers malformed or conflict about
	// the replaces field, Pebble serverInternal "could not find an order for
	// the given certificate".
	switch strings.TrimPrefix(p.Type, problemPrefix) {
	case "malformed", "conflict", "serverInternal":
	default:
		return false
	}
	d := strings.ToLower(p.Detail)
	for _, s := range []string{"replace", "certid", "certificate"} {
		if strings.Contains(d, s) {
			return true
		}
	}
	return false
}

func parseResource(res *certificate.Resource) (*Certificate, error) {
	certs, err := certcrypto.ParsePEMBundle(res.Certificate)
	if err != nil {
		return nil, fmt.Errorf("parse issued certificate: %w", err)
	}
	leaf := certs[0]
	id, err := certificate.MakeARICertID(leaf)
	if err != nil {
		return nil, fmt.Errorf("ARI certificate ID: %w", err)
	}
	return &Certificate{
		CertPEM:   res.Certificate,
		KeyPEM:    res.PrivateKey,
		NotBefore: leaf.NotBefore.UTC(),
		NotAfter:  leaf.NotAfter.UTC(),
		Serial:    SerialHex(leaf),
		Issuer:    leaf.Issuer.CommonName,
		ARICertID: id,
		Leaf:      leaf,
	}, nil
}

// SerialHex returns the serial number of cert as lower-case hex of its
// bytes, the form stored on certificate items.
func SerialHex(cert *x509.Certificate) string {
	return hex.EncodeToString(cert.SerialNumber.Bytes())
}

// Revoke revokes the certificate (PEM, leaf first) with the given RFC 5280
// reason code.
func (i *Client) Revoke(ctx context.Context, certPEM []byte, reason uint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := i.certifier.RevokeWithReason(certPEM, &reason); err != nil {
		return fmt.Errorf("revoke certificate: %w", Classify(err, i.now()))
	}
	return nil
}
