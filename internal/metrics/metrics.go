// Package metrics writes CloudWatch metrics in the Embedded Metric Format
// (EMF): one JSON document per line on a Lambda function's standard output,
// from which CloudWatch Logs extracts the metric without any API call.
package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"
)

// Namespace is the CloudWatch namespace of certflow's metrics.
const Namespace = "certflow"

// Names of the metrics certflow emits.
const (
	CertificatesIssued  = "CertificatesIssued"
	CertificatesRenewed = "CertificatesRenewed"
	IssuanceFailures    = "IssuanceFailures"
	DomainsQuarantined  = "DomainsQuarantined"
	MinDaysToExpiry     = "MinDaysToExpiry"
)

// CloudWatch units used by certflow's metrics.
const (
	UnitCount   = "Count"
	UnitSeconds = "Seconds"
	UnitNone    = "None"
)

// Emitter writes EMF documents to w. It is safe for concurrent use.
type Emitter struct {
	w         io.Writer
	namespace string
	now       func() time.Time

	mu sync.Mutex // serialises writes so documents never interleave
}

// New returns an Emitter writing to w (os.Stdout in a Lambda function) in
// namespace. A nil now means time.Now.
func New(w io.Writer, namespace string, now func() time.Time) *Emitter {
	if now == nil {
		now = time.Now
	}
	return &Emitter{w: w, namespace: namespace, now: now}
}

type metricDefinition struct {
	Name string `json:"Name"`
	Unit string `json:"Unit,omitempty"`
}

type metricDirective struct {
	Namespace  string             `json:"Namespace"`
	Dimensions [][]string         `json:"Dimensions"`
	Metrics    []metricDefinition `json:"Metrics"`
}

type metadata struct {
	Timestamp         int64             `json:"Timestamp"`
	CloudWatchMetrics []metricDirective `json:"CloudWatchMetrics"`
}

// Emit writes one EMF document holding the metric name with value and unit,
// dimensioned by dims (all keys form a single dimension set; no dims means a
// metric without dimensions). Dimension values must be of low cardinality:
// never a domain name. A dimension named like the metric or "_aws" is
// rejected, since both live at the root of the same JSON object.
func (e *Emitter) Emit(name string, value float64, unit string, dims map[string]string) error {
	if _, ok := dims[name]; ok || name == "_aws" {
		return fmt.Errorf("emit metric %q: name collides with a dimension", name)
	}
	if _, ok := dims["_aws"]; ok {
		return fmt.Errorf("emit metric %q: dimension %q is reserved", name, "_aws")
	}
	keys := slices.Sorted(maps.Keys(dims))
	if keys == nil {
		keys = []string{}
	}
	doc := make(map[string]any, len(dims)+2)
	for k, v := range dims {
		doc[k] = v
	}
	doc[name] = value
	doc["_aws"] = metadata{
		Timestamp: e.now().UnixMilli(),
		CloudWatchMetrics: []metricDirective{{
			Namespace:  e.namespace,
			Dimensions: [][]string{keys},
			Metrics:    []metricDefinition{{Name: name, Unit: unit}},
		}},
	}
	b, err := json.Marshal(doc) // map keys are sorted: stable output
	if err != nil {
		return fmt.Errorf("emit metric %q: %w", name, err)
	}
	b = append(b, '\n')
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.w.Write(b); err != nil {
		return fmt.Errorf("emit metric %q: %w", name, err)
	}
	return nil
}
