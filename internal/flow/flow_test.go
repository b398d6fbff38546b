package flow

import (
	"regexp"
	"testing"
	"time"
)

var nameRE = regexp.MustCompile(`^[a-z0-9-]{1,80}$`)

func TestNames(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"issue", IssueName("a.example", 1), "issue-" + digest("a.example|1")},
		{"renew", RenewName("a.example", "0abc", at), "renew-" + digest("a.example|0abc|2026-05-01T10:00:00Z")},
		{"renew in another zone is the same instant", RenewName("a.example", "0abc", at.In(time.FixedZone("X", 3600))), "renew-" + digest("a.example|0abc|2026-05-01T10:00:00Z")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("name = %q, want %q", tt.got, tt.want)
			}
			if !nameRE.MatchString(tt.got) {
				t.Errorf("name %q is not 1-80 characters of [a-z0-9-]", tt.got)
			}
		})
	}
	if IssueName("a.example", 1) == IssueName("a.example", 2) {
		t.Error("IssueName ignores the generation")
	}
}

// TestKnownDigest pins the name to a digest computed outside Go, so a change
// of the hashed string (separator, number format) cannot pass unnoticed:
// echo -n 'a.example|1' | sha256sum | cut -c1-40
// echo -n 'a.example|0abc|2026-05-01T10:00:00Z' | sha256sum | cut -c1-40
func TestKnownDigest(t *testing.T) {
	const want = "issue-6f8150d5232c83f037ba6e0e821e42ff96dca018"
	if got := IssueName("a.example", 1); got != want {
		t.Errorf("IssueName(%q, 1) = %q, want %q", "a.example", got, want)
	}
	const wantRenew = "renew-0706d1561b338566097f0eb15b69c8f8ca567e0d"
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	if got := RenewName("a.example", "0abc", at); got != wantRenew {
		t.Errorf("RenewName(%q, %q, %v) = %q, want %q", "a.example", "0abc", at, got, wantRenew)
	}
}
