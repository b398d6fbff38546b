package http01

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/fixtures"
)

// fakeTable is an in-memory stand-in for the certflow table.
type fakeTable struct {
	mu         sync.Mutex
	items      map[string]map[string]types.AttributeValue
	consistent []bool
	err        error
}

func newFakeTable() *fakeTable {
	return &fakeTable{items: map[string]map[string]types.AttributeValue{}}
}

func keyOf(item map[string]types.AttributeValue) string {
	return item["pk"].(*types.AttributeValueMemberS).Value + "|" + item["sk"].(*types.AttributeValueMemberS).Value
}

func (f *fakeTable) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.items[keyOf(in.Item)] = in.Item
	return &dynamodb.PutItemOutput{}, nil
}

func (f *fakeTable) DeleteItem(_ context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	delete(f.items, keyOf(in.Key))
	return &dynamodb.DeleteItemOutput{}, nil
}

func (f *fakeTable) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.consistent = append(f.consistent, aws.ToBool(in.ConsistentRead))
	return &dynamodb.GetItemOutput{Item: f.items[keyOf(in.Key)]}, nil
}

var testNow = time.Date(2026, 11, 21, 16, 5, 12, 0, time.UTC)

const (
	fixtureToken = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
	fixtureAuth  = fixtureToken + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
)

func request(method, path string) events.APIGatewayV2HTTPRequest {
	var req events.APIGatewayV2HTTPRequest
	req.RawPath = path
	req.RequestContext.HTTP.Method = method
	req.RequestContext.HTTP.Path = path
	return req
}

func TestProviderPresentCleanUp(t *testing.T) {
	db := newFakeTable()
	p := NewProvider(db, "certflow")
	p.now = func() time.Time { return testNow }

	if err := p.Present("blog.customer.example", fixtureToken, fixtureAuth); err != nil {
		t.Fatalf("Present: %v", err)
	}
	item := db.items["CHALLENGE#"+fixtureToken+"|HTTP01"]
	if item == nil {
		t.Fatalf("Present stored no item; items: %v", db.items)
	}
	wantS := map[string]string{"domain": "blog.customer.example", "keyAuth": fixtureAuth}
	for name, want := range wantS {
		if got := item[name].(*types.AttributeValueMemberS).Value; got != want {
			t.Errorf("item[%s] = %q, want %q", name, got, want)
		}
	}
	wantExp := strconv.FormatInt(testNow.Add(time.Hour).Unix(), 10)
	if got := item["expiresAt"].(*types.AttributeValueMemberN).Value; got != wantExp {
		t.Errorf("item[expiresAt] = %s, want %s", got, wantExp)
	}

	if err := p.CleanUp("blog.customer.example", fixtureToken, fixtureAuth); err != nil {
		t.Fatalf("CleanUp: %v", err)
	}
	if len(db.items) != 0 {
		t.Errorf("CleanUp left items: %v", db.items)
	}
	if err := p.CleanUp("blog.customer.example", fixtureToken, fixtureAuth); err != nil {
		t.Errorf("CleanUp of a missing item: %v", err)
	}
}

func TestProviderErrors(t *testing.T) {
	db := newFakeTable()
	p := NewProvider(db, "certflow")
	if err := p.Present("blog.customer.example", "../etc/passwd", "x"); err == nil {
		t.Error("Present with an invalid token succeeded")
	}
	db.err = errors.New("throttled")
	if err := p.Present("blog.customer.example", fixtureToken, fixtureAuth); !errors.Is(err, db.err) {
		t.Errorf("Present = %v, want the DynamoDB error wrapped", err)
	}
	if err := p.CleanUp("blog.customer.example", fixtureToken, fixtureAuth); !errors.Is(err, db.err) {
		t.Errorf("CleanUp = %v, want the DynamoDB error wrapped", err)
	}
}

func TestResponder(t *testing.T) {
	db := newFakeTable()
	p := NewProvider(db, "certflow")
	p.now = func() time.Time { return testNow }
	if err := p.Present("blog.customer.example", fixtureToken, fixtureAuth); err != nil {
		t.Fatal(err)
	}
	const expiredToken = "expiredTOKEN_-123"
	p.now = func() time.Time { return testNow.Add(-2 * time.Hour) }
	if err := p.Present("old.customer.example", expiredToken, expiredToken+".x"); err != nil {
		t.Fatal(err)
	}
	r := NewResponder(db, "certflow")
	r.now = func() time.Time { return testNow }

	long := make([]byte, 129)
	for i := range long {
		long[i] = 'a'
	}
	tests := []struct {
		name     string
		req      events.APIGatewayV2HTTPRequest
		wantCode int
		wantBody string
	}{
		{"get", request("GET", PathPrefix+fixtureToken), 200, fixtureAuth},
		{"head", request("HEAD", PathPrefix+fixtureToken), 200, ""},
		{"post", request("POST", PathPrefix+fixtureToken), 404, "not found\n"},
		{"unknown token", request("GET", PathPrefix+"unknownToken"), 404, "not found\n"},
		{"expired", request("GET", PathPrefix+expiredToken), 404, "not found\n"},
		{"other path", request("GET", "/sni/blog.customer.example"), 404, "not found\n"},
		{"bare prefix", request("GET", PathPrefix), 404, "not found\n"},
		{"dot token", request("GET", PathPrefix+"a.b"), 404, "not found\n"},
		{"traversal", request("GET", PathPrefix+"../x"), 404, "not found\n"},
		{"nested", request("GET", PathPrefix+fixtureToken+"/x"), 404, "not found\n"},
		{"too long", request("GET", PathPrefix+string(long)), 404, "not found\n"},
		{"root", request("GET", "/"), 404, "not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := r.Handle(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if resp.StatusCode != tt.wantCode || resp.Body != tt.wantBody {
				t.Errorf("Handle(%s %s) = %d %q, want %d %q", tt.req.RequestContext.HTTP.Method, tt.req.RawPath, resp.StatusCode, resp.Body, tt.wantCode, tt.wantBody)
			}
			if tt.wantCode == 200 && resp.Headers["Content-Type"] != "text/plain" {
				t.Errorf("Content-Type = %q, want text/plain", resp.Headers["Content-Type"])
			}
		})
	}
	for i, c := range db.consistent {
		if !c {
			t.Errorf("GetItem call %d was not strongly consistent", i)
		}
	}
}

func TestResponderReadError(t *testing.T) {
	db := newFakeTable()
	db.err = errors.New("unavailable")
	r := NewResponder(db, "certflow")
	if _, err := r.Handle(context.Background(), request("GET", PathPrefix+fixtureToken)); !errors.Is(err, db.err) {
		t.Errorf("Handle = %v, want the DynamoDB error wrapped", err)
	}
}

// TestResponderFixture feeds events/challenge.json (the event sam local
// invoke uses) through the Responder.
func TestResponderFixture(t *testing.T) {
	req := fixtures.Event[events.APIGatewayV2HTTPRequest](t, "challenge.json")
	db := newFakeTable()
	p := NewProvider(db, "certflow")
	if err := p.Present("blog.customer.example", fixtureToken, fixtureAuth); err != nil {
		t.Fatal(err)
	}
	resp, err := NewResponder(db, "certflow").Handle(context.Background(), req)
	if err != nil {
		t.Fatalf("Handle(fixture): %v", err)
	}
	if resp.StatusCode != 200 || resp.Body != fixtureAuth {
		t.Errorf("Handle(fixture) = %d %q, want 200 %q", resp.StatusCode, resp.Body, fixtureAuth)
	}
}
