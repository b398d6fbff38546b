// Package account keeps the ACME account of each CA directory in the
// certflow table: the registration and the account key, sealed with
// envelope encryption under the account-key encryption context.
package account

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/go-acme/lego/v4/registration"

	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/table"
)

// Errors of the Store, returned wrapped.
var (
	// ErrNotFound means no account is stored for the directory.
	ErrNotFound = errors.New("account: not found")
	// ErrExists means an account is already stored for the directory.
	ErrExists = errors.New("account: already exists")
	// ErrChanged means the stored account is no longer the one Replace was
	// asked to replace: another caller replaced it first.
	ErrChanged = errors.New("account: changed since it was loaded")
)

// Account is the ACME account certflow uses with one CA directory. It
// implements lego's registration.User. Key lives only in memory; the table
// holds it sealed.
type Account struct {
	DirectoryURL string
	Email        string
	Key          crypto.Signer
	Registration *registration.Resource

	// stored is the registration attribute as read or written by the
	// Store: what Replace conditions on.
	stored string
}

var _ registration.User = (*Account)(nil)

// GetEmail implements registration.User.
func (a *Account) GetEmail() string { return a.Email }

// GetRegistration implements registration.User.
func (a *Account) GetRegistration() *registration.Resource { return a.Registration }

// GetPrivateKey implements registration.User.
func (a *Account) GetPrivateKey() crypto.PrivateKey { return a.Key }

// DynamoDB is the part of the DynamoDB API the Store uses.
type DynamoDB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// Sealer seals and opens the account key. *envelope.Sealer implements it.
type Sealer interface {
	Seal(ctx context.Context, plaintext []byte, encCtx map[string]string) (envelope.Sealed, error)
	Open(ctx context.Context, sealed envelope.Sealed, encCtx map[string]string) ([]byte, error)
}

// Store reads and writes account items. It is safe for concurrent use.
type Store struct {
	client DynamoDB
	table  string
	sealer Sealer
	now    func() time.Time
}

// New returns a Store over table that seals account keys with sealer. now
// stamps createdAt; nil means time.Now.
func New(client DynamoDB, table string, sealer Sealer, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{client: client, table: table, sealer: sealer, now: now}
}

// Load returns the account stored for directoryURL with its key opened, or
// ErrNotFound.
func (s *Store) Load(ctx context.Context, directoryURL string) (*Account, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            table.AccountKey(directoryURL),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("load ACME account for %s: %w", directoryURL, err)
	}
	if out.Item == nil {
		return nil, fmt.Errorf("load ACME account for %s: %w", directoryURL, ErrNotFound)
	}
	a, err := s.fromItem(ctx, out.Item)
	if err != nil {
		return nil, fmt.Errorf("load ACME account for %s: %w", directoryURL, err)
	}
	if a.DirectoryURL != directoryURL {
		return nil, fmt.Errorf("load ACME account for %s: item belongs to %s", directoryURL, a.DirectoryURL)
	}
	return a, nil
}

func (s *Store) fromItem(ctx context.Context, item map[string]types.AttributeValue) (*Account, error) {
	r := table.NewReader(item)
	a := &Account{DirectoryURL: r.S(table.AttrDirectoryURL), Email: r.S(table.AttrEmail)}
	reg := r.S(table.AttrRegistration)
	sealed := envelope.Sealed{Wrapped: r.B(table.AttrKeyWrapped), Ciphertext: r.B(table.AttrKeyCiphertext)}
	if err := r.Err(); err != nil {
		return nil, err
	}
	a.stored = reg
	if reg != "" {
		a.Registration = new(registration.Resource)
		if err := json.Unmarshal([]byte(reg), a.Registration); err != nil {
			return nil, fmt.Errorf("read registration: %w", err)
		}
	}
	der, err := s.sealer.Open(ctx, sealed, envelope.AccountKeyContext(a.DirectoryURL))
	if err != nil {
		return nil, fmt.Errorf("open account key: %w", err)
	}
	defer clear(der)
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("open account key: not a PKCS #8 private key")
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("open account key: %T is not a signer", key)
	}
	a.Key = signer
	return a, nil
}

