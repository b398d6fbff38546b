package envelope

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"maps"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// fakeKMS wraps data keys by handing out opaque handles; Decrypt requires the
// same key ID and encryption context, as KMS does.
type fakeKMS struct {
	mu       sync.Mutex
	keys     map[string]fakeEntry
	returned [][]byte // plaintext buffers handed to the caller
}

type fakeEntry struct {
	keyID  string
	key    []byte
	encCtx map[string]string
}

func newFakeKMS() *fakeKMS { return &fakeKMS{keys: map[string]fakeEntry{}} }

func (f *fakeKMS) GenerateDataKey(_ context.Context, in *kms.GenerateDataKeyInput, _ ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	if in.KeySpec != types.DataKeySpecAes256 {
		return nil, errors.New("fake: want AES_256")
	}
	key := make([]byte, 32)
	handle := make([]byte, 16)
	rand.Read(key)
	rand.Read(handle)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[string(handle)] = fakeEntry{keyID: aws.ToString(in.KeyId), key: bytes.Clone(key), encCtx: maps.Clone(in.EncryptionContext)}
	f.returned = append(f.returned, key)
	return &kms.GenerateDataKeyOutput{Plaintext: key, CiphertextBlob: handle, KeyId: in.KeyId}, nil
}

func (f *fakeKMS) Decrypt(_ context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.keys[string(in.CiphertextBlob)]
	if !ok || e.keyID != aws.ToString(in.KeyId) || !maps.Equal(e.encCtx, in.EncryptionContext) {
		return nil, &types.InvalidCiphertextException{Message: aws.String("fake: invalid ciphertext")}
	}
	return &kms.DecryptOutput{Plaintext: bytes.Clone(e.key), KeyId: in.KeyId}, nil
}

func TestSealOpen(t *testing.T) {
	ctx := context.Background()
	secret := []byte("-----BEGIN EC PRIVATE KEY----- not really")
	tests := []struct {
		name    string
		sealCtx map[string]string
		openCtx map[string]string
		tamper  func(*Sealed)
		wantErr error
	}{
		{name: "round trip", sealCtx: CertificateKeyContext("a.example"), openCtx: CertificateKeyContext("a.example")},
		{name: "account context", sealCtx: AccountKeyContext("https://ca.example/dir"), openCtx: AccountKeyContext("https://ca.example/dir")},
		{name: "other domain", sealCtx: CertificateKeyContext("a.example"), openCtx: CertificateKeyContext("b.example"), wantErr: ErrOpen},
		{name: "other purpose", sealCtx: CertificateKeyContext("a.example"), openCtx: map[string]string{"purpose": "acme-account-key", "domain": "a.example"}, wantErr: ErrOpen},
		{name: "tampered ciphertext", sealCtx: CertificateKeyContext("a.example"), openCtx: CertificateKeyContext("a.example"),
			tamper: func(s *Sealed) { s.Ciphertext[len(s.Ciphertext)-1] ^= 1 }, wantErr: ErrOpen},
		{name: "tampered nonce", sealCtx: CertificateKeyContext("a.example"), openCtx: CertificateKeyContext("a.example"),
			tamper: func(s *Sealed) { s.Ciphertext[0] ^= 1 }, wantErr: ErrOpen},
		{name: "tampered wrapped key", sealCtx: CertificateKeyContext("a.example"), openCtx: CertificateKeyContext("a.example"),
			tamper: func(s *Sealed) { s.Wrapped[0] ^= 1 }, wantErr: ErrOpen},
		{name: "truncated", sealCtx: CertificateKeyContext("a.example"), openCtx: CertificateKeyContext("a.example"),
			tamper: func(s *Sealed) { s.Ciphertext = s.Ciphertext[:5] }, wantErr: ErrOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(newFakeKMS(), "key-1")
			sealed, err := s.Seal(ctx, secret, tt.sealCtx)
			if err != nil {
				t.Fatalf("Seal() error = %v", err)
			}
			if bytes.Contains(sealed.Ciphertext, secret) || bytes.Contains(sealed.Wrapped, secret) {
				t.Fatal("Seal() output contains the plaintext")
			}
			if tt.tamper != nil {
				tt.tamper(&sealed)
			}
			got, err := s.Open(ctx, sealed, tt.openCtx)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open() error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && !bytes.Equal(got, secret) {
				t.Errorf("Open() = %q, want %q", got, secret)
			}
		})
	}
}

func TestSealFreshDataKeyAndWipe(t *testing.T) {
	ctx := context.Background()
	fake := newFakeKMS()
	s := New(fake, "key-1")
	encCtx := CertificateKeyContext("a.example")
	a, err := s.Seal(ctx, []byte("same"), encCtx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Seal(ctx, []byte("same"), encCtx)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Wrapped, b.Wrapped) {
		t.Error("two Seal calls used the same wrapped data key")
	}
	if bytes.Equal(a.Ciphertext, b.Ciphertext) {
		t.Error("two Seal calls produced the same ciphertext")
	}
	if len(fake.keys) != 2 {
		t.Errorf("GenerateDataKey called %d times, want 2", len(fake.keys))
	}
	for i, buf := range fake.returned {
		if !bytes.Equal(buf, make([]byte, len(buf))) {
			t.Errorf("plaintext data key %d was not wiped after Seal", i)
		}
	}
}

func TestSealRequiresContext(t *testing.T) {
	s := New(newFakeKMS(), "key-1")
	if _, err := s.Seal(context.Background(), []byte("x"), nil); err == nil {
		t.Error("Seal(nil context) error = nil, want an error")
	}
	if _, err := s.Open(context.Background(), Sealed{Wrapped: []byte("x"), Ciphertext: make([]byte, 40)}, nil); err == nil {
		t.Error("Open(nil context) error = nil, want an error")
	}
}

func TestAdditionalData(t *testing.T) {
	tests := []struct {
		encCtx map[string]string
		want   string
	}{
		{CertificateKeyContext("a.example"), "domain=a.example&purpose=certificate-key"},
		{AccountKeyContext("https://ca.example/dir?x=1&y"), "directory=https%3A%2F%2Fca.example%2Fdir%3Fx%3D1%26y&purpose=acme-account-key"},
		{map[string]string{"a": "b&c=d"}, "a=b%26c%3Dd"},
		{map[string]string{"a": "b", "c": "d"}, "a=b&c=d"},
	}
	for _, tt := range tests {
		if got := string(AdditionalData(tt.encCtx)); got != tt.want {
			t.Errorf("AdditionalData(%v) = %q, want %q", tt.encCtx, got, tt.want)
		}
	}
}
