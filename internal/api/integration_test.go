package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/certflow/certflow/internal/api"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/reconcile"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/offlinetest"
)

// TestBadInputLeavesDynamoDBUnchanged runs the bad-input corpus against the
// real certstore.Store on DynamoDB Local and compares full scans of the
// table before and after.
func TestBadInputLeavesDynamoDBUnchanged(t *testing.T) {
	env := offlinetest.Start(t, offline.Options{DynamoDB: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	table := env.Tables.Certificates
	client := dynamodb.NewFromConfig(env.AWS)
	store := certstore.New(client, table)
	starter := &fakeStarter{t: t}
	stopper := &fakeStopper{t: t}
	revoker := &fakeRevoker{t: t}
	h, err := api.New(api.Config{
		Requester: store, Getter: store, Lister: store, Retirer: store,
		Reconciler: &reconcile.Reconciler{Store: store, Starter: starter, Executions: &fakeExecutions{starter: starter}, StateMachineARN: stateMachineARN},
		Stopper:    stopper, StateMachineARN: stateMachineARN, Revoker: revoker,
		Names: domain.Policy{AllowTestingTLDs: true},
	})
	if err != nil {
		t.Fatal(err)
	}

	// Seed the table through the API itself.
	for _, body := range []string{
		`{"domain": "blog.customer.example", "sans": ["www.blog.customer.example"]}`,
		`{"domain": "shop.customer.example"}`,
		`{"domain": "B\u00fccher.example"}`,
	} {
		req := loadEvent(t, "api-post.json")
		req.Body = body
		resp, _ := h.Handle(ctx, req)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("seed %s: %d %s", body, resp.StatusCode, resp.Body)
		}
	}
	if resp, _ := h.Handle(ctx, loadEvent(t, "api-get-idn.json")); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET B%%C3%%BCcher.example = %d %s, want 200", resp.StatusCode, resp.Body)
	}
	list := loadEvent(t, "api-list.json")
	list.RawQueryString = "status=pending&limit=2"
	resp, _ := h.Handle(ctx, list)
	var page struct {
		Certificates []json.RawMessage `json:"certificates"`
		NextCursor   string            `json:"nextCursor"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &page); err != nil || len(page.Certificates) != 2 || page.NextCursor == "" {
		t.Fatalf("list pending = %d %s, want a page of 2 with a cursor", resp.StatusCode, resp.Body)
	}
	list.RawQueryString = "status=pending&limit=2&cursor=" + page.NextCursor
	if resp, _ := h.Handle(ctx, list); resp.StatusCode != http.StatusOK || !strings.Contains(resp.Body, "xn--bcher-kva.example") {
		t.Fatalf("second page = %d %s, want the last domain", resp.StatusCode, resp.Body)
	}
	// A real cursor of another status is refused by the store.
	list.RawQueryString = "status=active&cursor=" + page.NextCursor
	if resp, _ := h.Handle(ctx, list); resp.StatusCode != http.StatusBadRequest || !strings.Contains(resp.Body, api.CodeInvalidCursor) {
		t.Errorf("cursor of another status = %d %s, want 400 invalid_cursor", resp.StatusCode, resp.Body)
	}

	starter.readOnly, stopper.readOnly, revoker.readOnly = true, true, true
	before := scan(ctx, t, client, table)
	corpus := badInputs(t)
	checkBadInputs(t, h, corpus)
	after := scan(ctx, t, client, table)
	if !slices.Equal(before, after) {
		t.Errorf("the table changed:\nbefore %v\nafter  %v", before, after)
	}
	t.Logf("%d bad inputs refused; %d items unchanged", len(corpus), len(after))

	// A valid DELETE retires through the real store.
	stopper.readOnly = false
	del := loadEvent(t, "api-delete.json")
	del.RawQueryString = ""
	del.QueryStringParameters = nil
	if resp, _ := h.Handle(ctx, del); resp.StatusCode != http.StatusOK || !strings.Contains(resp.Body, `"status":"retired"`) {
		t.Errorf("DELETE = %d %s, want 200 retired", resp.StatusCode, resp.Body)
	}
	if len(stopper.stopped) != 1 {
		t.Errorf("stopped %v, want the execution recorded at the request", stopper.stopped)
	}
	if resp, _ := h.Handle(ctx, loadEvent(t, "api-get.json")); !strings.Contains(resp.Body, `"status":"retired"`) {
		t.Errorf("GET after DELETE = %s, want retired", resp.Body)
	}
}

// scan returns every item of the table as canonical JSON, sorted.
func scan(ctx context.Context, t *testing.T, client *dynamodb.Client, table string) []string {
	t.Helper()
	var out []string
	p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		for _, item := range page.Items {
			var m map[string]any
			if err := attributevalue.UnmarshalMap(item, &m); err != nil {
				t.Fatalf("scan: %v", err)
			}
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatalf("scan: %v", err)
			}
			out = append(out, string(b))
		}
	}
	slices.Sort(out)
	return out
}
