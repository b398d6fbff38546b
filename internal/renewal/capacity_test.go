package renewal_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/certflow/certflow/internal/ari"
	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/reconcile"
	"github.com/certflow/certflow/internal/renewal"
	"github.com/certflow/certflow/internal/table"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/capacity"
	"github.com/certflow/certflow/offline/offlinetest"
)

type noopStarter struct{ started int }

func (s *noopStarter) Start(context.Context, string, any) (string, bool, error) {
	s.started++
	return "arn", false, nil
}

// noExecutions answers that no execution exists; the sweep below meets
// only idle domains, so it is never asked.
type noExecutions struct{}

func (noExecutions) DescribeExecution(context.Context, *sfn.DescribeExecutionInput, ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	return nil, &sfntypes.ExecutionDoesNotExist{}
}

// laterARI suggests a window after every stored renewal: nothing moves.
type laterARI struct{}

func (laterARI) Get(context.Context, string) (ari.Window, time.Duration, error) {
	start := time.Now().Add(400 * 24 * time.Hour)
	return ari.Window{Start: start, End: start.Add(time.Hour)}, time.Hour, nil
}

// TestSweeperCapacity measures, on DynamoDB Local with the template's
// table, the read and write units of one sweeper run over perShard active
// certificates in each of the 16 shards, a few of them overdue, and checks
// the query plan: index queries only, never a Scan, and a cost that grows
// with one shard (the ARI re-check), not with the table. The closing
// figures for 100,000 and 1,000,000 certificates are this run's per-item
// cost times the items the plan reads at that size.
func TestSweeperCapacity(t *testing.T) {
	env := offlinetest.Start(t, offline.Options{DynamoDB: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tables, cfg := env.Tables, env.AWS
	db := dynamodb.NewFromConfig(cfg)

	const perShard, overdue = 200, 8
	now := time.Now().UTC().Truncate(time.Second)
	late := loadActive(ctx, t, db, tables.Certificates, perShard, overdue, now)

	var meter capacity.Meter
	metered := cfg.Copy()
	meter.Add(&metered)
	store := certstore.New(dynamodb.NewFromConfig(metered), tables.Certificates, certstore.WithTimerTable(tables.Timers))
	starter := &noopStarter{}
	rec := &reconcile.Reconciler{Store: store, Starter: starter, Executions: noExecutions{}, StateMachineARN: "arn:aws:states:us-east-1:123456789012:stateMachine:certflow"}
	s := &renewal.Sweeper{Due: store, Reconciler: rec, ARI: laterARI{}, Mover: store, Positions: store, Expiry: store}
	sum, err := s.Handle(ctx, events.EventBridgeEvent{})
	if err != nil {
		t.Fatal(err)
	}
	// Overdue certificates are claimed before the re-check, which asks
	// about every other certificate of the shard.
	wantChecked := perShard
	if late[sum.ARIShard] {
		wantChecked--
	}
	if sum.Started != overdue || starter.started != overdue || sum.ARIChecked != wantChecked || !sum.ARIShardDone {
		t.Fatalf("sweep = %+v, want %d started and the %d idle certificates of shard %s re-checked", sum, overdue, wantChecked, sum.ARIShard)
	}
	usage := meter.Usage()
	t.Logf("one sweep over %d certificates:\n%s", 16*perShard, capacity.Format(usage))
	for k := range usage {
		if k.Operation == "Scan" {
			t.Errorf("the sweeper scanned %s", k.Table)
		}
	}
	q := usage[capacity.Key{Table: tables.Certificates, Operation: "Query"}]
	claims := usage[capacity.Key{Table: tables.Certificates, Operation: "UpdateItem"}]
	// The plan: 16 ByExpiry queries (Limit 1), 16 ByDue queries for
	// overdue domains (a page each here), and the pages of one shard's
	// ByDue entries for the ARI re-check.
	pages := (perShard + renewal.DefaultPageSize - 1) / renewal.DefaultPageSize
	if wantMax := 16 + 16 + pages + 1; q.Calls > wantMax {
		t.Errorf("%d queries, want at most %d", q.Calls, wantMax)
	}
	fixed := 32 * 0.5 // one eventually consistent 4 KB unit per empty or tiny query
	perItem := (q.Read - fixed) / float64(perShard)
	get := usage[capacity.Key{Table: tables.Certificates, Operation: "GetItem"}]
	put := usage[capacity.Key{Table: tables.Certificates, Operation: "PutItem"}]
	if get.Calls != 1 || put.Calls != 1 {
		t.Errorf("ARI re-check position: %d reads and %d writes, want one of each", get.Calls, put.Calls)
	}
	t.Logf("queries: %d calls, %.1f RRU (%.1f fixed + %.4f RRU per certificate of the re-checked shard); position: %.1f RRU, %.1f WRU; %d claims: %.1f WRU",
		q.Calls, q.Read, fixed, perItem, get.Read, put.Write, claims.Calls, claims.Write)
	for _, n := range []int{100_000, 1_000_000} {
		// Each run re-checks up to DefaultMaxARIChecks of its shard and
		// saves its position: a shard of n/16 takes this many visits.
		items := min(n/16, renewal.DefaultMaxARIChecks)
		visits := (n/16 + renewal.DefaultMaxARIChecks - 1) / renewal.DefaultMaxARIChecks
		perRun := fixed + perItem*float64(items) + get.Read
		t.Logf("at %d certificates: about %.0f RRU and %.0f WRU per run (ARI re-check reads %d index entries), %.0f RRU a month hourly; every certificate re-checked every %d hours",
			n, perRun, put.Write, items, perRun*24*30, visits*16)
	}
}

// loadActive writes perShard idle active certificate items into each shard
// (realistic sizes: a 2.6 KB chain and a sealed key), overdue of them (the
// first of as many shards) to be renewed two hours ago, and returns the
// shards that hold one.
func loadActive(ctx context.Context, t *testing.T, db *dynamodb.Client, tableName string, perShard, overdue int, now time.Time) map[string]bool {
	t.Helper()
	count := map[string]int{}
	late := map[string]bool{}
	chain := strings.Repeat("A", 2600)
	key := make([]byte, 180)
	var batch []ddbtypes.WriteRequest
	flush := func() {
		for len(batch) > 0 {
			out, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]ddbtypes.WriteRequest{tableName: batch}})
			if err != nil {
				t.Fatal(err)
			}
			batch = out.UnprocessedItems[tableName]
		}
	}
	s := func(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }
	ts := func(v time.Time) ddbtypes.AttributeValue { return s(table.FormatTime(v)) }
	for i, filled := 0, 0; filled < 16; i++ {
		domain := fmt.Sprintf("shop-%06d.customer%03d.example", i, i%997)
		shard := table.ShardOf(domain)
		if count[shard] == perShard {
			continue
		}
		count[shard]++
		if count[shard] == perShard {
			filled++
		}
		renewAt := now.Add(time.Duration(24+i%700) * time.Hour)
		if len(late) < overdue && count[shard] == 1 {
			renewAt = now.Add(-2 * time.Hour)
			late[shard] = true
		}
		serial := fmt.Sprintf("%032x", i+1)
		batch = append(batch, ddbtypes.WriteRequest{PutRequest: &ddbtypes.PutRequest{Item: map[string]ddbtypes.AttributeValue{
			"pk": s("DOMAIN#" + domain), "sk": s("CERT"), "domain": s(domain), "status": s("active"), "shard": s(shard),
			"sans":    &ddbtypes.AttributeValueMemberL{Value: []ddbtypes.AttributeValue{s(domain), s("www." + domain)}},
			"version": &ddbtypes.AttributeValueMemberN{Value: "3"}, "generation": &ddbtypes.AttributeValueMemberN{Value: "1"},
			"serial": s(serial), "ariCertID": s("aGVsbG8td29ybGQtYWtpLWJhc2U2NHVybA." + serial), "issuer": s("(STAGING) Ersatz Edamame E1"),
			"certPEM": s(chain), "keyWrapped": &ddbtypes.AttributeValueMemberB{Value: key}, "keyCiphertext": &ddbtypes.AttributeValueMemberB{Value: key},
			"keyType": s("ec256"), "renewAt": ts(renewAt), "dueAt": ts(renewAt.Add(certstore.DefaultGrace)), "notBefore": ts(renewAt.Add(-60 * 24 * time.Hour)),
			"notAfter": ts(renewAt.Add(30 * 24 * time.Hour)), "requestedAt": ts(now), "updatedAt": ts(now),
			"run": &ddbtypes.AttributeValueMemberN{Value: "0"},
		}}})
		if len(batch) == 25 {
			flush()
		}
	}
	flush()
	return late
}
