package wiring

import (
	"testing"
	"time"

	"github.com/certflow/certflow/internal/domain"
)

func TestNamePolicy(t *testing.T) {
	tests := []struct {
		value   string
		want    bool
		wantErr bool
	}{
		{value: "", want: false},
		{value: "false", want: false},
		{value: "true", want: true},
		{value: "1", want: true},
		{value: "yes", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Setenv(domain.EnvAllowTestingTLDs, tt.value)
			p, err := namePolicy()
			if (err != nil) != tt.wantErr || p.AllowTestingTLDs != tt.want {
				t.Errorf("namePolicy() with %q = %+v, %v; want AllowTestingTLDs %v, error %v", tt.value, p, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestNumericEnv(t *testing.T) {
	const name = "CERTFLOW_TEST_SETTING"
	tests := []struct {
		value   string
		wantInt int
		wantDur time.Duration
		intErr  bool
		durErr  bool
	}{
		{value: "", wantInt: 7, wantDur: time.Hour},
		{value: "20000", wantInt: 20000, durErr: true},
		{value: "90s", intErr: true, wantDur: 90 * time.Second},
		{value: "0", intErr: true, durErr: true},
		{value: "-5", intErr: true, durErr: true},
		{value: "-1h", intErr: true, durErr: true},
		{value: "ten", intErr: true, durErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Setenv(name, tt.value)
			n, err := intEnv(name, 7)
			if (err != nil) != tt.intErr || (err == nil && n != tt.wantInt) {
				t.Errorf("intEnv(%q) = %d, %v; want %d, error %v", tt.value, n, err, tt.wantInt, tt.intErr)
			}
			d, err := durationEnv(name, time.Hour)
			if (err != nil) != tt.durErr || (err == nil && d != tt.wantDur) {
				t.Errorf("durationEnv(%q) = %v, %v; want %v, error %v", tt.value, d, err, tt.wantDur, tt.durErr)
			}
		})
	}
}
