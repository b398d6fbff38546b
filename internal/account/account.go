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
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/go-acme/lego/v4/registration"

	"github.com/certflow/certflow/internal/envelope"
)

// Item attribute names, exactly as docs/ARCHITECTURE.md lists them.
const (
	attrPK            = "pk"
	attrSK            = "sk"
	attrDirectoryURL  = "directoryURL"
	attrEmail         = "email"
	attrKeyWrapped    = "keyWrapped"
	attrKeyCiphertext = "keyCiphertext"
	attrRegistration  = "registration"
	attrCreatedAt     = "createdAt"

	skAccount  = "ACCOUNT"
	timeLayout = "2006-01-02T15:04:05Z"
)

// Errors of the Store, returned wrapped.
var (
	// ErrNotFound means no account is stored for the directory.
	ErrNotFound = errors.New("account: not found")
	// ErrExists means an account is already stored for the directory.
	ErrExists = errors.New("account: already exists")
)

// Account is the ACME account certflow uses with one CA directory. It
// implements lego's registration.User. Key lives only in memory; the table
// holds it sealed.
type Account struct {
	DirectoryURL string
	Email        string
	Key          crypto.Signer
	Registration *registration.Resource
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

// PartitionKey returns the partition key of the account item of a
// directory: ACCOUNT# and the first 32 hex digits of its SHA-256.
func PartitionKey(directoryURL string) string {
	sum := sha256.Sum256([]byte(directoryURL))
	return "ACCOUNT#" + hex.EncodeToString(sum[:])[:32]
}

func itemKey(directoryURL string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrPK: &types.AttributeValueMemberS{Value: PartitionKey(directoryURL)},
		attrSK: &types.AttributeValueMemberS{Value: skAccount},
	}
}

// Load returns the account stored for directoryURL with its key opened, or
// ErrNotFound.
func (s *Store) Load(ctx context.Context, directoryURL string) (*Account, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            itemKey(directoryURL),
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
	str := func(name string) string {
		if v, ok := item[name].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	bin := func(name string) []byte {
		if v, ok := item[name].(*types.AttributeValueMemberB); ok {
			return v.Value
		}
		return nil
	}
	a := &Account{DirectoryURL: str(attrDirectoryURL), Email: str(attrEmail)}
	if reg := str(attrRegistration); reg != "" {
		a.Registration = new(registration.Resource)
		if err := json.Unmarshal([]byte(reg), a.Registration); err != nil {
			return nil, fmt.Errorf("read registration: %w", err)
		}
	}
	der, err := s.sealer.Open(ctx, envelope.Sealed{Wrapped: bin(attrKeyWrapped), Ciphertext: bin(attrKeyCiphertext)},
		envelope.AccountKeyContext(a.DirectoryURL))
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
	if a.Key == nil || a.DirectoryURL == "" {
		return fmt.Errorf("save ACME account for %s: directory URL and key are required", a.DirectoryURL)
	}
	der, err := x509.MarshalPKCS8PrivateKey(a.Key)
	if err != nil {
		return fmt.Errorf("save ACME account for %s: marshal key: %w", a.DirectoryURL, err)
	}
	sealed, err := s.sealer.Seal(ctx, der, envelope.AccountKeyContext(a.DirectoryURL))
	clear(der)
	if err != nil {
		return fmt.Errorf("save ACME account for %s: %w", a.DirectoryURL, err)
	}
	item := itemKey(a.DirectoryURL)
	item[attrDirectoryURL] = &types.AttributeValueMemberS{Value: a.DirectoryURL}
	if a.Email != "" {
		item[attrEmail] = &types.AttributeValueMemberS{Value: a.Email}
	}
	item[attrKeyWrapped] = &types.AttributeValueMemberB{Value: sealed.Wrapped}
	item[attrKeyCiphertext] = &types.AttributeValueMemberB{Value: sealed.Ciphertext}
	if a.Registration != nil {
		reg, err := json.Marshal(a.Registration)
		if err != nil {
			return fmt.Errorf("save ACME account for %s: marshal registration: %w", a.DirectoryURL, err)
		}
		item[attrRegistration] = &types.AttributeValueMemberS{Value: string(reg)}
	}
	item[attrCreatedAt] = &types.AttributeValueMemberS{Value: s.now().UTC().Format(timeLayout)}
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": attrPK},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("save ACME account for %s: %w", a.DirectoryURL, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("save ACME account for %s: %w", a.DirectoryURL, err)
	}
	return nil
}

// LoadOrCreate returns the account stored for directoryURL. When there is
// none, it generates an ECDSA P-256 account key, calls register to register
// it with the CA (register sets a.Registration), and saves the account. If
// another caller saved an account first, the stored one is returned and the
// one just registered is abandoned.
func (s *Store) LoadOrCreate(ctx context.Context, directoryURL, email string, register func(context.Context, *Account) error) (*Account, error) {
	a, err := s.Load(ctx, directoryURL)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return a, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
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
