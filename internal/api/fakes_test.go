package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/notify"
	"github.com/certflow/certflow/internal/table"

	"github.com/certflow/certflow/internal/fixtures"
)

// fakeStore is an in-memory certificate table. With readOnly set, every
// write fails the test: bad input must change nothing.
type fakeStore struct {
	t        testing.TB
	readOnly bool
	cooldown time.Duration

	mu     sync.Mutex
	items  map[string]*certstore.Certificate
	writes []string
}

func newFakeStore(t testing.TB, certs ...*certstore.Certificate) *fakeStore {
	s := &fakeStore{t: t, items: map[string]*certstore.Certificate{}}
	for _, c := range certs {
		s.items[c.Domain] = c
	}
	return s
}

func (s *fakeStore) write(op string) {
	s.writes = append(s.writes, op)
	if s.readOnly {
		s.t.Errorf("unexpected write to the table: %s", op)
	}
}

// Request refuses as certstore does (another tenant's domain or name, a
// wildcard over another tenant's name, a paused domain, the cooldown),
// before writing anything.
func (s *fakeStore) Request(_ context.Context, in certstore.RequestInput) (*certstore.Certificate, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	domain := in.Domain
	c, ok := s.items[domain]
	if ok && c.Status != certstore.StatusRetired && c.Tenant != in.Tenant {
		return nil, false, fmt.Errorf("request %q: %w", domain, &certstore.NameTakenError{Name: domain, OtherTenant: true})
	}
	if ok && c.Status.Working() {
		cp := *c
		return &cp, false, nil
	}
	if ok && c.Status == certstore.StatusQuarantined && c.QuarantineReason == "account_paused" && !in.Unpaused {
		return nil, false, fmt.Errorf("request %q: %w", domain, certstore.ErrPaused)
	}
	if ok && s.cooldown > 0 && in.Now.Before(c.UpdatedAt.Add(s.cooldown)) {
		return nil, false, fmt.Errorf("request %q: %w", domain, &certstore.CooldownError{Until: c.UpdatedAt.Add(s.cooldown)})
	}
	for _, other := range s.items {
		if other.Domain == domain || other.Status == certstore.StatusRetired {
			continue
		}
		names := append([]string{other.Domain}, other.SANs...)
		if slices.Contains(other.SANs, domain) {
			return nil, false, fmt.Errorf("request %q: %w", domain, &certstore.NameTakenError{Name: domain})
		}
		for _, san := range in.SANs {
			if slices.Contains(names, san) {
				return nil, false, fmt.Errorf("request %q: %w", domain, &certstore.NameTakenError{Name: san})
			}
		}
		for _, n := range append([]string{domain}, in.SANs...) {
			base, wild := strings.CutPrefix(n, "*.")
			if !wild || other.Tenant == in.Tenant {
				continue
			}
			for _, held := range names {
				if !strings.HasPrefix(held, "*.") && table.ParentOf(held) == base {
					return nil, false, fmt.Errorf("request %q: %w", domain, &certstore.WildcardConflictError{Wildcard: n})
				}
			}
		}
	}
	s.write("Request " + domain)
	if !ok {
		c = &certstore.Certificate{Domain: domain}
		s.items[domain] = c
	}
	c.SANs, c.Tenant, c.Status, c.RequestedAt, c.UpdatedAt = in.SANs, in.Tenant, certstore.StatusPending, in.Now, in.Now
	c.OwnershipToken, c.OwnershipVerifiedAt = "", time.Time{}
	c.Validation, c.Records, c.Profile = in.Validation, in.Records, in.Profile
	if in.ProveOwnership {
		c.OwnershipToken = "tok-" + domain
	}
	c.Generation++
	c.Version++
	c.Run = 1
	c.Execution = flow.IssueName(domain, c.Generation, c.Run)
	cp := *c
	return &cp, true, nil
}

// Claim makes the next run the owner, as certstore does, if the item is
// still as cur shows it.
func (s *fakeStore) Claim(_ context.Context, cur *certstore.Certificate, now time.Time) (*certstore.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.items[cur.Domain]
	if !ok {
		return nil, certstore.ErrNotFound
	}
	if c.Status != cur.Status || c.Run != cur.Run || c.Execution != cur.Execution {
		return nil, certstore.ErrStale
	}
	s.write("Claim " + cur.Domain)
	c.Run++
	c.Execution = flow.IssueName(c.Domain, c.Generation, c.Run)
	if c.Status == certstore.StatusActive {
		c.Execution = flow.RenewName(c.Domain, c.Serial, c.Run)
	}
	c.UpdatedAt = now
	cp := *c
	return &cp, nil
}

// Await records that the owning execution was given more time.
func (s *fakeStore) Await(_ context.Context, domain, execution string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.items[domain]
	if !ok {
		return certstore.ErrNotFound
	}
	if c.Execution != execution {
		return certstore.ErrSuperseded
	}
	s.write("Await " + domain)
	return nil
}

func (s *fakeStore) Get(_ context.Context, domain string) (*certstore.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.items[domain]
	if !ok {
		return nil, fmt.Errorf("get certificate %q: %w", domain, certstore.ErrNotFound)
	}
	cp := *c
	return &cp, nil
}

