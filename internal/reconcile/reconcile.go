// Package reconcile keeps every domain that has work left attached to a
// running execution: the one mechanism behind the renewal trigger, the
// sweeper and a platform's repeated request. A domain's item names the
// execution that owns it (certstore.Certificate.Execution) and a time by
// which that execution should have acted (DueAt); when that time has
// passed, the reconciler asks Step Functions whether the execution still
// runs. If it does, it is given more time; if it never started, ended
// without an outcome (postponed, interrupted) or is gone (its engine lost
// it), the next run is claimed and started under its deterministic name,
// so a restart made twice starts once.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/execution"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/logging"
	"github.com/certflow/certflow/internal/notify"
)

// Store claims a domain for a new run and gives a running execution more
// time. *certstore.Store implements it.
type Store interface {
	Claim(ctx context.Context, cur *certstore.Certificate, now time.Time) (*certstore.Certificate, error)
	Await(ctx context.Context, domain, execution string, until time.Time) error
}

// Starter starts an execution under a name; an execution of that name that
// exists already is success. *execution.Starter implements it.
type Starter interface {
	Start(ctx context.Context, name string, input any) (arn string, alreadyStarted bool, err error)
}

// Describer tells how an execution is doing. *sfn.Client implements it.
type Describer interface {
	DescribeExecution(ctx context.Context, in *sfn.DescribeExecutionInput, optFns ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
}

// Offboarder forgets a domain that moved away from the platform once its
// time has come (certstore.ErrStale when it has not, or the domain was
// requested again). *certstore.Store implements it.
type Offboarder interface {
	Offboard(ctx context.Context, domain string, now time.Time) (*certstore.Certificate, error)
}

// Publisher tells the platform. *notify.Publisher implements it.
type Publisher interface {
	Publish(ctx context.Context, ev notify.Event) error
}

var (
	_ Store      = (*certstore.Store)(nil)
	_ Starter    = (*execution.Starter)(nil)
	_ Offboarder = (*certstore.Store)(nil)
	_ Publisher  = (*notify.Publisher)(nil)
)

// Outcome is what Reconcile did.
type Outcome string

// Outcomes of Reconcile.
const (
	Started   Outcome = "started"   // no execution owned the domain: the next run was claimed and started
	Running   Outcome = "running"   // the owning execution runs: it was given more time
	Restarted Outcome = "restarted" // the owning execution is gone or ended without an outcome: the next run was claimed and started
	Skipped   Outcome = "skipped"   // someone else claimed the domain meanwhile, or it has no work left
	// Offboarded: the domain had moved away from the platform for longer
	// than the store's offboarding period and was retired.
	Offboarded Outcome = "offboarded"
)

// Reconciler reconciles domains. The zero value of Now means time.Now.
type Reconciler struct {
	Store      Store
	Starter    Starter
	Executions Describer
	// StateMachineARN is the issuance state machine's ARN, from which an
	// execution's ARN is derived from its name.
	StateMachineARN string
	// Offboarder and Publisher, when set, offboard domains that moved away
	// (the sweeper's); without them such domains are skipped.
	Offboarder Offboarder
	Publisher  Publisher
	Now        func() time.Time
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Reconcile looks at the domain whose item is c (read from the table or the
// ByDue index) and makes sure an execution works on it; by says who asks
// (flow.StartedByTimer, flow.StartedBySweeper, or the API's request),
// recorded in the input of an execution it starts.
func (r *Reconciler) Reconcile(ctx context.Context, c *certstore.Certificate, by string) (Outcome, error) {
	if c.Status == certstore.StatusQuarantined && r.Offboarder != nil {
		return r.offboard(ctx, c)
	}
	if !c.Status.Working() {
		return Skipped, nil
	}
	if c.Execution != "" {
		running, err := r.running(ctx, c.Execution)
		if err != nil {
			return "", fmt.Errorf("reconcile %q: %w", c.Domain, err)
		}
		if running {
			err := r.Store.Await(ctx, c.Domain, c.Execution, r.now())
			if ignorable(err) {
				return Skipped, nil
			}
			if err != nil {
				return "", fmt.Errorf("reconcile %q: %w", c.Domain, err)
			}
			return Running, nil
		}
	}
	claimed, err := r.Store.Claim(ctx, c, r.now())
	if ignorable(err) {
		return Skipped, nil
	}
	if err != nil {
		return "", fmt.Errorf("reconcile %q: %w", c.Domain, err)
	}
	if err := r.Start(ctx, claimed, by); err != nil {
		return "", fmt.Errorf("reconcile %q: %w", c.Domain, err)
	}
	if c.Execution == "" {
		return Started, nil
	}
	return Restarted, nil
}

// offboard retires a domain that moved away and is due to be offboarded,
// and publishes Domain Offboarded (best effort: the domain is retired).
func (r *Reconciler) offboard(ctx context.Context, c *certstore.Certificate) (Outcome, error) {
	prev, err := r.Offboarder.Offboard(ctx, c.Domain, r.now())
	if ignorable(err) {
		return Skipped, nil
	}
	if err != nil {
		return "", fmt.Errorf("reconcile %q: %w", c.Domain, err)
	}
	if r.Publisher != nil {
		ev := notify.Event{Type: notify.TypeOffboarded, Domain: prev.Domain, Serial: prev.Serial, ReasonCode: prev.QuarantineReason, Version: prev.Version + 1}
		if err := r.Publisher.Publish(ctx, ev); err != nil {
			logging.From(ctx).ErrorContext(ctx, "publish Domain Offboarded", "domain", prev.Domain, "error", err.Error())
		}
	}
	return Offboarded, nil
}

// ignorable reports whether a store error means there is nothing to do:
// someone else claimed the domain, or it has no work left.
func ignorable(err error) bool {
	return errors.Is(err, certstore.ErrStale) || errors.Is(err, certstore.ErrSuperseded) ||
		errors.Is(err, certstore.ErrQuarantined) || errors.Is(err, certstore.ErrRetired) || errors.Is(err, certstore.ErrNotFound)
}

// Start starts the execution c names (after certstore's Request or Claim),
// with the input its item calls for: an issuance of the generation, or the
// renewal of the served certificate with ARI "replaces".
func (r *Reconciler) Start(ctx context.Context, c *certstore.Certificate, by string) error {
	in := Input(c, by)
	if _, _, err := r.Starter.Start(ctx, c.Execution, in); err != nil {
		return fmt.Errorf("start %s: %w", c.Execution, err)
	}
	return nil
}

// Input is the execution input for the execution c names: on the primary
// CA, with the names besides the domain as the platform requested them,
// the domain's validation method, records and profile,
// and for a renewal the ARI "replaces" of a certificate the primary
// issued.
func Input(c *certstore.Certificate, by string) flow.Input {
	sans := make([]string, 0, len(c.SANs))
	for _, san := range c.SANs {
		if san != c.Domain {
			sans = append(sans, san)
		}
	}
	in := flow.Input{Domain: c.Domain, SANs: sans, Reason: flow.ReasonRequest, Generation: c.Generation, Execution: c.Execution, CA: flow.CAPrimary,
		Validation: c.Validation, Records: c.Records, Profile: c.Profile}
	if c.Status == certstore.StatusActive && c.Serial != "" {
		in.Reason = flow.ReasonRenewal
		in.ReplacesSerial = c.Serial
		in.StartedBy = by
		// Every run starts on the primary CA; ARI "replaces" names a
		// certificate of the CA it is sent to, so a certificate the
		// fallback issued is renewed as a new order.
		if c.CA == "" || c.CA == flow.CAPrimary {
			in.Replaces = c.ARICertID
		}
	}
	return in
}

// running reports whether the execution called name runs. One that does not
// exist (never started, or lost with its engine) does not.
func (r *Reconciler) running(ctx context.Context, name string) (bool, error) {
	arn, err := execution.ExecutionARN(r.StateMachineARN, name)
	if err != nil {
		return false, err
	}
	out, err := r.Executions.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	var gone *sfntypes.ExecutionDoesNotExist
	if errors.As(err, &gone) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("describe execution %s: %w", name, err)
	}
	return out.Status == sfntypes.ExecutionStatusRunning || out.Status == sfntypes.ExecutionStatusPendingRedrive, nil
}
