// Package audit reads what the offline system did from the places that
// cannot be fooled by our own logs: the certificate table, the Step
// Functions engine's executions and histories, and the orders the CA saw
// (through caproxy). The scale and chaos runs judge their invariants from
// it.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"golang.org/x/sync/errgroup"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/table"
	"github.com/certflow/certflow/offline/caproxy"
)

// Domain is one certificate item as the table holds it.
type Domain struct {
	Name             string
	Status           certstore.Status
	Serial           string
	NotAfter         time.Time
	RenewAt          time.Time
	QuarantineReason string
	Execution        string
	HasKey           bool
}

// Domains reads every certificate item (a Scan: this is a test harness).
func Domains(ctx context.Context, db *dynamodb.Client, tableName string) (map[string]Domain, error) {
	out := map[string]Domain{}
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{
		TableName:                 aws.String(tableName),
		ConsistentRead:            aws.Bool(true),
		FilterExpression:          aws.String("#sk = :cert"),
		ExpressionAttributeNames:  map[string]string{"#sk": table.AttrSK},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":cert": table.S(table.SKCert)},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", tableName, err)
		}
		for _, item := range page.Items {
			r := table.NewReader(item)
			d := Domain{
				Name: r.S(table.AttrDomain), Status: certstore.Status(r.S(table.AttrStatus)), Serial: r.S(table.AttrSerial),
				NotAfter: r.T(table.AttrNotAfter), RenewAt: r.T(table.AttrRenewAt), QuarantineReason: r.S(table.AttrQuarantineReason), Execution: r.S(table.AttrExecution),
			}
			_, d.HasKey = item[table.AttrKeyCiphertext]
			out[d.Name] = d
		}
	}
	return out, nil
}

// DomainSide reports whether a quarantine reason is evidence about the
// domain (not pointed, CAA, challenge, rejected, paused), as opposed to a
// fault of the CA or of certflow.
func DomainSide(reason string) bool { return failure.CountsAgainstDomain(reason) }

// Executions lists the executions of the state machine, by status.
func Executions(ctx context.Context, c *sfn.Client, stateMachineARN string) (map[sfntypes.ExecutionStatus][]sfntypes.ExecutionListItem, error) {
	out := map[sfntypes.ExecutionStatus][]sfntypes.ExecutionListItem{}
	p := sfn.NewListExecutionsPaginator(c, &sfn.ListExecutionsInput{StateMachineArn: aws.String(stateMachineARN), MaxResults: 1000})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list executions: %w", err)
		}
		for _, e := range page.Executions {
			out[e.Status] = append(out[e.Status], e)
		}
	}
	return out, nil
}

// Run is what an execution's history says: the states it entered (the
// state transitions Step Functions bills) and the last of them.
type Run struct {
	Transitions int
	Last        string
	// KeyLeaks counts history events carrying a PEM private key (in an
	// input, an output, an error): there must be none.
	KeyLeaks int
}

