package awsconfig

import (
	"context"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

func TestLoad(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	cfg, err := Load(context.Background())
	if err != nil {
		t.Fatalf("Load() error: %v", err)
	}
	if got := cfg.Retryer().MaxAttempts(); got != MaxAttempts {
		t.Errorf("Retryer().MaxAttempts() = %d, want %d", got, MaxAttempts)
	}
	if cfg.Region != "us-east-1" {
		t.Errorf("Region = %q, want us-east-1", cfg.Region)
	}
}

// TestEmptyEndpointMeansUnset: template.yaml declares every
// AWS_ENDPOINT_URL_<SERVICE> that env.json sets (SAM overrides nothing
// else), empty in AWS; the SDK must then use the service's own endpoint.
func TestEmptyEndpointMeansUnset(t *testing.T) {
	const local = "http://127.0.0.1:8000"
	tests := []struct {
		name  string
		value *string // nil: unset
		want  string  // "" means the SDK's endpoint resolution
	}{
		{name: "unset"},
		{name: "empty", value: aws.String("")},
		{name: "set", value: aws.String(local), want: local},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("AWS_REGION", "us-east-1")
			t.Setenv("AWS_CONFIG_FILE", "/dev/null")
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
			for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"} {
				t.Setenv(k, "")
				if tt.value == nil {
					os.Unsetenv(k) // t.Setenv restores it
				} else {
					t.Setenv(k, *tt.value)
				}
			}
			cfg, err := Load(context.Background())
			if err != nil {
				t.Fatalf("Load() error: %v", err)
			}
			got := aws.ToString(dynamodb.NewFromConfig(cfg).Options().BaseEndpoint)
			if got != tt.want {
				t.Errorf("DynamoDB BaseEndpoint with AWS_ENDPOINT_URL(_DYNAMODB) %s = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}
