package account

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/registration"

	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/table"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/offlinetest"
)

var (
	testDB     *dynamodb.Client
	testTable  string
	testSealer *envelope.Sealer
)

func TestMain(m *testing.M) {
	os.Exit(offlinetest.Main(m, offline.Options{DynamoDB: true, Moto: true}, func(env *offline.Stack) {
		testDB = dynamodb.NewFromConfig(env.AWS)
		testTable = env.Tables.Certificates
		testSealer = envelope.New(kms.NewFromConfig(env.AWS), env.KMSKeyID)
	}))
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestStore(t *testing.T) *Store {
	t.Helper()
	if testDB == nil {
		offlinetest.Require(t)
	}
	return New(testDB, testTable, testSealer, func() time.Time { return t0 })
}

func TestPartitionKey(t *testing.T) {
	got := table.AccountPK("https://acme-v02.api.letsencrypt.org/directory")
	if !strings.HasPrefix(got, "ACCOUNT#") || len(got) != len("ACCOUNT#")+32 {
		t.Errorf("table.AccountPK() = %q, want ACCOUNT# and 32 hex digits", got)
	}
	if table.AccountPK("https://a/dir") == table.AccountPK("https://b/dir") {
		t.Error("table.AccountPK() is the same for two directories")
	}
}

func fakeRegister(calls *atomic.Int32) func(context.Context, *Account) error {
	return func(_ context.Context, a *Account) error {
		n := calls.Add(1)
		a.Registration = &registration.Resource{
			URI:  fmt.Sprintf("https://ca.example/acct/%d", n),
			Body: acme.Account{Status: "valid", Contact: []string{"mailto:" + a.Email}},
		}
		return nil
	}
}

func TestLoadOrCreate(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const dir = "https://127.0.0.1:14000/dir"

	if _, err := s.Load(ctx, dir); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load(missing) error = %v, want ErrNotFound", err)
	}
	var calls atomic.Int32
	a, err := s.LoadOrCreate(ctx, dir, "ops@example.com", fakeRegister(&calls))
	if err != nil {
		t.Fatalf("LoadOrCreate() error = %v", err)
	}
	if _, ok := a.Key.(*ecdsa.PrivateKey); !ok {
		t.Errorf("account key is %T, want *ecdsa.PrivateKey", a.Key)
	}
	b, err := s.LoadOrCreate(ctx, dir, "ops@example.com", fakeRegister(&calls))
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("register called %d times, want 1", calls.Load())
	}
	if !a.Key.(*ecdsa.PrivateKey).Equal(b.Key) || b.Registration.URI != a.Registration.URI || b.GetEmail() != "ops@example.com" {
		t.Errorf("loaded account %+v differs from created %+v", b, a)
	}

	if err := s.Save(ctx, a); !errors.Is(err, ErrExists) {
		t.Errorf("Save(existing) error = %v, want ErrExists", err)
	}

	out, err := testDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(testTable), Key: table.AccountKey(dir)})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{table.AttrDirectoryURL, table.AttrEmail, table.AttrKeyWrapped, table.AttrKeyCiphertext, table.AttrRegistration, table.AttrCreatedAt} {
		if _, ok := out.Item[name]; !ok {
			t.Errorf("account item lacks %s", name)
		}
	}
	for name, av := range out.Item {
		var raw string
		switch v := av.(type) {
		case *types.AttributeValueMemberS:
			raw = v.Value
		case *types.AttributeValueMemberB:
			raw = string(v.Value)
		}
		if strings.Contains(raw, "PRIVATE KEY") {
			t.Errorf("attribute %s holds a plaintext key", name)
		}
	}

	// The sealed key is bound to its directory: under another directory's
	// key it does not open.
	other := "https://other.example/dir"
	moved := out.Item
	moved[table.AttrPK] = table.AccountKey(other)[table.AttrPK]
	moved[table.AttrDirectoryURL] = &types.AttributeValueMemberS{Value: other}
	if _, err := testDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(testTable), Item: moved}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, other); !errors.Is(err, envelope.ErrOpen) {
		t.Errorf("Load(moved item) error = %v, want envelope.ErrOpen", err)
	}
}

func TestLoadOrCreateRace(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const dir = "https://race.example/dir"
	var (
		calls atomic.Int32
		wg    sync.WaitGroup
		keys  = make([]*ecdsa.PrivateKey, 4)
	)
	for i := range keys {
		wg.Go(func() {
			a, err := s.LoadOrCreate(ctx, dir, "", fakeRegister(&calls))
			if err != nil {
				t.Errorf("LoadOrCreate() error = %v", err)
				return
			}
			keys[i] = a.Key.(*ecdsa.PrivateKey)
		})
	}
	wg.Wait()
	for i, k := range keys {
		if k == nil || !k.Equal(keys[0]) {
			t.Errorf("racer %d got a different account key than racer 0", i)
		}
	}
}

func TestReplace(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const dir = "https://replace.example/dir"
	var calls atomic.Int32
	old, err := s.LoadOrCreate(ctx, dir, "ops@example.com", fakeRegister(&calls))
	if err != nil {
		t.Fatal(err)
	}
	newAccount := func(t *testing.T, uri string) *Account {
		t.Helper()
		key, err := NewKey()
		if err != nil {
			t.Fatal(err)
		}
		return &Account{DirectoryURL: dir, Email: "ops@example.com", Key: key, Registration: &registration.Resource{URI: uri}}
	}

	// Two cold starts find old dead and replace it at once: one wins, the
	// other is told to load the winner's.
	first, second := newAccount(t, "https://ca.example/acct/first"), newAccount(t, "https://ca.example/acct/second")
	if err := s.Replace(ctx, old, first); err != nil {
		t.Fatalf("Replace(old, first) error = %v", err)
	}
	if err := s.Replace(ctx, old, second); !errors.Is(err, ErrChanged) {
		t.Fatalf("Replace(old, second) after first error = %v, want ErrChanged", err)
	}
	got, err := s.Load(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Registration.URI != first.Registration.URI || !got.Key.(*ecdsa.PrivateKey).Equal(first.Key) {
		t.Errorf("stored account = %s, want the first replacement %s with its key", got.Registration.URI, first.Registration.URI)
	}

	// The winner, as loaded or as just stored, can be replaced in turn.
	third := newAccount(t, "https://ca.example/acct/third")
	if err := s.Replace(ctx, got, third); err != nil {
		t.Fatalf("Replace(loaded first, third) error = %v", err)
	}
	if err := s.Replace(ctx, third, newAccount(t, "https://ca.example/acct/fourth")); err != nil {
		t.Fatalf("Replace(third as stored, fourth) error = %v", err)
	}

	tests := []struct {
		name      string
		old, next *Account
	}{
		{"old not from the store", newAccount(t, "https://ca.example/acct/x"), newAccount(t, "https://ca.example/acct/y")},
		{"other directory", got, &Account{DirectoryURL: "https://other.example/dir", Key: third.Key, Registration: third.Registration}},
		{"no registration", got, &Account{DirectoryURL: dir, Key: third.Key}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Replace(ctx, tt.old, tt.next); err == nil || errors.Is(err, ErrChanged) {
				t.Errorf("Replace() error = %v, want a refusal other than ErrChanged", err)
			}
		})
	}
}
