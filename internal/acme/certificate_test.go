package acme

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/go-acme/lego/v4/certcrypto"
)

func TestNewKeyAndCSR(t *testing.T) {
	long := strings.Repeat("a", 60) + ".example"
	tests := []struct {
		name    string
		keyType certcrypto.KeyType
		names   []string
		wantCN  string
		wantKey string
	}{
		{"ec256, first name is the CN", certcrypto.EC256, []string{"www.a.example", "a.example"}, "www.a.example", "*ecdsa.PublicKey"},
		{"rsa2048", certcrypto.RSA2048, []string{"a.example"}, "a.example", "*rsa.PublicKey"},
		{"a CN over 64 characters is left out", certcrypto.EC256, []string{long, "a.example"}, "", "*ecdsa.PublicKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{cfg: Config{KeyType: tt.keyType}.withDefaults()}
			keyPEM, der, err := c.NewKeyAndCSR(tt.names)
			if err != nil {
				t.Fatal(err)
			}
			csr, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := csr.CheckSignature(); err != nil {
				t.Errorf("CSR signature: %v", err)
			}
			if csr.Subject.CommonName != tt.wantCN || !slices.Equal(csr.DNSNames, tt.names) {
				t.Errorf("CSR = CN %q, SANs %v; want CN %q, SANs %v", csr.Subject.CommonName, csr.DNSNames, tt.wantCN, tt.names)
			}
			key, err := certcrypto.ParsePEMPrivateKey(keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			signer, ok := key.(crypto.Signer)
			if !ok {
				t.Fatalf("key is %T", key)
			}
			if got := fmt.Sprintf("%T", csr.PublicKey); got != tt.wantKey || !signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(csr.PublicKey) {
				t.Errorf("CSR key %s does not match the %s key returned", got, tt.wantKey)
			}
		})
	}
	if _, _, err := newKeyAndCSR(certcrypto.EC256, nil); err == nil {
		t.Error("NewKeyAndCSR(no names) succeeded")
	}
}
