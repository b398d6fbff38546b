package acme

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	legoacme "github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/certificate"

	"github.com/certflow/certflow/internal/failure"
)

// Certificate is an issued certificate. Its key stays with the caller,
// who made it (NewKeyAndCSR).
type Certificate struct {
	CertPEM   []byte // leaf, then the chain
	NotBefore time.Time
	NotAfter  time.Time
	Serial    string // lower-case hex of the serial's bytes (SerialHex)
	Issuer    string // common name of the issuing CA
	ARICertID string // RFC 9773 certificate ID, for renewal information and replaces
	Leaf      *x509.Certificate
}

// Fetch downloads the certificate chain of o once it is valid, waiting
// while the CA processes it. The leaf must be for exactly o's names.
func (c *Client) Fetch(ctx context.Context, o Order) (*Certificate, error) {
	if err := c.enough(ctx, "fetch certificate"); err != nil {
		return nil, err
	}
	id, err := c.orderIdentity(o)
	if err != nil {
		return nil, err
	}
	st, ra, err := c.getOrder(ctx, id, o)
	if err != nil {
		return nil, err
	}
	if st.Status == StatusProcessing {
		if st, err = c.waitOrder(ctx, id, o, ra); err != nil {
			return nil, err
		}
	}
	switch st.Status {
	case StatusValid:
	case StatusInvalid:
		return nil, fmt.Errorf("fetch certificate: %w", st.Problem)
	default:
		return nil, fmt.Errorf("fetch certificate of order %s: it is %s, not valid (finalize it first)", o.URL, st.Status)
	}
	r, err := c.poster.postAsGet(ctx, id.signer(), st.Certificate, pemChainType)
	if err != nil {
		return nil, c.orderFailed(ctx, id, o, err)
	}
	cert, err := parseChain(r.body)
	if err != nil {
		return nil, fmt.Errorf("fetch certificate of order %s: %w", o.URL, Classify(&answerError{Status: r.status, Method: r.method, URL: r.url, Err: err}, c.now()))
	}
	if got := slices.Sorted(slices.Values(cert.Leaf.DNSNames)); !slices.Equal(got, o.Names) {
		return nil, fmt.Errorf("fetch certificate of order %s: it is for %v, not %v", o.URL, got, o.Names)
	}
	return cert, nil
}

// NewKeyAndCSR generates a certificate key of the configured type and a
// CSR (DER) for names, every one a SAN and the first the common name
// when it fits (64 characters). keyPEM is the only copy of the key: the
// caller seals it, keeps it sealed with the order, and zeroes it.
func (c *Client) NewKeyAndCSR(names []string) (keyPEM, csrDER []byte, err error) {
	return newKeyAndCSR(c.cfg.KeyType, names)
}

func newKeyAndCSR(kt certcrypto.KeyType, names []string) (keyPEM, csrDER []byte, err error) {
	if len(names) == 0 {
		return nil, nil, errors.New("new key and CSR: no names")
	}
	key, err := certcrypto.GeneratePrivateKey(kt)
	if err != nil {
		return nil, nil, fmt.Errorf("new %s key: %w", KeyTypeName(kt), err)
	}
	cn := names[0]
	if len(cn) > 64 {
		cn = ""
	}
	csr, err := certcrypto.CreateCSR(key, certcrypto.CSROptions{Domain: cn, SAN: names})
	if err != nil {
		return nil, nil, fmt.Errorf("CSR for %s: %w", strings.Join(names, ", "), err)
	}
	return certcrypto.PEMEncode(key), csr, nil
}

// parseChain reads a PEM chain, leaf first.
func parseChain(chainPEM []byte) (*Certificate, error) {
	certs, err := certcrypto.ParsePEMBundle(chainPEM)
	if err != nil {
		return nil, fmt.Errorf("parse certificate chain: %w", err)
	}
	leaf := certs[0]
	id, err := certificate.MakeARICertID(leaf)
	if err != nil {
		return nil, fmt.Errorf("ARI certificate ID: %w", err)
	}
	return &Certificate{
		CertPEM:   chainPEM,
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
// reason code, signed by the client's account (RFC 8555 section 7.6).
func (c *Client) Revoke(ctx context.Context, certPEM []byte, reason uint) error {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return &failure.InvalidInputError{Message: "revoke: no PEM certificate"}
	}
	msg := legoacme.RevokeCertMessage{Certificate: base64.RawURLEncoding.EncodeToString(block.Bytes), Reason: &reason}
	err := c.withAccount(ctx, func(id *identity) error {
		_, err := c.poster.postJSON(ctx, id.signer(), c.poster.dir.RevokeCertURL, msg)
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke certificate: %w", Classify(err, c.now()))
	}
	return nil
}
