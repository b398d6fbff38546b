package budget

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/offlinetest"
)

var (
	testDB    *dynamodb.Client
	testTable string
)

func TestMain(m *testing.M) {
	os.Exit(offlinetest.Main(m, offline.Options{DynamoDB: true}, func(env *offline.Stack) {
		testDB = dynamodb.NewFromConfig(env.AWS)
		testTable = env.Tables.Certificates
	}))
}

func TestConcurrentTakersDynamoDBLocal(t *testing.T) {
	if testDB == nil {
		offlinetest.Require(t)
	}
	ctx := context.Background()
	const capacity, takers = 5, 16
	// A frozen clock: nothing refills during the test, so exactly capacity
	// takes can succeed.
	b := New(testDB, testTable, capacity, time.Hour, func() time.Time { return t0 })
	var (
		granted, denied atomic.Int32
		wg              sync.WaitGroup
	)
	for range takers {
		wg.Go(func() {
			ok, wait, err := b.Take(ctx)
			switch {
			case err != nil:
				t.Errorf("Take() error = %v", err)
			case ok:
				granted.Add(1)
			default:
				denied.Add(1)
				if wait <= 0 || wait > 12*time.Minute {
					t.Errorf("Take() wait = %v, want (0, 12m]", wait)
				}
			}
		})
	}
	wg.Wait()
	if granted.Load() != capacity || denied.Load() != takers-capacity {
		t.Errorf("%d concurrent takers: %d granted, %d denied, want %d and %d", takers, granted.Load(), denied.Load(), capacity, takers-capacity)
	}

	// An operator refill grants again.
	if err := b.Set(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := b.Take(ctx); err != nil || !ok {
		t.Errorf("Take() after Set(1) = %v, %v, want granted", ok, err)
	}
	if ok, _, err := b.Take(ctx); err != nil || ok {
		t.Errorf("second Take() after Set(1) = %v, %v, want denied", ok, err)
	}
}