// List pages a tenant's domains by name; its cursors are
// "after:<domain>", valid for the tenant that holds the domain.
func (s *fakeStore) List(_ context.Context, tenant string, status certstore.Status, limit int, cursor string) ([]certstore.Certificate, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	after := ""
	if cursor != "" {
		if _, err := fmt.Sscanf(cursor, "after:%s", &after); err != nil {
			return nil, "", fmt.Errorf("list: %w", certstore.ErrBadCursor)
		}
		if c, ok := s.items[after]; !ok || c.Tenant != tenant || c.Status != status {
			return nil, "", fmt.Errorf("list: %w", certstore.ErrBadCursor)
		}
	}
	var names []string
	for n, c := range s.items {
		if c.Tenant == tenant && c.Status == status && n > after {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	next := ""
	if len(names) > limit {
		names = names[:limit]
		next = "after:" + names[limit-1]
	}
	out := make([]certstore.Certificate, 0, len(names))
	for _, n := range names {
		out = append(out, *s.items[n])
	}
	return out, next, nil
}

func (s *fakeStore) Retire(_ context.Context, tenant, domain string) (*certstore.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.items[domain]
	if !ok || c.Tenant != tenant {
		return nil, fmt.Errorf("retire %q: %w", domain, certstore.ErrNotFound)
	}
	s.write("Retire " + domain)
	prev := *c
	c.Status = certstore.StatusRetired
	c.Execution, c.Run = "", 0
	c.Key = certstore.SealedKey{}
	return &prev, nil
}

// fakeStarter records started executions by name.
type fakeStarter struct {
	t        testing.TB
	readOnly bool
	err      error

	mu      sync.Mutex
	started map[string]json.RawMessage
}

func (f *fakeStarter) Start(_ context.Context, name string, input any) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readOnly {
		f.t.Errorf("unexpected StartExecution %s", name)
	}
	if f.err != nil {
		return "", false, f.err
	}
	if f.started == nil {
		f.started = map[string]json.RawMessage{}
	}
	arn := "arn:aws:states:us-east-1:123456789012:execution:certflow-issuance:" + name
	if _, ok := f.started[name]; ok {
		return arn, true, nil
	}
	b, err := json.Marshal(input)
	if err != nil {
		return "", false, err
	}
	f.started[name] = b
	return arn, false, nil
}

// fakeStopper records stopped execution ARNs.
type fakeStopper struct {
	t        testing.TB
	readOnly bool
	err      error

	mu      sync.Mutex
	stopped []string
}

func (f *fakeStopper) StopExecution(_ context.Context, in *sfn.StopExecutionInput, _ ...func(*sfn.Options)) (*sfn.StopExecutionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readOnly {
		f.t.Errorf("unexpected StopExecution %s", aws.ToString(in.ExecutionArn))
	}
	f.stopped = append(f.stopped, aws.ToString(in.ExecutionArn))
	return &sfn.StopExecutionOutput{}, f.err
}

// fakeExecutions answers DescribeExecution from the executions the starter
// started (RUNNING) and the statuses set in ended.
type fakeExecutions struct {
	starter *fakeStarter
	ended   map[string]sfntypes.ExecutionStatus // by name
}

func (f *fakeExecutions) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	arn := aws.ToString(in.ExecutionArn)
	name := arn[strings.LastIndex(arn, ":")+1:]
	if st, ok := f.ended[name]; ok {
		return &sfn.DescribeExecutionOutput{Status: st}, nil
	}
	f.starter.mu.Lock()
	_, ok := f.starter.started[name]
	f.starter.mu.Unlock()
	if !ok {
		return nil, &sfntypes.ExecutionDoesNotExist{Message: aws.String("Execution Does Not Exist: " + arn)}
	}
	return &sfn.DescribeExecutionOutput{Status: sfntypes.ExecutionStatusRunning}, nil
}

// fakePublisher records published events.
type fakePublisher struct {
	mu     sync.Mutex
	events []notify.Event
}

func (f *fakePublisher) Publish(_ context.Context, ev notify.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, ev)
	return nil
}

// fakeRevoker records revoked certificates.
type fakeRevoker struct {
	t        testing.TB
	readOnly bool
	err      error

	mu      sync.Mutex
	revoked []string
}

func (f *fakeRevoker) Revoke(_ context.Context, certPEM []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readOnly {
		f.t.Errorf("unexpected Revoke")
	}
	if f.err != nil {
		return f.err
	}
	f.revoked = append(f.revoked, string(certPEM))
	return nil
}

var errBoom = errors.New("dynamodb: connection reset by peer at 10.0.0.7:443 (secret detail)")

// loadEvent reads an events/ fixture.
func loadEvent(t testing.TB, name string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	req := fixtures.Event[events.APIGatewayV2HTTPRequest](t, name)
	if req.Version != "2.0" || req.RequestContext.HTTP.Method == "" || req.RequestContext.Stage != "$default" {
		t.Fatalf("fixture %s is not an HTTP API payload 2.0 event", name)
	}
	return req
}

// The principals of the tests: the fixtures' caller (tenant A), another
// tenant, and an operator allowed to act for tenants.
const (
	tenantA      = "arn:aws:iam::123456789012:role/platform-control"
	tenantB      = "arn:aws:iam::123456789012:role/tenant-b"
	operator     = "arn:aws:iam::123456789012:role/certflow-operator"
	sessionB     = "arn:aws:sts::123456789012:assumed-role/tenant-b/b-session"
	sessionOfOps = "arn:aws:sts::123456789012:assumed-role/certflow-operator/ops"
)

// as returns req signed by the principal userARN ("" for no IAM identity).
func as(req events.APIGatewayV2HTTPRequest, userARN string) events.APIGatewayV2HTTPRequest {
	if userARN == "" {
		req.RequestContext.Authorizer = nil
		return req
	}
	req.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{AccountID: "123456789012", UserARN: userARN},
	}
	return req
}

// errorCode returns the error code and reason of an error answer.
func errorCode(t testing.TB, body string) (code, reason string) {
	t.Helper()
	var doc struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Reason  string `json:"reason"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	if doc.Error.Message == "" {
		t.Errorf("error body %q has no message", body)
	}
	return doc.Error.Code, doc.Error.Reason
}
