// Package http01 solves ACME HTTP-01 challenges through the certflow table:
// a lego challenge.Provider stores each key authorization as a challenge item
// and the Responder serves it to the CA from the challenge function behind
// API Gateway.
package http01

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/go-acme/lego/v4/challenge"

	"github.com/certflow/certflow/internal/table"
)

// ChallengeTTL is how long a challenge item lives. DynamoDB's TTL deletes it
// eventually; the Responder stops serving it at once.
const ChallengeTTL = time.Hour

// requestTimeout bounds each DynamoDB call made from lego's callbacks, which
// carry no context.
const requestTimeout = 10 * time.Second

// maxTokenLength bounds the tokens accepted. ACME tokens carry at least 128
// bits of entropy (22 base64url characters); CAs use 43.
const maxTokenLength = 128

var tokenPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// ValidToken reports whether token is a plausible ACME token: base64url
// characters only and at most 128 of them.
func ValidToken(token string) bool {
	return len(token) <= maxTokenLength && tokenPattern.MatchString(token)
}

// ChallengeWriter is the part of the DynamoDB API the Provider uses.
type ChallengeWriter interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// Provider is a lego challenge.Provider that stores HTTP-01 key
// authorizations in the certflow table, where the challenge function serves
// them. It is safe for concurrent use.
type Provider struct {
	db    ChallengeWriter
	table string
	now   func() time.Time
}

var _ challenge.Provider = (*Provider)(nil)

// NewProvider returns a Provider writing challenge items to table.
func NewProvider(db ChallengeWriter, table string) *Provider {
	return &Provider{db: db, table: table, now: time.Now}
}

// Present stores the key authorization for token so that the Responder
// serves it for the next hour.
func (p *Provider) Present(domain, token, keyAuth string) error {
	if !ValidToken(token) {
		return fmt.Errorf("present HTTP-01 challenge for %q: invalid token %q", domain, token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	expiresAt := p.now().Add(ChallengeTTL).Unix()
	_, err := p.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(p.table),
		Item:      challengeItem(token, domain, keyAuth, expiresAt),
	})
	if err != nil {
		return fmt.Errorf("present HTTP-01 challenge for %q: %w", domain, err)
	}
	return nil
}

// CleanUp deletes the challenge item of token. Deleting an item that does not
// exist is not an error.
func (p *Provider) CleanUp(domain, token, keyAuth string) error {
	if !ValidToken(token) {
		return nil // Present stored nothing for it.
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	_, err := p.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(p.table),
		Key:       table.ChallengeKey(token),
	})
	if err != nil {
		return fmt.Errorf("clean up HTTP-01 challenge for %q: %w", domain, err)
	}
	return nil
}

// challengeItem is the challenge item of token, expiring at expiresAt
// (epoch seconds).
func challengeItem(token, domain, keyAuth string, expiresAt int64) map[string]types.AttributeValue {
	item := table.ChallengeKey(token)
	item[table.AttrDomain] = table.S(domain)
	item[table.AttrKeyAuth] = table.S(keyAuth)
	item[table.AttrExpiresAt] = table.N(expiresAt)
	return item
}
