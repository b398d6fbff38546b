package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/certflow/certflow/internal/api"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/delivery"
	"github.com/certflow/certflow/internal/domain"
	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/fixtures"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/principal"
	"github.com/certflow/certflow/internal/reconcile"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/offlinetest"
)

// TestBadInputLeavesDynamoDBUnchanged runs the bad-input corpus against the
// real certstore.Store on DynamoDB Local and compares full scans of the
// table before and after; then the delivery of one tenant's names to
// callers that may not have them (another tenant's role, a wildcard of
// another tenant over a retired name), with nothing decrypted.
func TestBadInputLeavesDynamoDBUnchanged(t *testing.T) {
	env := offlinetest.Start(t, offline.Options{DynamoDB: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	table := env.Tables.Certificates
	client := dynamodb.NewFromConfig(env.AWS)
	store := certstore.New(client, table, certstore.WithRequestCooldown(time.Hour))
	starter := &fakeStarter{t: t}
	stopper := &fakeStopper{t: t}
	revoker := &fakeRevoker{t: t}
	h, err := api.New(api.Config{
		Requester: store, Getter: store, Lister: store, Retirer: store,
		Reconciler: &reconcile.Reconciler{Store: store, Starter: starter, Executions: &fakeExecutions{starter: starter}, StateMachineARN: stateMachineARN},
		Stopper:    stopper, StateMachineARN: stateMachineARN, Revoker: revoker,
		Names:      domain.Policy{AllowTestingTLDs: true},
		Operators:  principal.List{operator},
		Validation: api.Validation{DelegationZone: delegationZone},
	})
	if err != nil {
		t.Fatal(err)
	}

	// Seed the table through the API itself: tenant A's domains, one
	// paused by the CA and one quarantined a moment ago; tenant B's
	// wildcard with a name of A's below it.
	seed := func(who, body string) *certstore.Certificate {
		t.Helper()
		req := as(loadEvent(t, "api-post.json"), who)
		req.Body = body
		resp, _ := h.Handle(ctx, req)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("seed %s: %d %s", body, resp.StatusCode, resp.Body)
		}
		var d struct{ Domain string }
		if err := json.Unmarshal([]byte(resp.Body), &d); err != nil {
			t.Fatal(err)
		}
		c, err := store.GetConsistent(ctx, d.Domain)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, body := range []string{
		`{"domain": "blog.customer.example", "sans": ["www.blog.customer.example"]}`,
		`{"domain": "shop.customer.example"}`,
		`{"domain": "B\u00fccher.example"}`,
	} {
		seed(tenantA, body)
	}
	for d, reason := range map[string]string{"paused.customer.example": failure.CodeAccountPaused, "cooling.customer.example": failure.CodeDomainNotPointed} {
		c := seed(tenantA, `{"domain": "`+d+`"}`)
		if err := store.Quarantine(ctx, d, c.Execution, reason, "seeded", "https://ca.example/unpause"); err != nil {
			t.Fatal(err)
		}
	}
	wildcard := seed(sessionB, `{"domain": "*.fallback.example", "validation": "dns-01"}`)
	gone := seed(tenantA, `{"domain": "gone.fallback.example"}`)
	for _, c := range []*certstore.Certificate{wildcard, gone} {
		if err := store.SaveIssued(ctx, issuedFor(c)); err != nil {
			t.Fatal(err)
		}
	}
	del := as(loadEvent(t, "api-delete.json"), tenantA)
	del.PathParameters, del.RawPath, del.RawQueryString, del.QueryStringParameters = map[string]string{"domain": "gone.fallback.example"}, "/certificates/gone.fallback.example", "", nil
	if resp, _ := h.Handle(ctx, del); resp.StatusCode != http.StatusOK {
		t.Fatalf("retire gone.fallback.example = %d %s", resp.StatusCode, resp.Body)
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
	if resp, _ := h.Handle(ctx, list); resp.StatusCode != http.StatusOK || strings.Count(resp.Body, `"domain"`) != 1 || strings.Contains(resp.Body, "nextCursor") {
		t.Fatalf("second page = %d %s, want the last of tenant A's three pending domains", resp.StatusCode, resp.Body)
	}
	// A real cursor of another status is refused by the store.
	list.RawQueryString = "status=active&cursor=" + page.NextCursor
	if resp, _ := h.Handle(ctx, list); resp.StatusCode != http.StatusBadRequest || !strings.Contains(resp.Body, api.CodeInvalidCursor) {
		t.Errorf("cursor of another status = %d %s, want 400 invalid_cursor", resp.StatusCode, resp.Body)
	}
	// Tenant B lists its own domains only.
	if resp, _ := h.Handle(ctx, as(list, sessionB)); !strings.Contains(resp.Body, api.CodeInvalidCursor) {
		t.Errorf("tenant B with tenant A's cursor = %d %s, want invalid_cursor", resp.StatusCode, resp.Body)
	}
	listB := as(loadEvent(t, "api-list.json"), sessionB)
	listB.RawQueryString = "status=active"
	if resp, _ := h.Handle(ctx, listB); resp.StatusCode != http.StatusOK || strings.Count(resp.Body, `"domain"`) != 1 || !strings.Contains(resp.Body, "*.fallback.example") {
		t.Errorf("tenant B's active list = %d %s, want its wildcard only", resp.StatusCode, resp.Body)
	}
	listA := loadEvent(t, "api-list.json")
	listA.RawQueryString = "status=pending&limit=1"
	resp, _ = h.Handle(ctx, listA)
	if err := json.Unmarshal([]byte(resp.Body), &page); err != nil || page.NextCursor == "" {
		t.Fatalf("list = %d %s", resp.StatusCode, resp.Body)
	}

	starter.readOnly, stopper.readOnly, revoker.readOnly = true, true, true
	before := scan(ctx, t, client, table)
	corpus := badInputs(t, page.NextCursor)
	checkBadInputs(t, h, corpus)

	// Delivery of another's key.
	opener := &countingOpener{}
	dh, err := delivery.New(delivery.Config{Finder: store, Opener: opener, Allowed: principal.List{edge}, Names: domain.Policy{AllowTestingTLDs: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, who, sni string
		status         int
	}{
		{"a tenant's role fetching its own key", sessionA, "blog.customer.example", http.StatusForbidden},
		{"another tenant's role fetching a key", sessionB, "gone.fallback.example", http.StatusForbidden},
		{"another tenant's role fetching through its wildcard", sessionB, "x.fallback.example", http.StatusForbidden},
		{"no IAM identity", "", "blog.customer.example", http.StatusForbidden},
		{"the edge, a name its tenant retired under another tenant's wildcard", edgeSession, "gone.fallback.example", http.StatusNotFound},
	} {
		req := as(fixtures.Event[events.APIGatewayV2HTTPRequest](t, "delivery-get.json"), tc.who)
		req.PathParameters = map[string]string{"name": tc.sni}
		req.RawPath, req.RequestContext.HTTP.Path = "/sni/"+tc.sni, "/sni/"+tc.sni
		resp, _ := dh.Handle(logging.Into(ctx, slog.New(slog.DiscardHandler)), req)
		if resp.StatusCode != tc.status {
			t.Errorf("delivery, %s: %d %.100s, want %d", tc.name, resp.StatusCode, resp.Body, tc.status)
		}
	}
	if opener.calls != 0 {
		t.Errorf("refused deliveries decrypted %d keys, want none", opener.calls)
	}

	after := scan(ctx, t, client, table)
	if !slices.Equal(before, after) {
		t.Errorf("the table changed:\nbefore %v\nafter  %v", before, after)
	}
	t.Logf("%d bad inputs and 5 deliveries refused; %d items unchanged", len(corpus), len(after))

	// The controls: the edge gets B's wildcard for a name no one else held
	// (one decryption), and a valid DELETE retires through the real store.
	req := as(fixtures.Event[events.APIGatewayV2HTTPRequest](t, "delivery-get.json"), edgeSession)
	req.PathParameters, req.RawPath = map[string]string{"name": "x.fallback.example"}, "/sni/x.fallback.example"
	if resp, _ := dh.Handle(ctx, req); resp.StatusCode != http.StatusOK || opener.calls != 1 {
		t.Errorf("delivery of x.fallback.example to the edge = %d, %d decryptions; want 200 through B's wildcard", resp.StatusCode, opener.calls)
	}
	stopper.readOnly = false
	del = loadEvent(t, "api-delete.json")
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

// The principals of the delivery checks: tenant A's role in a session, and
// the edge role allowed to fetch keys.
const (
	sessionA    = "arn:aws:sts::123456789012:assumed-role/platform-control/a-session"
	edgeSession = "arn:aws:sts::123456789012:assumed-role/certflow-edge/i-0abc"
	edge        = principal.ARN("arn:aws:iam::123456789012:role/certflow-edge")
)

// issuedFor is a certificate for c's names, as the Issue step stores it,
// with a key sealed by no one (countingOpener opens anything).
func issuedFor(c *certstore.Certificate) certstore.Issued {
	nb := time.Now().Add(-time.Hour)
	return certstore.Issued{
		Domain: c.Domain, Execution: c.Execution, SANs: append([]string{c.Domain}, c.SANs...),
		CertPEM: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		Key:     certstore.SealedKey{Wrapped: []byte("wrapped"), Ciphertext: []byte("sealed")},
		KeyType: "ec256", NotBefore: nb, NotAfter: nb.Add(90 * 24 * time.Hour),
		Serial: "0a" + fmt.Sprintf("%x", len(c.Domain)), Issuer: "test", RenewAt: nb.Add(60 * 24 * time.Hour),
	}
}

// countingOpener counts decryptions and returns a dummy PEM key.
type countingOpener struct{ calls int }

func (o *countingOpener) Open(context.Context, envelope.Sealed, map[string]string) ([]byte, error) {
	o.calls++
	return []byte("-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n"), nil
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
