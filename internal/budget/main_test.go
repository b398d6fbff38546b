package budget

import (
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/offlinetest"
)

// testDB is DynamoDB Local with the certflow table testTable, or nil with
// -short; the tests that need it skip then.
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
