package envelope

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/offlinetest"
)

// startMoto starts the offline stack's moto_server for the test and returns
// a KMS client pointing at it and the stack's KMS key.
func startMoto(t *testing.T) (*kms.Client, string) {
	t.Helper()
	stack := offlinetest.Start(t, offline.Options{Moto: true})
	return kms.NewFromConfig(stack.AWS), stack.KMSKeyID
}

func TestSealerWithMotoKMS(t *testing.T) {
	client, keyID := startMoto(t)
	ctx := context.Background()
	s := New(client, keyID)
	secret := []byte("account key bytes")
	encCtx := AccountKeyContext("https://127.0.0.1:14000/dir")

	sealed, err := s.Seal(ctx, secret, encCtx)
	if err != nil {
		t.Fatalf("Seal() error = %v", err)
	}
	got, err := s.Open(ctx, sealed, encCtx)
	if err != nil {
		t.Fatalf("Open() error = %v", err)
	}
	if !bytes.Equal(got, secret) {
		t.Errorf("Open() = %q, want %q", got, secret)
	}

	if _, err := s.Open(ctx, sealed, AccountKeyContext("https://other.example/dir")); !errors.Is(err, ErrOpen) {
		t.Errorf("Open(wrong context) error = %v, want ErrOpen", err)
	}
	// KMS itself must refuse the wrapped key under another context, not
	// only the GCM layer.
	_, err = client.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob:    sealed.Wrapped,
		EncryptionContext: CertificateKeyContext("a.example"),
	})
	if err == nil {
		t.Error("KMS Decrypt(wrong context) error = nil, want InvalidCiphertextException")
	}
}

// TestContextBindingWithMotoKMS: a sealed key opens only under the
// encryption context it was sealed with. KMS itself refuses the wrapped
// data key under any other purpose or name (the key policy grants each
// function a purpose; this is what makes the purpose binding), and the
// GCM layer refuses the ciphertext as well.
func TestContextBindingWithMotoKMS(t *testing.T) {
	client, keyID := startMoto(t)
	ctx := context.Background()
	s := New(client, keyID)
	const dir = "https://127.0.0.1:14000/dir"
	certKey, err := s.Seal(ctx, []byte("certificate key of a.example"), CertificateKeyContext("a.example"))
	if err != nil {
		t.Fatal(err)
	}
	accountKey, err := s.Seal(ctx, []byte("account key"), AccountKeyContext(dir))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		sealed Sealed
		open   map[string]string
		ok     bool
	}{
		{"certificate key, its context", certKey, CertificateKeyContext("a.example"), true},
		{"certificate key, another domain", certKey, CertificateKeyContext("b.example"), false},
		{"certificate key as the account key's purpose", certKey, map[string]string{ContextPurpose: PurposeAccountKey, "domain": "a.example"}, false},
		{"certificate key without its purpose", certKey, map[string]string{"domain": "a.example"}, false},
		{"certificate key, an extra pair", certKey, map[string]string{ContextPurpose: PurposeCertificateKey, "domain": "a.example", "x": "y"}, false},
		{"account key, its context", accountKey, AccountKeyContext(dir), true},
		{"account key as a certificate key", accountKey, map[string]string{ContextPurpose: PurposeCertificateKey, "directory": dir}, false},
		{"account key, another directory", accountKey, AccountKeyContext("https://other.example/dir"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, kmsErr := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: tt.sealed.Wrapped, EncryptionContext: tt.open})
			_, openErr := s.Open(ctx, tt.sealed, tt.open)
			if tt.ok {
				if kmsErr != nil || openErr != nil {
					t.Fatalf("Decrypt error = %v, Open error = %v; want both to succeed", kmsErr, openErr)
				}
				return
			}
			var invalid *types.InvalidCiphertextException
			if !errors.As(kmsErr, &invalid) {
				t.Errorf("KMS Decrypt error = %v, want InvalidCiphertextException", kmsErr)
			}
			if !errors.Is(openErr, ErrOpen) {
				t.Errorf("Open error = %v, want ErrOpen", openErr)
			}
		})
	}
}

// Sealed converts to the store's SealedKey and back.
var _ = Sealed(certstore.SealedKey(Sealed{}))
