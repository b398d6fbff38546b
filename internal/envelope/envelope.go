// Package envelope seals secrets with envelope encryption: every secret gets
// a fresh AES-256 data key from KMS, the secret is encrypted with AES-256-GCM
// under that key, and only the KMS-wrapped data key is kept next to the
// ciphertext. An encryption context binds each secret to its purpose both in
// KMS (so a key policy can restrict who may decrypt what) and in the GCM
// additional data (so a sealed secret moved to another item fails to open).
package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

const (
	dataKeySize = 32 // AES-256
	nonceSize   = 12 // the GCM standard nonce size
)

// KMS is the part of the KMS API a Sealer uses. *kms.Client implements it.
type KMS interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// Sealed is a sealed secret: the KMS-wrapped data key and the AES-256-GCM
// ciphertext with the nonce first. It has the same fields as
// certstore.SealedKey, so either converts to the other.
type Sealed struct {
	Wrapped    []byte
	Ciphertext []byte
}

// ErrOpen is returned when a sealed secret cannot be opened: the wrapped key
// or the ciphertext was altered, or the encryption context differs from the
// one it was sealed with.
var ErrOpen = errors.New("envelope: cannot open sealed secret")

// Sealer seals and opens secrets with data keys of one KMS key. It is safe
// for concurrent use.
type Sealer struct {
	client KMS
	keyID  string
}

// New returns a Sealer that generates data keys under keyID (a key ID, ARN or
// alias) and decrypts them with the same key.
func New(client KMS, keyID string) *Sealer {
	return &Sealer{client: client, keyID: keyID}
}

// The purposes of sealed secrets: the "purpose" of their encryption
// context, on which template.yaml's key policy and role policies grant
// each function what it needs (kms:EncryptionContext:purpose).
const (
	ContextPurpose = "purpose"
	// PurposeCertificateKey: a certificate's private key. The Issue
	// function seals it, only the delivery function decrypts it.
	PurposeCertificateKey = "certificate-key"
	// PurposeAccountKey: the ACME account key. The Issue function seals
	// and decrypts it, the API function decrypts it to revoke.
	PurposeAccountKey = "acme-account-key"
)

// CertificateKeyContext is the encryption context of a certificate's private
// key. Only the delivery function may decrypt with it.
func CertificateKeyContext(domain string) map[string]string {
	return map[string]string{ContextPurpose: PurposeCertificateKey, "domain": domain}
}

// AccountKeyContext is the encryption context of the ACME account key for a
// directory.
func AccountKeyContext(directoryURL string) map[string]string {
	return map[string]string{ContextPurpose: PurposeAccountKey, "directory": directoryURL}
}

// Seal encrypts plaintext under a fresh data key bound to encCtx, which must
// not be empty. The plaintext data key is wiped before Seal returns.
func (s *Sealer) Seal(ctx context.Context, plaintext []byte, encCtx map[string]string) (Sealed, error) {
	if len(encCtx) == 0 {
		return Sealed{}, errors.New("seal: encryption context is required")
	}
	out, err := s.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(s.keyID),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: encCtx,
	})
	if err != nil {
		return Sealed{}, fmt.Errorf("seal: generate data key: %w", err)
	}
	defer clear(out.Plaintext)
	if len(out.Plaintext) != dataKeySize || len(out.CiphertextBlob) == 0 {
		return Sealed{}, fmt.Errorf("seal: KMS returned a %d-byte data key, want %d", len(out.Plaintext), dataKeySize)
	}
	aead, err := newGCM(out.Plaintext)
	if err != nil {
		return Sealed{}, fmt.Errorf("seal: %w", err)
	}
	nonce := make([]byte, nonceSize, nonceSize+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, fmt.Errorf("seal: nonce: %w", err)
	}
	ciphertext := aead.Seal(nonce, nonce, plaintext, AdditionalData(encCtx))
	return Sealed{Wrapped: append([]byte(nil), out.CiphertextBlob...), Ciphertext: ciphertext}, nil
}

// Open decrypts a secret sealed by Seal with the same encryption context.
// Every failure to authenticate the secret wraps ErrOpen. The caller owns the
// returned plaintext and should clear it when done.
func (s *Sealer) Open(ctx context.Context, sealed Sealed, encCtx map[string]string) ([]byte, error) {
	if len(encCtx) == 0 {
		return nil, errors.New("open: encryption context is required")
	}
	if len(sealed.Wrapped) == 0 || len(sealed.Ciphertext) < nonceSize {
		return nil, fmt.Errorf("open: malformed sealed secret: %w", ErrOpen)
	}
	out, err := s.client.Decrypt(ctx, &kms.DecryptInput{
		KeyId:             aws.String(s.keyID),
		CiphertextBlob:    sealed.Wrapped,
		EncryptionContext: encCtx,
	})
	if err != nil {
		var invalid *types.InvalidCiphertextException
		if errors.As(err, &invalid) {
			return nil, fmt.Errorf("open: decrypt data key: %w: %w", ErrOpen, err)
		}
		return nil, fmt.Errorf("open: decrypt data key: %w", err)
	}
	defer clear(out.Plaintext)
	if len(out.Plaintext) != dataKeySize {
		return nil, fmt.Errorf("open: KMS returned a %d-byte data key, want %d", len(out.Plaintext), dataKeySize)
	}
	aead, err := newGCM(out.Plaintext)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	nonce, ciphertext := sealed.Ciphertext[:nonceSize], sealed.Ciphertext[nonceSize:]
	plaintext, err := aead.Open(nil, nonce, ciphertext, AdditionalData(encCtx))
	if err != nil {
		return nil, fmt.Errorf("open: %w", ErrOpen)
	}
	return plaintext, nil
}

// AdditionalData is the canonical encoding of an encryption context used as
// the GCM additional data: the pairs sorted by key, each key=value with both
// sides URL query-escaped, joined by "&". Escaping keeps the encoding
// unambiguous whatever the keys and values contain.
func AdditionalData(encCtx map[string]string) []byte {
	v := make(url.Values, len(encCtx))
	for k, val := range encCtx {
		v.Set(k, val)
	}
	return []byte(v.Encode())
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
