package retryafter

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"120", 2 * time.Minute, true},
		{" 3 ", 3 * time.Second, true},
		{"0", 0, true},
		{"-5", 0, false},
		{"99999999999", Max, true},
		{"Wed, 02 Dec 2026 10:05:00 GMT", 5 * time.Minute, true},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := Parse(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("Parse(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestClampOr(t *testing.T) {
	tests := []struct {
		d    time.Duration
		ok   bool
		def  time.Duration
		want time.Duration
	}{
		{0, true, time.Hour, Min},
		{48 * time.Hour, true, time.Hour, Max},
		{time.Minute, true, time.Hour, time.Minute},
		{0, false, DefaultRateLimit, time.Hour},
		{0, false, DefaultRenewalInfo, 6 * time.Hour},
	}
	for _, tt := range tests {
		if got := Or(tt.d, tt.ok, tt.def); got != tt.want {
			t.Errorf("Or(%v, %v, %v) = %v, want %v", tt.d, tt.ok, tt.def, got, tt.want)
		}
	}
}
