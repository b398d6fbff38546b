package streamrunner

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
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
	// written (an ARN, or the logical ID behind !GetAtt X.Arn / !Ref X).
	OnFailureDestination string
	Filters              Filters
	// RawPatterns are the filter patterns as written, for reports.
	RawPatterns []string
}

// DefaultBatchSize is Lambda's default batch size for DynamoDB streams.
const DefaultBatchSize = 100

// FromTemplate reads the DynamoDB event source mapping of the function
// functionLogicalID from a SAM template. CloudFormation tags (!GetAtt,
// !Ref, !Sub, ...) are read as their argument.
func FromTemplate(path, functionLogicalID string) (Mapping, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Mapping{}, fmt.Errorf("read template: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return Mapping{}, fmt.Errorf("parse template %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return Mapping{}, fmt.Errorf("parse template %s: empty document", path)
	}
	fn := lookup(doc.Content[0], "Resources", functionLogicalID)
	if fn == nil {
		return Mapping{}, fmt.Errorf("template %s: no resource %s", path, functionLogicalID)
	}
	evs := lookup(fn, "Properties", "Events")
	if evs == nil || evs.Kind != yaml.MappingNode {
		return Mapping{}, fmt.Errorf("template %s: %s has no Events", path, functionLogicalID)
	}
	for i := 0; i+1 < len(evs.Content); i += 2 {
		ev := evs.Content[i+1]
		if t := lookup(ev, "Type"); t == nil || t.Value != "DynamoDB" {
			continue
		}
		m, err := mappingFrom(lookup(ev, "Properties"))
		if err != nil {
			return Mapping{}, fmt.Errorf("template %s: %s.%s: %w", path, functionLogicalID, evs.Content[i].Value, err)
		}
		m.FunctionLogicalID = functionLogicalID
		m.EventLogicalID = evs.Content[i].Value
		return m, nil
	}
	return Mapping{}, fmt.Errorf("template %s: %s has no DynamoDB event", path, functionLogicalID)
}

func mappingFrom(p *yaml.Node) (Mapping, error) {
	m := Mapping{BatchSize: DefaultBatchSize, MaximumRetryAttempts: -1, StartingPosition: Latest}
	if p == nil {
		return m, fmt.Errorf("no Properties")
	}
	if s := lookup(p, "Stream"); s != nil {
		m.StreamResource = refTarget(s)
	}
	if s := lookup(p, "StartingPosition"); s != nil {
		m.StartingPosition = s.Value
	}
	var err error
	intOf := func(name string, dst *int) {
		if n := lookup(p, name); n != nil && err == nil {
			v, e := strconv.Atoi(n.Value)
			if e != nil {
				err = fmt.Errorf("%s: %q is not an integer", name, n.Value)
				return
			}
			*dst = v
		}
	}
	intOf("BatchSize", &m.BatchSize)
	intOf("MaximumRetryAttempts", &m.MaximumRetryAttempts)
	var window int
	intOf("MaximumBatchingWindowInSeconds", &window)
	if err != nil {
		return m, err
	}
	m.MaximumBatchingWindow = time.Duration(window) * time.Second
	if n := lookup(p, "BisectBatchOnFunctionError"); n != nil {
		m.BisectBatchOnError = n.Value == "true"
	}
	if n := lookup(p, "FunctionResponseTypes"); n != nil {
		for _, c := range n.Content {
			if c.Value == "ReportBatchItemFailures" {
				m.ReportBatchItemFailures = true
			}
		}
	}
	if d := lookup(p, "DestinationConfig", "OnFailure", "Destination"); d != nil {
		m.OnFailureDestination = refTarget(d)
	}
	if fs := lookup(p, "FilterCriteria", "Filters"); fs != nil {
		for _, f := range fs.Content {
			pn := lookup(f, "Pattern")
			if pn == nil {
				return m, fmt.Errorf("filter without Pattern")
			}
			raw := pn.Value
			if pn.Kind == yaml.MappingNode { // a pattern written as YAML
				var v any
				if err := pn.Decode(&v); err != nil {
					return m, fmt.Errorf("filter pattern: %w", err)
				}
				b, err := jsonOf(v)
				if err != nil {
					return m, err
				}
				raw = b
			}
			pat, err := ParsePattern(raw)
			if err != nil {
				return m, err
			}
			m.Filters = append(m.Filters, pat)
			m.RawPatterns = append(m.RawPatterns, raw)
		}
	}
	if !slices.Contains([]string{Latest, TrimHorizon}, m.StartingPosition) {
		return m, fmt.Errorf("StartingPosition %q: want LATEST or TRIM_HORIZON", m.StartingPosition)
	}
	if m.BatchSize < 1 || m.BatchSize > 10000 {
		return m, fmt.Errorf("BatchSize %d: want 1 to 10000", m.BatchSize)
	}
	return m, nil
}

// lookup walks mapping keys from n; nil when a key is missing.
func lookup(n *yaml.Node, path ...string) *yaml.Node {
	for _, key := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return n
}

// refTarget returns the resource an ARN-valued node refers to: the logical
// ID of !GetAtt X.Attr, !Ref X or {"Fn::GetAtt": [X, Attr]}, else the
// scalar itself.
func refTarget(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.ScalarNode && (n.Tag == "!GetAtt" || n.Tag == "!Ref"):
		before, _, _ := strings.Cut(n.Value, ".")
		return before
	case n.Kind == yaml.SequenceNode && n.Tag == "!GetAtt" && len(n.Content) > 0:
		return n.Content[0].Value
	case n.Kind == yaml.MappingNode:
		if g := lookup(n, "Fn::GetAtt"); g != nil {
			if g.Kind == yaml.SequenceNode && len(g.Content) > 0 {
				return g.Content[0].Value
			}
			before, _, _ := strings.Cut(g.Value, ".")
			return before
		}
		if r := lookup(n, "Ref"); r != nil {
			return r.Value
		}
	}
	return n.Value
}