// Save stores a new account. It never overwrites: when an account is
// already stored for the directory (another cold start won the race) it
// returns ErrExists and the caller should Load the stored one.
func (s *Store) Save(ctx context.Context, a *Account) error {
	item, reg, err := s.item(ctx, a)
	if err != nil {
		return fmt.Errorf("save ACME account for %s: %w", a.DirectoryURL, err)
	}
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": table.AttrPK},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("save ACME account for %s: %w", a.DirectoryURL, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("save ACME account for %s: %w", a.DirectoryURL, err)
	}
	a.stored = reg
	return nil
}

// Replace stores next in place of old, an account of the same directory
// that the CA no longer accepts (it forgot or deactivated it). The write
// is conditioned on the stored item still holding old's registration as
// old was loaded or saved: when another caller replaced it first, Replace
// returns ErrChanged and the caller should Load the stored account, so
// that concurrent cold starts converge on one account.
func (s *Store) Replace(ctx context.Context, old, next *Account) error {
	if old.DirectoryURL != next.DirectoryURL {
		return fmt.Errorf("replace ACME account for %s: the new account belongs to %s", old.DirectoryURL, next.DirectoryURL)
	}
	if old.stored == "" || next.Registration == nil {
		return fmt.Errorf("replace ACME account for %s: both accounts need a registration, the old one as stored", old.DirectoryURL)
	}
	item, reg, err := s.item(ctx, next)
	if err != nil {
		return fmt.Errorf("replace ACME account for %s: %w", next.DirectoryURL, err)
	}
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(s.table),
		Item:                      item,
		ConditionExpression:       aws.String("#reg = :old"),
		ExpressionAttributeNames:  map[string]string{"#reg": table.AttrRegistration},
		ExpressionAttributeValues: map[string]types.AttributeValue{":old": table.S(old.stored)},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("replace ACME account for %s: %w", next.DirectoryURL, ErrChanged)
	}
	if err != nil {
		return fmt.Errorf("replace ACME account for %s: %w", next.DirectoryURL, err)
	}
	next.stored = reg
	return nil
}

// item builds the table item of a, sealing its key; reg is the
// registration attribute.
func (s *Store) item(ctx context.Context, a *Account) (item map[string]types.AttributeValue, reg string, err error) {
	if a.Key == nil || a.DirectoryURL == "" {
		return nil, "", errors.New("directory URL and key are required")
	}
	if a.Registration != nil {
		b, err := json.Marshal(a.Registration)
		if err != nil {
			return nil, "", fmt.Errorf("marshal registration: %w", err)
		}
		reg = string(b)
	}
	der, err := x509.MarshalPKCS8PrivateKey(a.Key)
	if err != nil {
		return nil, "", fmt.Errorf("marshal key: %w", err)
	}
	sealed, err := s.sealer.Seal(ctx, der, envelope.AccountKeyContext(a.DirectoryURL))
	clear(der)
	if err != nil {
		return nil, "", err
	}
	item = table.AccountKey(a.DirectoryURL)
	item[table.AttrDirectoryURL] = table.S(a.DirectoryURL)
	if a.Email != "" {
		item[table.AttrEmail] = table.S(a.Email)
	}
	item[table.AttrKeyWrapped] = table.B(sealed.Wrapped)
	item[table.AttrKeyCiphertext] = table.B(sealed.Ciphertext)
	if reg != "" {
		item[table.AttrRegistration] = table.S(reg)
	}
	item[table.AttrCreatedAt] = table.T(s.now())
	return item, reg, nil
}

// NewKey generates an account key: ECDSA P-256.
func NewKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// LoadOrCreate returns the account stored for directoryURL. When there is
// none, it generates an account key (NewKey), calls register to register
// it with the CA (register sets a.Registration), and saves the account. If
// another caller saved an account first, the stored one is returned and the
// one just registered is abandoned.
func (s *Store) LoadOrCreate(ctx context.Context, directoryURL, email string, register func(context.Context, *Account) error) (*Account, error) {
	a, err := s.Load(ctx, directoryURL)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return a, err
	}
	key, err := NewKey()
	if err != nil {
		return nil, fmt.Errorf("create ACME account for %s: %w", directoryURL, err)
	}
	a = &Account{DirectoryURL: directoryURL, Email: email, Key: key}
	if err := register(ctx, a); err != nil {
		return nil, fmt.Errorf("create ACME account for %s: register: %w", directoryURL, err)
	}
	if err := s.Save(ctx, a); errors.Is(err, ErrExists) {
		return s.Load(ctx, directoryURL)
	} else if err != nil {
		return nil, err
	}
	return a, nil
}
