package validation

import (
	"reflect"
	"regexp"
	"testing"
)

func TestOwnership(t *testing.T) {
	tests := []struct{ name, want string }{
		{"shop.customer.example", "_certflow-challenge.shop.customer.example"},
		{"*.Shop.Customer.Example.", "_certflow-challenge.shop.customer.example"},
		{"xn--bcher-kva.example", "_certflow-challenge.xn--bcher-kva.example"},
	}
	for _, tt := range tests {
		if got := Ownership(tt.name, "tok"); got != (Record{Name: tt.want, Type: "TXT", Value: "tok"}) {
			t.Errorf("Ownership(%q) = %+v, want TXT %s", tt.name, got, tt.want)
		}
	}
	got := OwnershipRecords([]string{"shop.customer.example", "*.shop.customer.example", "www.shop.customer.example"}, "tok")
	want := []Record{
		{Name: "_certflow-challenge.shop.customer.example", Type: "TXT", Value: "tok"},
		{Name: "_certflow-challenge.www.shop.customer.example", Type: "TXT", Value: "tok"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("OwnershipRecords() = %+v, want %+v", got, want)
	}
}

func TestNewOwnershipToken(t *testing.T) {
	shape := regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)
	seen := map[string]bool{}
	for range 100 {
		tok, err := NewOwnershipToken()
		if err != nil {
			t.Fatal(err)
		}
		if !shape.MatchString(tok) || seen[tok] {
			t.Fatalf("NewOwnershipToken() = %q: want 22 base64url characters, never repeated", tok)
		}
		seen[tok] = true
	}
}
