package http01

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/table"
)

// PathPrefix is the path under which the CA fetches HTTP-01 resources.
const PathPrefix = "/.well-known/acme-challenge/"

// ChallengeReader is the part of the DynamoDB API the Responder uses.
type ChallengeReader interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
}

// Responder answers the CA's HTTP-01 requests from the challenge items the
// Provider stored. It is safe for concurrent use.
type Responder struct {
	db    ChallengeReader
	table string
	now   func() time.Time
}

// NewResponder returns a Responder reading challenge items from table.
func NewResponder(db ChallengeReader, table string) *Responder {
	return &Responder{db: db, table: table, now: time.Now}
}

// Handle answers GET and HEAD of /.well-known/acme-challenge/{token} with
// the stored key authorization as text/plain. Every other request, an
// unknown or malformed token and an expired item are answered 404. The item
// is read strongly consistently: the CA may ask right after Present wrote it.
// An error is returned only when DynamoDB cannot be read.
func (r *Responder) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	method := req.RequestContext.HTTP.Method
	if method != http.MethodGet && method != http.MethodHead {
		return notFound(), nil
	}
	path := req.RawPath
	if path == "" {
		path = req.RequestContext.HTTP.Path
	}
	token, ok := strings.CutPrefix(path, PathPrefix)
	if !ok || !ValidToken(token) {
		return notFound(), nil
	}
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(r.table),
		Key:            table.ChallengeKey(token),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, fmt.Errorf("read HTTP-01 challenge %q: %w", token, err)
	}
	keyAuth, ok := r.live(out.Item)
	if !ok {
		return notFound(), nil
	}
	resp := events.APIGatewayV2HTTPResponse{
		StatusCode: http.StatusOK,
		Headers: map[string]string{
			"Content-Type":  "text/plain",
			"Cache-Control": "no-store",
		},
	}
	if method == http.MethodGet {
		resp.Body = keyAuth
	}
	return resp, nil
}

// live returns the key authorization of item unless the item is missing,
// malformed or past its expiresAt (DynamoDB's TTL deletes items late).
func (r *Responder) live(item map[string]types.AttributeValue) (string, bool) {
	rd := table.NewReader(item)
	keyAuth, expiresAt := rd.S(table.AttrKeyAuth), rd.N(table.AttrExpiresAt)
	if rd.Err() != nil || keyAuth == "" || !rd.Has(table.AttrExpiresAt) || !r.now().Before(time.Unix(expiresAt, 0)) {
		return "", false
	}
	return keyAuth, true
}

func notFound() events.APIGatewayV2HTTPResponse {
	return events.APIGatewayV2HTTPResponse{
		StatusCode: http.StatusNotFound,
		Headers:    map[string]string{"Content-Type": "text/plain"},
		Body:       "not found\n",
	}
}
