package flow

import (
	"regexp"
	"testing"
)

var nameRE = regexp.MustCompile(`^[a-z0-9-]{1,80}$`)

func TestNames(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"issue", IssueName("a.example", 1, 1), "issue-" + digest("a.example|1|1")},
		{"renew", RenewName("a.example", "0abc", 1), "renew-" + digest("a.example|0abc|1")},
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
	for _, pair := range [][2]string{
		{IssueName("a.example", 1, 1), IssueName("a.example", 2, 1)},
		{IssueName("a.example", 1, 1), IssueName("a.example", 1, 2)},
		{RenewName("a.example", "0abc", 1), RenewName("a.example", "0abd", 1)},
		{RenewName("a.example", "0abc", 1), RenewName("a.example", "0abc", 2)},
	} {
		if pair[0] == pair[1] {
			t.Errorf("two starts share the name %s", pair[0])
		}
	}
}

// TestKnownDigest pins the names to digests computed outside Go, so a
// change of the hashed string (separator, number format) cannot pass
// unnoticed:
// echo -n 'a.example|1|1' | sha256sum | cut -c1-40
// echo -n 'a.example|0abc|1' | sha256sum | cut -c1-40
func TestKnownDigest(t *testing.T) {
	if got, want := IssueName("a.example", 1, 1), "issue-5467b0e368a5e40d9c42c2469c57fbc23a0dd62c"; got != want {
		t.Errorf("IssueName(a.example, 1, 1) = %q, want %q", got, want)
	}
	if got, want := RenewName("a.example", "0abc", 1), "renew-6e1cf34a6f5d56cb1462a74ed3ad8c5c68e69395"; got != want {
		t.Errorf("RenewName(a.example, 0abc, 1) = %q, want %q", got, want)
	}
}
