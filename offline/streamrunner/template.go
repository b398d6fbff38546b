package streamrunner

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/certflow/certflow/offline/template"
)

// Starting positions of a mapping.
const (
	Latest      = "LATEST"
	TrimHorizon = "TRIM_HORIZON"
)

// Mapping is a DynamoDB event source mapping as template.yaml declares it
// for a function (an Events entry of Type DynamoDB). Zero values mean
// Lambda's defaults, as noted.
type Mapping struct {
	FunctionLogicalID string
	EventLogicalID    string
	// StreamResource is the logical ID of the table whose stream feeds the
	// function (from Stream: !GetAtt Table.StreamArn), when it can be told.
	StreamResource   string
	StartingPosition string // LATEST or TRIM_HORIZON
	BatchSize        int    // default 100
	// MaximumBatchingWindow is how long records are gathered before a
	// batch smaller than BatchSize is delivered; default 0.
	MaximumBatchingWindow   time.Duration
	ReportBatchItemFailures bool // FunctionResponseTypes has ReportBatchItemFailures
	BisectBatchOnError      bool
	// MaximumRetryAttempts is the number of retries of a failed batch; -1
	// (Lambda's default) retries until the records expire, here forever.
	MaximumRetryAttempts int
	// OnFailureDestination is DestinationConfig.OnFailure.Destination as
	// resolved (an offline ARN).
	OnFailureDestination string
	Filters              Filters
	// RawPatterns are the filter patterns as written, for reports.
	RawPatterns []string
}

// DefaultBatchSize is Lambda's default batch size for DynamoDB streams.
const DefaultBatchSize = 100

// FromTemplate returns the DynamoDB event source mapping of the function
// functionLogicalID of t.
func FromTemplate(t *template.Template, functionLogicalID string) (Mapping, error) {
	fns, err := t.Functions()
	if err != nil {
		return Mapping{}, err
	}
	fn, ok := fns[functionLogicalID]
	if !ok {
		return Mapping{}, fmt.Errorf("template %s: no function %s", t.Path(), functionLogicalID)
	}
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for k := range fn.Events {
			if !yield(k) {
				return
			}
		}
	}) {
		ev := fn.Events[id]
		if ev.Type != "DynamoDB" {
			continue
		}
		m, err := mappingFrom(ev.Properties)
		if err != nil {
			return Mapping{}, fmt.Errorf("template %s: %s.%s: %w", t.Path(), functionLogicalID, id, err)
		}
		m.FunctionLogicalID = functionLogicalID
		m.EventLogicalID = id
		return m, nil
	}
	return Mapping{}, fmt.Errorf("template %s: %s has no DynamoDB event", t.Path(), functionLogicalID)
}

// eventProperties are the properties of a DynamoDB event, as goformation
// resolves them.
type eventProperties struct {
	Stream                         string
	StartingPosition               string
	BatchSize                      *int
	MaximumBatchingWindowInSeconds int
	BisectBatchOnFunctionError     bool
	MaximumRetryAttempts           *int
	FunctionResponseTypes          []string
	DestinationConfig              struct {
		OnFailure struct{ Destination string }
	}
	FilterCriteria struct {
		Filters []struct{ Pattern json.RawMessage }
	}
}

func mappingFrom(raw json.RawMessage) (Mapping, error) {
	m := Mapping{BatchSize: DefaultBatchSize, MaximumRetryAttempts: -1, StartingPosition: Latest}
	var p eventProperties
	if err := json.Unmarshal(raw, &p); err != nil {
		return m, fmt.Errorf("properties: %w", err)
	}
	if id, ok := template.TableOfStream(p.Stream); ok {
		m.StreamResource = id
	}
	if p.StartingPosition != "" {
		m.StartingPosition = p.StartingPosition
	}
	if p.BatchSize != nil {
		m.BatchSize = *p.BatchSize
	}
	if p.MaximumRetryAttempts != nil {
		m.MaximumRetryAttempts = *p.MaximumRetryAttempts
	}
	m.MaximumBatchingWindow = time.Duration(p.MaximumBatchingWindowInSeconds) * time.Second
	m.BisectBatchOnError = p.BisectBatchOnFunctionError
	m.ReportBatchItemFailures = slices.Contains(p.FunctionResponseTypes, "ReportBatchItemFailures")
	m.OnFailureDestination = p.DestinationConfig.OnFailure.Destination
	for _, f := range p.FilterCriteria.Filters {
		if len(f.Pattern) == 0 {
			return m, fmt.Errorf("filter without Pattern")
		}
		// A pattern is a JSON string, or an object when written as YAML.
		var s string
		raw := string(f.Pattern)
		if json.Unmarshal(f.Pattern, &s) == nil {
			raw = s
		}
		pat, err := ParsePattern(raw)
		if err != nil {
			return m, err
		}
		m.Filters = append(m.Filters, pat)
		m.RawPatterns = append(m.RawPatterns, raw)
	}
	if !slices.Contains([]string{Latest, TrimHorizon}, m.StartingPosition) {
		return m, fmt.Errorf("StartingPosition %q: want LATEST or TRIM_HORIZON", m.StartingPosition)
	}
	if m.BatchSize < 1 || m.BatchSize > 10000 {
		return m, fmt.Errorf("BatchSize %d: want 1 to 10000", m.BatchSize)
	}
	return m, nil
}
