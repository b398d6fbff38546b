package budget

import (
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		spec    string
		limit   int
		window  time.Duration
		wantErr bool
	}{
		{"300/3h", 300, 3 * time.Hour, false},
		{" 10/1m ", 10, time.Minute, false},
		{"300", 0, 0, true},
		{"0/3h", 0, 0, true},
		{"-1/3h", 0, 0, true},
		{"x/3h", 0, 0, true},
		{"300/3", 0, 0, true},
		{"300/-3h", 0, 0, true},
	}
	for _, tt := range tests {
		l, w, err := ParseSpec(tt.spec)
		if (err != nil) != tt.wantErr || l != tt.limit || w != tt.window {
			t.Errorf("ParseSpec(%q) = %d, %v, %v, want %d, %v, error %v", tt.spec, l, w, err, tt.limit, tt.window, tt.wantErr)
		}
	}
}
