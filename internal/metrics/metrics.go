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
	// CAUnavailable counts attempts that failed because the CA could not
	// be reached or answered with an error of its own.
	CAUnavailable = "CAUnavailable"
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

// ServiceDimension is the dimension every metric carries, with the value
// Service: the alarms of template.yaml select on it.
const (
	ServiceDimension = "Service"
	Service          = "certflow"
)

// Emit writes one EMF document holding the metric name with value and unit,
// in two dimension sets: {Service} alone, which the alarms watch, and
// {Service} with every key of dims (when there are any), for the break-down.
// Dimension values must be of low cardinality: never a domain name. A
// dimension named like the metric, "_aws" or Service is rejected, since
// all live at the root of the same JSON object.
func (e *Emitter) Emit(name string, value float64, unit string, dims map[string]string) error {
	if _, ok := dims[name]; ok || name == "_aws" {
		return fmt.Errorf("emit metric %q: name collides with a dimension", name)
	}
	for _, reserved := range []string{"_aws", ServiceDimension} {
		if _, ok := dims[reserved]; ok {
			return fmt.Errorf("emit metric %q: dimension %q is reserved", name, reserved)
		}
	}
	sets := [][]string{{ServiceDimension}}
	if len(dims) > 0 {
		sets = append(sets, append([]string{ServiceDimension}, slices.Sorted(maps.Keys(dims))...))
	}
	doc := make(map[string]any, len(dims)+3)
	for k, v := range dims {
		doc[k] = v
	}
	doc[ServiceDimension] = Service
	doc[name] = value
	doc["_aws"] = metadata{
		Timestamp: e.now().UnixMilli(),
		CloudWatchMetrics: []metricDirective{{
			Namespace:  e.namespace,
			Dimensions: sets,
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
