package acme

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-acme/lego/v4/certcrypto"
)

func TestConfigFromEnv(t *testing.T) {
	roots := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(roots, []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string // substring naming the variable
	}{
		{name: "defaults", env: map[string]string{}, want: Config{DirectoryURL: DirectoryProduction, KeyType: certcrypto.EC256}},
		{name: "production", env: map[string]string{EnvDirectory: "production"}, want: Config{DirectoryURL: DirectoryProduction, KeyType: certcrypto.EC256}},
		{name: "staging rsa", env: map[string]string{EnvDirectory: "staging", EnvKeyType: "rsa2048"}, want: Config{DirectoryURL: DirectoryStaging, KeyType: certcrypto.RSA2048}},
		{
			name: "full",
			env: map[string]string{
				EnvDirectory: "https://127.0.0.1:14000/dir", EnvEmail: "ops@customer.example", EnvProfile: "shortlived",
				EnvCARoots: roots, EnvEABKID: "kid-1", EnvEABHMAC: "aGVsbG8", EnvKeyType: "EC256",
			},
			want: Config{
				DirectoryURL: "https://127.0.0.1:14000/dir", Email: "ops@customer.example", Profile: "shortlived",
				CARoots: roots, EAB: &EAB{KID: "kid-1", HMAC: "aGVsbG8"}, KeyType: certcrypto.EC256,
			},
		},
		{name: "http directory", env: map[string]string{EnvDirectory: "http://ca.test/dir"}, wantErr: EnvDirectory},
		{name: "bogus directory", env: map[string]string{EnvDirectory: "prod"}, wantErr: EnvDirectory},
		{name: "bad key type", env: map[string]string{EnvKeyType: "ed25519"}, wantErr: EnvKeyType},
		{name: "kid without hmac", env: map[string]string{EnvEABKID: "kid"}, wantErr: EnvEABHMAC},
		{name: "hmac without kid", env: map[string]string{EnvEABHMAC: "x"}, wantErr: EnvEABKID},
		{name: "missing roots", env: map[string]string{EnvCARoots: "/nonexistent/roots.pem"}, wantErr: EnvCARoots},
		{name: "bad email", env: map[string]string{EnvEmail: "ops"}, wantErr: EnvEmail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{EnvDirectory, EnvEmail, EnvEABKID, EnvEABHMAC, EnvProfile, EnvCARoots, EnvKeyType} {
				t.Setenv(k, tt.env[k])
			}
			got, err := ConfigFromEnv()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ConfigFromEnv() error = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ConfigFromEnv(): %v", err)
			}
			if got.DirectoryURL != tt.want.DirectoryURL || got.Email != tt.want.Email || got.Profile != tt.want.Profile ||
				got.CARoots != tt.want.CARoots || got.KeyType != tt.want.KeyType || (got.EAB == nil) != (tt.want.EAB == nil) ||
				(got.EAB != nil && *got.EAB != *tt.want.EAB) {
				t.Errorf("ConfigFromEnv() = %+v, want %+v", got, tt.want)
			}
		})
	}
}