// Runs reads the history of each execution, by execution name.
func Runs(ctx context.Context, c *sfn.Client, executions []sfntypes.ExecutionListItem) (map[string]Run, error) {
	runs := make([]Run, len(executions))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, e := range executions {
		g.Go(func() error {
			p := sfn.NewGetExecutionHistoryPaginator(c, &sfn.GetExecutionHistoryInput{ExecutionArn: e.ExecutionArn, MaxResults: 1000})
			for p.HasMorePages() {
				page, err := p.NextPage(gctx)
				if err != nil {
					return fmt.Errorf("history of %s: %w", aws.ToString(e.Name), err)
				}
				for _, ev := range page.Events {
					if d := ev.StateEnteredEventDetails; d != nil {
						runs[i].Transitions++
						runs[i].Last = aws.ToString(d.Name)
					}
					if b, _ := json.Marshal(ev); strings.Contains(string(b), "PRIVATE KEY") {
						runs[i].KeyLeaks++
					}
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[string]Run, len(executions))
	for i, e := range executions {
		out[aws.ToString(e.Name)] = runs[i]
	}
	return out, nil
}

// Orders returns the orders the CA created since a time, by the
// certificate they are for: the identifier set and the ARI "replaces" (the
// certificate an order renews; empty for a new certificate). Two orders
// under one key are two orders for one certificate; a renewal the CA's ARI
// window asked for soon after issuance is another certificate, under
// another key.
func Orders(p *caproxy.Proxy, since time.Time) map[string][]caproxy.Order {
	out := map[string][]caproxy.Order{}
	for _, o := range p.Orders() {
		if o.At.Before(since) {
			continue
		}
		key := o.IdentifierSet()
		if o.Replaces != "" {
			key += " replaces " + o.Replaces
		}
		out[key] = append(out[key], o)
	}
	return out
}

// MaxOrdersPerCertificate is the largest number of orders the CA created
// for one certificate since a time (Orders).
func MaxOrdersPerCertificate(p *caproxy.Proxy, since time.Time) int {
	most := 0
	for _, os := range Orders(p, since) {
		most = max(most, len(os))
	}
	return most
}

// Abandoned returns the orders the CA created since a time that were
// abandoned for a second one: left unfinished (the CA last reported them
// neither valid nor invalid) while a later order for the same identifiers
// was created, and not lost with the CA (placed before a restart of it,
// which forgets every order). Each is an order placed where the one
// before could have been resumed. The last order of a set that is still
// unfinished is in flight (a renewal started as the run ends), not
// abandoned.
func Abandoned(p *caproxy.Proxy, since time.Time, caRestarts []time.Time) []caproxy.Order {
	return abandoned(p.Orders(), p.OrderStates(), since, caRestarts)
}

func abandoned(orders []caproxy.Order, states map[string]string, since time.Time, caRestarts []time.Time) []caproxy.Order {
	last := latest(orders)
	var out []caproxy.Order
	for _, o := range orders {
		if o.At.Before(since) || !o.At.Before(last[o.IdentifierSet()]) || final(states[caproxy.OrderID(o.URL)]) {
			continue
		}
		if !LostWithCA(o, caRestarts) {
			out = append(out, o)
		}
	}
	return out
}

// LostWithCA reports whether o was placed before a restart of the CA,
// which forgets every order.
func LostWithCA(o caproxy.Order, caRestarts []time.Time) bool {
	return slices.ContainsFunc(caRestarts, o.At.Before)
}

// InFlight returns the IDs (caproxy.OrderID) of the orders still in
// flight: the latest order of its identifiers, which the CA last reported
// neither valid nor invalid.
func InFlight(orders []caproxy.Order, states map[string]string) map[string]bool {
	last := latest(orders)
	out := map[string]bool{}
	for _, o := range orders {
		id := caproxy.OrderID(o.URL)
		if o.At.Equal(last[o.IdentifierSet()]) && !final(states[id]) {
			out[id] = true
		}
	}
	return out
}

// latest returns when the latest order of each identifier set was created.
func latest(orders []caproxy.Order) map[string]time.Time {
	last := map[string]time.Time{}
	for _, o := range orders {
		if set := o.IdentifierSet(); o.At.After(last[set]) {
			last[set] = o.At
		}
	}
	return last
}

// final reports whether an order status is one the CA never leaves.
func final(status string) bool { return status == "valid" || status == "invalid" }

// PlaintextKeys counts the items of the table holding a private key in
// plaintext: any string or binary attribute with a PEM private key header.
func PlaintextKeys(ctx context.Context, db *dynamodb.Client, tableName string) (int, error) {
	n := 0
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(tableName), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("scan %s: %w", tableName, err)
		}
		for _, item := range page.Items {
			for _, v := range item {
				if holdsKey(v) {
					n++
					break
				}
			}
		}
	}
	return n, nil
}

func holdsKey(v ddbtypes.AttributeValue) bool {
	switch v := v.(type) {
	case *ddbtypes.AttributeValueMemberS:
		return strings.Contains(v.Value, "PRIVATE KEY")
	case *ddbtypes.AttributeValueMemberB:
		return strings.Contains(string(v.Value), "PRIVATE KEY")
	case *ddbtypes.AttributeValueMemberL:
		for _, e := range v.Value {
			if holdsKey(e) {
				return true
			}
		}
	case *ddbtypes.AttributeValueMemberM:
		for _, e := range v.Value {
			if holdsKey(e) {
				return true
			}
		}
	}
	return false
}
