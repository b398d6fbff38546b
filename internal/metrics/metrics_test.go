package metrics

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestEmitGolden(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 250_000_000, time.UTC) }
	tests := []struct {
		name   string
		metric string
		value  float64
		unit   string
		dims   map[string]string
	}{
		{"issued_no_dimensions", CertificatesIssued, 1, UnitCount, nil},
		{"failure_by_code", IssuanceFailures, 1, UnitCount, map[string]string{"Code": "challenge_failed"}},
		{"min_days_two_dimensions", MinDaysToExpiry, 27.5, UnitNone, map[string]string{"Stage": "prod", "Function": "sweeper"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := New(&buf, Namespace, now).Emit(tt.metric, tt.value, tt.unit, tt.dims); err != nil {
				t.Fatalf("Emit(%q) error: %v", tt.metric, err)
			}
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden file (run with -update to create it): %v", err)
			}
			if got := buf.String(); got != string(want) {
				t.Errorf("Emit(%q) wrote\n%s\nwant\n%s", tt.metric, got, want)
			}
		})
	}
}

// TestEmitStructure checks the document against the EMF rules rather than
// bytes: every metric and dimension named in the directive is a root member.
func TestEmitStructure(t *testing.T) {
	var buf bytes.Buffer
	e := New(&buf, "ns", func() time.Time { return time.UnixMilli(1700000000123) })
	if err := e.Emit("M", 3, UnitSeconds, map[string]string{"B": "b", "A": "a"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(buf.String(), "}\n") || strings.Count(buf.String(), "\n") != 1 {
		t.Fatalf("Emit wrote %q, want one JSON line", buf.String())
	}
	var doc struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		M    float64
		A, B string
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.AWS.Timestamp != 1700000000123 {
		t.Errorf("Timestamp = %d, want 1700000000123", doc.AWS.Timestamp)
	}
	d := doc.AWS.CloudWatchMetrics[0]
	if d.Namespace != "ns" || len(d.Dimensions) != 2 || strings.Join(d.Dimensions[0], ",") != "Service" || strings.Join(d.Dimensions[1], ",") != "Service,A,B" {
		t.Errorf("directive = %+v, want namespace ns and dimensions [[Service] [Service A B]]", d)
	}
	if doc.M != 3 || doc.A != "a" || doc.B != "b" || d.Metrics[0].Name != "M" || d.Metrics[0].Unit != UnitSeconds {
		t.Errorf("document = %+v, want M=3 Seconds with A=a B=b", doc)
	}
}

func TestEmitRejectsCollisions(t *testing.T) {
	e := New(&bytes.Buffer{}, "ns", nil)
	for _, dims := range []map[string]string{{"M": "x"}, {"_aws": "x"}, {"Service": "x"}} {
		if err := e.Emit("M", 1, UnitCount, dims); err == nil {
			t.Errorf("Emit(M, dims %v) = nil, want an error", dims)
		}
	}
}
