package preflight

import (
	"context"
	"fmt"

	"github.com/certflow/certflow/internal/failure"
)

// Input is the preflight task's input: the execution input of the issuance
// state machine (other members are ignored).
type Input struct {
	Domain string   `json:"domain"`
	SANs   []string `json:"sans,omitempty"`
	// Execution is the Step Functions execution name, for logs.
	Execution string `json:"execution,omitempty"`
}

// Output is the preflight task's result.
type Output struct {
	Domain  string   `json:"domain"`
	Checked []string `json:"checked"` // every name checked, domain first
}

// Handle checks the domain and each SAN in turn and stops at the first
// failure, which names the failing name.
func (c *Checker) Handle(ctx context.Context, in Input) (Output, error) {
	domain := normalizeName(in.Domain)
	if domain == "" {
		return Output{}, &failure.InvalidInputError{Message: "domain is required"}
	}
	names := []string{domain}
	seen := map[string]bool{domain: true}
	for _, s := range in.SANs {
		s = normalizeName(s)
		if s != "" && !seen[s] {
			seen[s] = true
			names = append(names, s)
		}
	}
	for _, n := range names {
		if err := c.Check(ctx, n); err != nil {
			return Output{}, fmt.Errorf("preflight %q: %w", n, err)
		}
	}
	return Output{Domain: domain, Checked: names}, nil
}
