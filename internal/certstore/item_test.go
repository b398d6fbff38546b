package certstore

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/table"
)

// t0 is in the future, so DynamoDB Local's TTL leaves the timers the tests write.
var t0 = time.Date(2036, 3, 1, 12, 0, 0, 0, time.UTC)

func TestCertificateItemRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		cert Certificate
	}{
		{"pending", Certificate{Domain: "a.example", SANs: []string{"a.example"}, Status: StatusPending, Version: 1, Generation: 1, RequestedAt: t0, UpdatedAt: t0}},
		{"active", Certificate{Domain: "a.example", SANs: []string{"a.example", "www.a.example"}, Status: StatusActive, Version: 7, Generation: 2,
			CertPEM: "-----BEGIN CERTIFICATE-----", Key: SealedKey{Wrapped: []byte{1, 2}, Ciphertext: []byte{3, 4}}, KeyType: "ec256",
			NotBefore: t0, NotAfter: t0.Add(90 * 24 * time.Hour), Serial: "0abc", Issuer: "Pebble", ARICertID: "aaa.bbb", RenewAt: t0.Add(60 * 24 * time.Hour),
			Execution: "arn:aws:states:us-east-1:000000000000:execution:x:y", RequestedAt: t0, UpdatedAt: t0}},
		{"failed", Certificate{Domain: "b.example", Status: StatusFailed, Version: 3, Generation: 1, FailureCount: 2, FirstFailureAt: t0,
			LastErrorCode: "rate_limited", LastErrorMessage: "slow down", NextAttemptAt: t0.Add(time.Hour), UnpauseURL: "https://ca/unpause", QuarantineReason: ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			item := certificateItem(&tt.cert)
			got, err := certificateFromItem(item)
			if err != nil {
				t.Fatalf("certificateFromItem() error = %v", err)
			}
			if !reflect.DeepEqual(*got, tt.cert) {
				t.Errorf("round trip = %+v, want %+v", *got, tt.cert)
			}
			if pk := item[table.AttrPK].(*types.AttributeValueMemberS).Value; pk != "DOMAIN#"+tt.cert.Domain {
				t.Errorf("pk = %q, want %q", pk, "DOMAIN#"+tt.cert.Domain)
			}
			_, hasShard := item[table.AttrShard]
			if !hasShard {
				t.Error("shard missing: every domain with work left is in the due index")
			}
		})
	}
}

func TestTimeFormat(t *testing.T) {
	in := time.Date(2026, 3, 1, 13, 4, 5, 999_000_000, time.FixedZone("x", 3600))
	if got, want := table.FormatTime(in), "2026-03-01T12:04:05Z"; got != want {
		t.Errorf("table.FormatTime(%v) = %q, want %q", in, got, want)
	}
}

func TestTimerItem(t *testing.T) {
	tm := Timer{Domain: "a.example", Serial: "0abc", ARICertID: "x.y", RenewAt: t0}
	item := timerItem(tm)
	if got := item[table.AttrExpiresAt].(*types.AttributeValueMemberN).Value; got != "2087985600" {
		t.Errorf("expiresAt = %s, want %d", got, t0.Unix())
	}
	got, err := TimerFromItem(item)
	if err != nil || got != tm {
		t.Errorf("TimerFromItem() = %+v, %v, want %+v", got, err, tm)
	}
}

