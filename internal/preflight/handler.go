package preflight

import (
	"context"
	"fmt"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/validation"
)

// Output is the preflight task's result.
type Output struct {
	Domain  string   `json:"domain"`
	Checked []string `json:"checked"` // every name checked, domain first
}

// Handle runs the Preflight state: it checks the domain and each SAN in
// turn, names normalised by package domain, and stops at the first
// failure, which names the failing name. CAA must allow the CA the
// execution orders from.
func (c *Checker) Handle(ctx context.Context, in flow.Input) (Output, error) {
	c = c.forCA(in.CAOrPrimary())
	primary, sans, err := c.cfg.Names.NormalizeAll(in.Domain, in.SANs)
	if err != nil {
		return Output{}, &failure.InvalidInputError{Message: err.Error(), Err: err}
	}
	names := append([]string{primary}, sans...)
	// A domain validated over DNS need not point at the edge (it may be
	// onboarded before cutover): its validation records must be there.
	byRecords := in.Validation != "" && in.Validation != validation.HTTP01
	if byRecords {
		if len(in.Records) == 0 {
			return Output{}, &failure.InvalidInputError{Message: fmt.Sprintf("%s validation without the records it relies on", in.Validation)}
		}
		if err := c.checkRecords(ctx, in.Records); err != nil {
			return Output{}, fmt.Errorf("preflight %q: %w", primary, err)
		}
	}
	for _, n := range names {
		if err := c.check(ctx, n, !byRecords); err != nil {
			return Output{}, fmt.Errorf("preflight %q: %w", n, err)
		}
	}
	return Output{Domain: primary, Checked: names}, nil
}
