package ownership

import (
	"reflect"
	"regexp"
	"testing"
)

func TestRecordName(t *testing.T) {
	tests := []struct{ name, want string }{
		{"shop.customer.example", "_certflow-challenge.shop.customer.example"},
		{"*.shop.customer.example", "_certflow-challenge.shop.customer.example"},
		{"xn--bcher-kva.example", "_certflow-challenge.xn--bcher-kva.example"},
	}
	for _, tt := range tests {
		if got := RecordName(tt.name); got != tt.want {
			t.Errorf("RecordName(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestRecords(t *testing.T) {
	got := Records([]string{"shop.customer.example", "*.shop.customer.example", "www.shop.customer.example"}, "tok")
	want := []Record{
		{Name: "_certflow-challenge.shop.customer.example", Type: "TXT", Value: "tok"},
		{Name: "_certflow-challenge.www.shop.customer.example", Type: "TXT", Value: "tok"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Records() = %+v, want %+v", got, want)
	}
}

func TestNewToken(t *testing.T) {
	shape := regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)
	seen := map[string]bool{}
	for range 100 {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !shape.MatchString(tok) {
			t.Fatalf("NewToken() = %q, want 22 base64url characters", tok)
		}
		if seen[tok] {
			t.Fatalf("NewToken() repeated %q", tok)
		}
		seen[tok] = true
	}
}
