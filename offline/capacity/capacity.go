// Package capacity measures the DynamoDB capacity that code consumes: a
// Meter added to an aws.Config asks DynamoDB for ReturnConsumedCapacity on
// every call and adds up what each answer reports, by table and operation.
// Against DynamoDB Local it turns a code path into read and write request
// units (on-demand billing counts the same units as provisioned capacity:
// one RRU per 4 KB strongly consistent read, half for an eventually
// consistent one; one WRU per 1 KB written, twice that in a transaction).
package capacity

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
)

// Usage is the capacity consumed by one operation on one table.
type Usage struct {
	Calls int
	Read  float64 // read request units
	Write float64 // write request units
}

// Key names what a Usage is for.
type Key struct {
	Table     string
	Operation string // e.g. "Query", "TransactWriteItems"
}

// Meter adds up consumed capacity. Its zero value is ready; it is safe for
// concurrent use.
type Meter struct {
	mu    sync.Mutex
	usage map[Key]Usage
}

// Add installs the meter on cfg's DynamoDB calls.
func (m *Meter) Add(cfg *aws.Config) {
	cfg.APIOptions = append(cfg.APIOptions, m.middleware)
}

// Reset forgets everything measured so far.
func (m *Meter) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.usage = nil
}

// Usage returns what was measured since the last Reset.
func (m *Meter) Usage() map[Key]Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.usage)
}

// Total adds up usage over every table and operation.
func Total(usage map[Key]Usage) Usage {
	var t Usage
	for _, u := range usage {
		t.Calls += u.Calls
		t.Read += u.Read
		t.Write += u.Write
	}
	return t
}

// Format lists usage one line per table and operation, sorted.
func Format(usage map[Key]Usage) string {
	keys := slices.SortedFunc(maps.Keys(usage), func(a, b Key) int {
		return strings.Compare(a.Table+" "+a.Operation, b.Table+" "+b.Operation)
	})
	var b strings.Builder
	for _, k := range keys {
		u := usage[k]
		fmt.Fprintf(&b, "%s %s: %d calls, %.1f RRU, %.1f WRU\n", k.Table, k.Operation, u.Calls, u.Read, u.Write)
	}
	return b.String()
}

func (m *Meter) middleware(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("certflowCapacityMeter",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			op, write := request(in.Parameters)
			out, md, err := next.HandleInitialize(ctx, in)
			if op != "" && err == nil {
				m.record(op, write, consumed(out.Result))
			}
			return out, md, err
		}), middleware.After)
}

const total = types.ReturnConsumedCapacityTotal

// request asks for consumed capacity on a DynamoDB input and names it.
func request(params any) (op string, write bool) {
	switch in := params.(type) {
	case *dynamodb.GetItemInput:
		in.ReturnConsumedCapacity = total
		return "GetItem", false
	case *dynamodb.BatchGetItemInput:
		in.ReturnConsumedCapacity = total
		return "BatchGetItem", false
	case *dynamodb.QueryInput:
		in.ReturnConsumedCapacity = total
		return "Query", false
	case *dynamodb.ScanInput:
		in.ReturnConsumedCapacity = total
		return "Scan", false
	case *dynamodb.PutItemInput:
		in.ReturnConsumedCapacity = total
		return "PutItem", true
	case *dynamodb.UpdateItemInput:
		in.ReturnConsumedCapacity = total
		return "UpdateItem", true
	case *dynamodb.DeleteItemInput:
		in.ReturnConsumedCapacity = total
		return "DeleteItem", true
	case *dynamodb.BatchWriteItemInput:
		in.ReturnConsumedCapacity = total
		return "BatchWriteItem", true
	case *dynamodb.TransactWriteItemsInput:
		in.ReturnConsumedCapacity = total
		return "TransactWriteItems", true
	case *dynamodb.TransactGetItemsInput:
		in.ReturnConsumedCapacity = total
		return "TransactGetItems", false
	}
	return "", false
}

func consumed(result any) []types.ConsumedCapacity {
	switch out := result.(type) {
	case *dynamodb.GetItemOutput:
		return one(out.ConsumedCapacity)
	case *dynamodb.BatchGetItemOutput:
		return out.ConsumedCapacity
	case *dynamodb.QueryOutput:
		return one(out.ConsumedCapacity)
	case *dynamodb.ScanOutput:
		return one(out.ConsumedCapacity)
	case *dynamodb.PutItemOutput:
		return one(out.ConsumedCapacity)
	case *dynamodb.UpdateItemOutput:
		return one(out.ConsumedCapacity)
	case *dynamodb.DeleteItemOutput:
		return one(out.ConsumedCapacity)
	case *dynamodb.BatchWriteItemOutput:
		return out.ConsumedCapacity
	case *dynamodb.TransactWriteItemsOutput:
		return out.ConsumedCapacity
	case *dynamodb.TransactGetItemsOutput:
		return out.ConsumedCapacity
	}
	return nil
}

func one(c *types.ConsumedCapacity) []types.ConsumedCapacity {
	if c == nil {
		return nil
	}
	return []types.ConsumedCapacity{*c}
}

func (m *Meter) record(op string, write bool, caps []types.ConsumedCapacity) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.usage == nil {
		m.usage = map[Key]Usage{}
	}
	if len(caps) == 0 {
		k := Key{Operation: op}
		u := m.usage[k]
		u.Calls++
		m.usage[k] = u
		return
	}
	for i, c := range caps {
		k := Key{Table: aws.ToString(c.TableName), Operation: op}
		u := m.usage[k]
		if i == 0 {
			u.Calls++
		}
		units := aws.ToFloat64(c.CapacityUnits)
		if write {
			u.Write += units
		} else {
			u.Read += units
		}
		m.usage[k] = u
	}
}
