// Package certclienttest provides a certificate authority for tests of
// certclient and of what is built on it: it signs leaf certificates and
// encodes them as the delivery endpoint's GET /sni/{name} answer.
package certclienttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// CA signs leaf certificates. Every leaf has the same key: generating keys
// is the slow part of signing 100,000 of them.
type CA struct {
	// Cert is the CA's certificate; Pool holds it, to verify chains.
	Cert *x509.Certificate
	Pool *x509.CertPool
	// LeafKeyPEM is the private key of every leaf ("EC PRIVATE KEY").
	LeafKeyPEM []byte

	key     *ecdsa.PrivateKey
	leafKey *ecdsa.PrivateKey
}

// NewCA returns a CA valid from a day ago for ten years.
func NewCA(tb testing.TB) *CA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "certclienttest CA"},
		NotBefore:             time.Now().Add(-24 * time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{
		Cert: cert, Pool: pool, key: key, leafKey: leafKey,
		LeafKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
}

// Issue returns the DER of a leaf for name valid from notBefore to
// notAfter. It is safe for concurrent use.
func (ca *CA) Issue(tb testing.TB, name string, serial int64, notBefore, notAfter time.Time) []byte {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &ca.leafKey.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// ChainPEM returns the chain of a leaf, leaf first, as PEM.
func (ca *CA) ChainPEM(der []byte) []byte {
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})...)
}

// Body returns the delivery endpoint's 200 answer for a leaf of this CA:
// JSON with the chain, the key, the leaf's NotAfter and its serial.
func (ca *CA) Body(der []byte) []byte {
	leaf, _ := x509.ParseCertificate(der)
	b, _ := json.Marshal(struct {
		Certificate string `json:"certificate"`
		PrivateKey  string `json:"privateKey"`
		NotAfter    string `json:"notAfter"`
		Serial      string `json:"serial"`
	}{string(ca.ChainPEM(der)), string(ca.LeafKeyPEM), leaf.NotAfter.UTC().Format(time.RFC3339), leaf.SerialNumber.Text(16)})
	return b
}
