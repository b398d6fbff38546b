package deploy

import (
	"context"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/offline/offlinetest"
)

// TestFallbackCA runs two CAs offline: with the primary killed, new
// domains are issued by the fallback (its own account, its own budget,
// its own root); once the primary is back, a renewal of one of them starts
// on the primary again, as a new order (ARI "replaces" would name a
// certificate the primary never issued).
func TestFallbackCA(t *testing.T) {
	offlinetest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const grace = 20 * time.Second
	sys, err := Start(ctx, logged(t, "fallback", Config{
		FallbackCA:          true,
		CertificateValidity: time.Hour,
		WaitOverride:        100 * time.Millisecond,
		DueGrace:            grace,
		SweepEvery:          5 * time.Second,
		Metrics:             io.Discard,
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	store := certstore.New(dynamodb.NewFromConfig(sys.Stack.AWS), sys.Table, certstore.WithTimerTable(sys.TimerTable), certstore.WithGrace(grace))

	if err := sys.Stack.Process("pebble").Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	const a, b = "fallback-a.customer.example", "fallback-b.customer.example"
	for _, d := range []string{a, b} {
		post(ctx, t, sys.APIURL, d)
	}
	for _, d := range []string{a, b} {
		waitFor(ctx, t, sys.APIURL, d, func(x doc) bool { return x.Status == "active" })
		c, err := store.GetConsistent(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if c.CA != flow.CAFallback {
			t.Errorf("%s issued by CA %q, want the fallback while the primary is down", d, c.CA)
		}
		t.Logf("%s issued by the fallback CA (%s)", d, c.Issuer)
	}

	if err := sys.Stack.RestartPebble(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := store.GetConsistent(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.MoveTimer(ctx, a, c.Serial, c.ARICertID, time.Now().Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	renewed := waitFor(ctx, t, sys.APIURL, a, func(x doc) bool { return x.Status == "active" && x.Serial != c.Serial })
	after, err := store.GetConsistent(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if after.CA != flow.CAPrimary {
		t.Errorf("renewal of %s issued by CA %q, want the primary once it is back", a, after.CA)
	}
	t.Logf("%s renewed by the primary CA: serial %s -> %s (%s)", a, c.Serial, renewed.Serial, after.Issuer)
}
