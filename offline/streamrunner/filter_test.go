package streamrunner

import (
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/certflow/certflow/internal/fixtures"
)

func fixtureRecord(t *testing.T, name string) events.DynamoDBEventRecord {
	t.Helper()
	return fixtures.Event[events.DynamoDBEvent](t, name).Records[0]
}

func TestPatternMatch(t *testing.T) {
	ttl := fixtureRecord(t, "renewal-trigger.json")
	user := fixtureRecord(t, "renewal-trigger-user-delete.json")
	tests := []struct {
		pattern string
		ttl     bool // matches the TTL removal fixture
		user    bool // matches the user deletion fixture
	}{
		{`{"eventName": ["REMOVE"]}`, true, true},
		{`{"eventName": ["INSERT", "MODIFY"]}`, false, false},
		{`{"userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]}}`, true, false},
		{`{"eventName": ["REMOVE"], "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]}, "dynamodb": {"Keys": {"sk": {"S": ["TIMER"]}}}}`, true, false},
		{`{"dynamodb": {"Keys": {"sk": {"S": ["CERT"]}}}}`, false, false},
		{`{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "DOMAIN#"}]}}}}`, true, true},
		{`{"dynamodb": {"Keys": {"pk": {"S": [{"suffix": ".example.com"}]}}}}`, true, true},
		{`{"eventName": [{"equals-ignore-case": "remove"}]}`, true, true},
		{`{"userIdentity": [{"exists": true}]}`, true, false},
		{`{"userIdentity": {"type": [{"exists": true}]}}`, true, false},
		{`{"userIdentity": {"type": [{"exists": false}]}}`, false, true},
		{`{"dynamodb": {"NewImage": [{"exists": false}]}}`, true, true},
		{`{"eventName": [{"anything-but": ["INSERT", "MODIFY"]}]}`, true, true},
		{`{"eventName": [{"anything-but": "REMOVE"}]}`, false, false},
		{`{"eventName": [{"anything-but": {"prefix": "REM"}}]}`, false, false},
		{`{"dynamodb": {"SizeBytes": [{"numeric": [">", 100, "<=", 261]}]}}`, true, true},
		{`{"dynamodb": {"SizeBytes": [{"numeric": ["<", 100]}]}}`, false, false},
		{`{"dynamodb": {"SizeBytes": [261]}}`, true, true},
		{`{"dynamodb": {"SizeBytes": ["261"]}}`, false, false},
		{`{"awsRegion": ["us-east-1"], "eventSource": ["aws:dynamodb"]}`, true, true},
		{`{"dynamodb": {"OldImage": {"renewAt": {"S": [{"prefix": "2026-04"}]}}}}`, true, true},
	}
	for _, tt := range tests {
		p, err := ParsePattern(tt.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%s): %v", tt.pattern, err)
		}
		for _, c := range []struct {
			name string
			rec  events.DynamoDBEventRecord
			want bool
		}{{"TTL removal", ttl, tt.ttl}, {"user deletion", user, tt.user}} {
			got, err := Filters{p}.Match(c.rec)
			if err != nil || got != c.want {
				t.Errorf("pattern %s on %s = %v, %v; want %v", tt.pattern, c.name, got, err, c.want)
			}
		}
	}
}

func TestFiltersOR(t *testing.T) {
	a, _ := ParsePattern(`{"eventName": ["INSERT"]}`)
	b, _ := ParsePattern(`{"eventName": ["REMOVE"]}`)
	rec := fixtureRecord(t, "renewal-trigger.json")
	if ok, _ := (Filters{a}).Match(rec); ok {
		t.Errorf("Filters{INSERT}.Match(REMOVE) = true, want false")
	}
	if ok, _ := (Filters{a, b}).Match(rec); !ok {
		t.Errorf("Filters{INSERT, REMOVE}.Match(REMOVE) = false, want true")
	}
	if ok, _ := (Filters{}).Match(rec); !ok {
		t.Errorf("Filters{}.Match() = false, want true")
	}
}

func TestParsePatternRejects(t *testing.T) {
	for _, p := range []string{
		`not json`,
		`["REMOVE"]`,
		`{"eventName": "REMOVE"}`,
		`{"eventName": []}`,
		`{"eventName": [{"wildcard": "R*"}]}`,
		`{"eventName": [{"prefix": 1}]}`,
		`{"n": [{"numeric": [">"]}]}`,
		`{"n": [{"numeric": ["~", 1]}]}`,
		`{"n": [{"exists": "yes"}]}`,
		`{}`,
	} {
		if _, err := ParsePattern(p); err == nil {
			t.Errorf("ParsePattern(%s) error = nil, want an error", p)
		}
	}
}

func TestCompareSequence(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"100", "99", 1}, {"99", "100", -1}, {"4421584500000000017450439091", "4421584500000000017450439091", 0}, {"0012", "12", 0},
	} {
		got := compareSequence(tt.a, tt.b)
		if (got > 0) != (tt.want > 0) || (got < 0) != (tt.want < 0) {
			t.Errorf("compareSequence(%q, %q) = %d, want sign %d", tt.a, tt.b, got, tt.want)
		}
	}
}
