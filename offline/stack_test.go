package offline

import (
	"bytes"
	"context"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/miekg/dns"
)

// TestStack starts every part of the stack and checks each is reachable the
// way certflow reaches it.
func TestStack(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped with -short")
	}
	if _, err := FindTools(""); err != nil {
		t.Skip("integration test skipped: the offline tools are not installed (run `make tools`)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{DynamoDB: true, Moto: true, Pebble: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	tables, cfg := s.Tables, s.AWS
	for _, tt := range []struct {
		name   string
		gsis   int
		stream bool
	}{
		{tables.Certificates, 4, false},
		{tables.Timers, 0, true},
	} {
		desc, err := dynamodb.NewFromConfig(cfg).DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tt.name)})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(desc.Table.GlobalSecondaryIndexes); got != tt.gsis {
			t.Errorf("%s has %d GSIs, want %d (from template.yaml)", tt.name, got, tt.gsis)
		}
		if got := desc.Table.LatestStreamArn != nil; got != tt.stream {
			t.Errorf("%s has a stream: %v, want %v", tt.name, got, tt.stream)
		}
		ttl, err := dynamodb.NewFromConfig(cfg).DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(tt.name)})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(ttl.TimeToLiveDescription.AttributeName); got != "expiresAt" {
			t.Errorf("%s TTL attribute = %q, want expiresAt", tt.name, got)
		}
	}

	if _, err := kms.NewFromConfig(cfg).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(s.KMSKeyID)}); err != nil {
		t.Errorf("KMS key %s: %v", s.KMSKeyID, err)
	}

	before, err := os.ReadFile(s.PebbleRootsFile)
	if err != nil {
		t.Errorf("pebble roots: %v", err)
	}
	dir := s.PebbleDirectoryURL
	if err := s.RestartPebble(ctx); err != nil {
		t.Fatalf("RestartPebble: %v", err)
	}
	after, err := os.ReadFile(s.PebbleRootsFile)
	if err != nil || bytes.Equal(before, after) || s.PebbleDirectoryURL != dir {
		t.Errorf("after RestartPebble: roots changed %v (%v), directory %s, want a new root at %s", !bytes.Equal(before, after), err, s.PebbleDirectoryURL, dir)
	}
	if _, err := s.PebbleRoots(); err != nil {
		t.Errorf("pebble roots: %v", err)
	}
	if err := s.PointAt(ctx, "elsewhere.customer.example", ElsewhereAddress); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"blog.customer.example": EdgeAddress, "elsewhere.customer.example": ElsewhereAddress} {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		in, _, err := (&dns.Client{}).ExchangeContext(ctx, m, s.DNSAddr)
		if err != nil {
			t.Fatal(err)
		}
		if len(in.Answer) != 1 || !in.Answer[0].(*dns.A).A.Equal(net.ParseIP(want)) {
			t.Errorf("A %s = %v, want %s", name, in.Answer, want)
		}
	}
}

// TestSupervise kills engines under a supervised stack: each is reported by
// name and started again on its ports, and DynamoDB Local on disk keeps its
// tables and items.
func TestSupervise(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped with -short")
	}
	if _, err := FindTools(""); err != nil {
		t.Skip("integration test skipped: the offline tools are not installed (run `make tools`)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{DynamoDB: true, DynamoDBOnDisk: true, Pebble: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reports := make(chan string, 10)
	s.Supervise(ctx, func(name string, err error) { reports <- name })

	db := dynamodb.NewFromConfig(s.AWS)
	key := map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "DOMAIN#kept.example"}, "sk": &ddbtypes.AttributeValueMemberS{Value: "CERT"}}
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Tables.Certificates), Item: key}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"DynamoDB Local", "pebble"} {
		p := s.Process(name)
		if p == nil {
			t.Fatalf("no %s process", name)
		}
		if err := p.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-reports:
			if got != name {
				t.Errorf("reported %q, want %q", got, name)
			}
		case <-ctx.Done():
			t.Fatalf("%s killed and never reported", name)
		}
		for s.Process(name) == nil || s.Process(name) == p {
			if ctx.Err() != nil {
				t.Fatalf("%s not restarted", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for {
		out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Tables.Certificates), Key: key, ConsistentRead: aws.Bool(true)})
		if err == nil {
			if out.Item == nil {
				t.Error("the item written before the restart is gone")
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("DynamoDB Local after the restart: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	client, err := s.PebbleHTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, err := s.pebbleGet(ctx, client, "/roots/0")
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Pebble after the restart: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