func TestWildcardParent(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a.b.example", "*.b.example"},
		{"www.shop.example.co.uk", "*.shop.example.co.uk"},
		{"b.example", ""},
		{"example", ""},
		{"*.b.example", ""},
	}
	for _, tt := range tests {
		if got := WildcardParent(tt.in); got != tt.want {
			t.Errorf("WildcardParent(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestShards(t *testing.T) {
	shards := table.Shards()
	if len(shards) != 16 || shards[0] != "00" || shards[15] != "15" {
		t.Fatalf("table.Shards() = %v, want 00..15", shards)
	}
	for _, d := range []string{"a.example", "b.example", "xn--bcher-kva.example"} {
		got := table.ShardOf(d)
		if len(got) != 2 || got < "00" || got > "15" || got != table.ShardOf(d) {
			t.Errorf("table.ShardOf(%q) = %q, want a stable shard in 00..15", d, got)
		}
	}
}

func TestSaveIssuedInput(t *testing.T) {
	s := New(nil, "tbl")
	in := Issued{Domain: "a.example", Execution: "exec-1", SANs: []string{"a.example", "www.a.example", "www.a.example"}, CertPEM: "PEM",
		Key: SealedKey{Wrapped: []byte{1}, Ciphertext: []byte{2}}, NotBefore: t0, NotAfter: t0.Add(time.Hour), Serial: "0ABC", RenewAt: t0.Add(30 * time.Minute)}
	input, err := s.saveIssuedInput(in, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(input.TransactItems) != 4 {
		t.Fatalf("transaction has %d items, want 4 (cert, timer, order deletion, one alias)", len(input.TransactItems))
	}
	u := input.TransactItems[0].Update
	cond := aws.ToString(u.ConditionExpression)
	for _, want := range []string{"#execution = ", "attribute_not_exists(#notBefore) OR #notBefore <= "} {
		if !strings.Contains(cond, want) {
			t.Errorf("condition %q lacks %q", cond, want)
		}
	}
	if u.ReturnValuesOnConditionCheckFailure != types.ReturnValuesOnConditionCheckFailureAllOld {
		t.Error("condition failure does not return the old item")
	}
	update := aws.ToString(u.UpdateExpression)
	for _, want := range []string{"REMOVE ", "#failureCount", "ADD #version"} {
		if !strings.Contains(update, want) {
			t.Errorf("update %q lacks %q", update, want)
		}
	}
	var serialValue string
	for _, v := range u.ExpressionAttributeValues {
		if s, ok := v.(*types.AttributeValueMemberS); ok && strings.EqualFold(s.Value, "0abc") {
			serialValue = s.Value
		}
	}
	if serialValue != "0abc" {
		t.Errorf("serial stored as %q, want lower case 0abc", serialValue)
	}
	timer := input.TransactItems[1].Put.Item
	if timer[table.AttrSK].(*types.AttributeValueMemberS).Value != table.SKTimer {
		t.Error("second action is not the timer")
	}
	if d := input.TransactItems[2].Delete; d == nil || d.Key[table.AttrSK].(*types.AttributeValueMemberS).Value != table.SKOrder {
		t.Error("third action does not delete the pending order")
	}
	// The alias is updated, not put: the tenant its request claimed it
	// with stays, and a tombstone comes back to life.
	alias := input.TransactItems[3].Update
	if alias == nil || alias.Key[table.AttrPK].(*types.AttributeValueMemberS).Value != "DOMAIN#www.a.example" {
		t.Fatalf("fourth action = %+v, want the update of www.a.example's alias", input.TransactItems[3])
	}
	if update := aws.ToString(alias.UpdateExpression); !strings.Contains(update, "#domain = ") || !strings.Contains(update, "REMOVE #retiredAt") || strings.Contains(update, "#tenant") {
		t.Errorf("alias update %q, want domain set, retiredAt removed, the tenant left alone", update)
	}
}

func TestIssuedValidate(t *testing.T) {
	ok := Issued{Domain: "a.example", Execution: "exec-1", CertPEM: "PEM", Key: SealedKey{Wrapped: []byte{1}, Ciphertext: []byte{2}},
		NotBefore: t0, NotAfter: t0, Serial: "01", RenewAt: t0}
	tests := []struct {
		name   string
		mutate func(*Issued)
	}{
		{"no domain", func(i *Issued) { i.Domain = "" }},
		{"no execution", func(i *Issued) { i.Execution = "" }},
		{"private key in PEM", func(i *Issued) { i.CertPEM += "-----BEGIN EC PRIVATE KEY-----" }},
		{"no key", func(i *Issued) { i.Key = SealedKey{} }},
		{"no serial", func(i *Issued) { i.Serial = "" }},
		{"no renewAt", func(i *Issued) { i.RenewAt = time.Time{} }},
	}
	if err := ok.validate(); err != nil {
		t.Fatalf("validate(valid) = %v", err)
	}
	for _, tt := range tests {
		in := ok
		tt.mutate(&in)
		if err := in.validate(); err == nil {
			t.Errorf("validate(%s) = nil, want an error", tt.name)
		}
	}
}

func TestClassifySaveConflict(t *testing.T) {
	s := New(nil, "tbl")
	in := Issued{Domain: "a.example", Execution: "exec-1", Serial: "0ABC", NotBefore: t0}
	tests := []struct {
		name string
		old  map[string]types.AttributeValue
		want error
	}{
		{"missing", nil, ErrNotFound},
		{"retired", map[string]types.AttributeValue{table.AttrStatus: table.S("retired"), table.AttrSerial: table.S("0abc")}, ErrRetired},
		{"same serial", map[string]types.AttributeValue{table.AttrStatus: table.S("active"), table.AttrSerial: table.S("0abc")}, nil},
		{"other execution", map[string]types.AttributeValue{table.AttrStatus: table.S("pending"), table.AttrExecution: table.S("exec-2")}, ErrSuperseded},
		{"newer stored", map[string]types.AttributeValue{table.AttrStatus: table.S("active"), table.AttrExecution: table.S("exec-1"), table.AttrSerial: table.S("0def"), table.AttrNotBefore: table.T(t0.Add(time.Hour))}, ErrStale},
	}
	for _, tt := range tests {
		if err := s.classifySaveConflict(in, tt.old); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("classifySaveConflict(%s) = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestTransactionFailure(t *testing.T) {
	old := map[string]types.AttributeValue{table.AttrStatus: table.S("active")}
	tests := []struct {
		name                   string
		reasons                []types.CancellationReason
		wantOld                bool
		wantCond, wantConflict bool
	}{
		{"condition on cert", []types.CancellationReason{{Code: aws.String("ConditionalCheckFailed"), Item: old}, {Code: aws.String("None")}}, true, true, false},
		{"conflict", []types.CancellationReason{{Code: aws.String("TransactionConflict")}, {Code: aws.String("None")}}, false, false, true},
		{"condition elsewhere", []types.CancellationReason{{Code: aws.String("None")}, {Code: aws.String("ConditionalCheckFailed")}}, false, false, false},
	}
	for _, tt := range tests {
		err := error(&types.TransactionCanceledException{CancellationReasons: tt.reasons})
		gotOld, cond, conflict := transactionFailure(err, 0)
		if (gotOld != nil) != tt.wantOld || cond != tt.wantCond || conflict != tt.wantConflict {
			t.Errorf("transactionFailure(%s) = %v, %v, %v, want old %v, %v, %v", tt.name, gotOld, cond, conflict, tt.wantOld, tt.wantCond, tt.wantConflict)
		}
	}
}

func TestCursor(t *testing.T) {
	lek := map[string]types.AttributeValue{table.AttrPK: table.S("DOMAIN#b.example"), table.AttrSK: table.S("CERT"), table.AttrStatus: table.S("active"), table.AttrDomain: table.S("b.example")}
	cur, err := encodeCursor(lek)
	if err != nil {
		t.Fatal(err)
	}
	valid := func(k map[string]string) bool {
		return k[table.AttrStatus] == "active" && k[table.AttrPK] == table.DomainPK(k[table.AttrDomain])
	}
	names := []string{table.AttrPK, table.AttrSK, table.AttrStatus, table.AttrDomain}
	got, err := decodeCursor(cur, valid, names...)
	if err != nil || !reflect.DeepEqual(got, lek) {
		t.Errorf("decodeCursor(encodeCursor(k)) = %v, %v, want %v", got, err, lek)
	}
	other, _ := encodeCursor(map[string]types.AttributeValue{table.AttrPK: table.S("DOMAIN#b.example"), table.AttrSK: table.S("CERT"), table.AttrStatus: table.S("failed"), table.AttrDomain: table.S("b.example")})
	extra, _ := encodeCursor(map[string]types.AttributeValue{table.AttrPK: table.S("DOMAIN#b.example"), table.AttrSK: table.S("CERT"), table.AttrStatus: table.S("active"), table.AttrDomain: table.S("b.example"), "x": table.S("y")})
	for _, bad := range []string{"!!!", "bm90IGpzb24", other, extra} {
		if _, err := decodeCursor(bad, valid, names...); !errors.Is(err, ErrBadCursor) {
			t.Errorf("decodeCursor(%q) error = %v, want ErrBadCursor", bad, err)
		}
	}
	if got, err := decodeCursor("", valid, names...); got != nil || err != nil {
		t.Errorf("decodeCursor(\"\") = %v, %v, want nil, nil", got, err)
	}
}
