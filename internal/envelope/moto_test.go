package envelope

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"

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

// Sealed converts to the store's SealedKey and back.
var _ = Sealed(certstore.SealedKey(Sealed{}))
