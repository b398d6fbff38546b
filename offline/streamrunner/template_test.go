package streamrunner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/certflow/certflow/offline/template"
)

func loadTemplate(t *testing.T, path string) *template.Template {
	t.Helper()
	tmpl, err := template.Load(path, template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func TestFromTemplate(t *testing.T) {
	tmpl := loadTemplate(t, filepath.Join("testdata", "template.yaml"))
	m, err := FromTemplate(tmpl, "Fn")
	if err != nil {
		t.Fatal(err)
	}
	if m.EventLogicalID != "Stream" || m.StreamResource != "Table" || m.StartingPosition != TrimHorizon || m.BatchSize != 7 ||
		m.MaximumBatchingWindow != 2*time.Second || !m.BisectBatchOnError || m.MaximumRetryAttempts != 3 ||
		!m.ReportBatchItemFailures || !strings.HasSuffix(m.OnFailureDestination, ":Queue") || len(m.Filters) != 2 {
		t.Errorf("FromTemplate(Fn) = %+v", m)
	}
	insertTimer := events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{
		Keys: map[string]events.DynamoDBAttributeValue{"sk": events.NewStringAttribute("TIMER")}}}
	insertCert := insertTimer
	insertCert.Change.Keys = map[string]events.DynamoDBAttributeValue{"sk": events.NewStringAttribute("CERT")}
	for _, tt := range []struct {
		rec  events.DynamoDBEventRecord
		want bool
	}{
		{events.DynamoDBEventRecord{EventName: "REMOVE"}, true},
		{insertTimer, true},
		{insertCert, false},
		{events.DynamoDBEventRecord{EventName: "MODIFY"}, false},
	} {
		if got, err := m.Filters.Match(tt.rec); err != nil || got != tt.want {
			t.Errorf("Filters.Match(%s %v) = %v, %v; want %v", tt.rec.EventName, tt.rec.Change.Keys, got, err, tt.want)
		}
	}

	d, err := FromTemplate(tmpl, "Defaults")
	if err != nil {
		t.Fatal(err)
	}
	if d.StreamResource != "Table" || d.BatchSize != DefaultBatchSize || d.MaximumRetryAttempts != -1 || d.ReportBatchItemFailures || len(d.Filters) != 0 {
		t.Errorf("FromTemplate(Defaults) = %+v, want Lambda's defaults", d)
	}
	for _, id := range []string{"BadPattern", "Missing", "Table"} {
		if _, err := FromTemplate(tmpl, id); err == nil {
			t.Errorf("FromTemplate(%s) error = nil, want an error", id)
		}
	}
}

// TestFromProjectTemplate reads the real template's renewal trigger mapping.
func TestFromProjectTemplate(t *testing.T) {
	path := filepath.Join("..", "..", "template.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Skip("no template.yaml")
	}
	m, err := FromTemplate(loadTemplate(t, path), "RenewalTriggerFunction")
	if err != nil {
		t.Fatal(err)
	}
	if !m.ReportBatchItemFailures || len(m.Filters) == 0 || m.StreamResource != "RenewalTimersTable" || m.OnFailureDestination == "" {
		t.Errorf("FromTemplate(RenewalTriggerFunction) = %+v", m)
	}
	for _, tt := range []struct {
		fixture string
		want    bool
	}{
		{"renewal-trigger.json", true},
		{"renewal-trigger-user-delete.json", false},
	} {
		rec := fixtureRecord(t, tt.fixture)
		if got, err := m.Filters.Match(rec); err != nil || got != tt.want {
			t.Errorf("template filter on %s = %v, %v; want %v", tt.fixture, got, err, tt.want)
		}
	}
}
