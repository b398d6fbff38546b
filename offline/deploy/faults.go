package deploy

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// StreamFaults make the renewal timers' stream deliver the way AWS may:
// a record twice (Lambda retried a batch), a record never (lost to the
// on-failure destination, or TTL never getting to it), a record late (TTL
// can be days late). Each is a share of records, from 0 to 1.
type StreamFaults struct {
	Duplicate float64
	Drop      float64
	Delay     float64
	// DelayBy is how late a delayed record arrives.
	DelayBy time.Duration
}

type streamFaults struct {
	mu       sync.Mutex
	f        StreamFaults
	injected map[string]int
}

// SetStreamFaults applies f to the stream's records from now on; the zero
// StreamFaults stops injecting.
func (s *Deployment) SetStreamFaults(f StreamFaults) {
	s.streamFaults.mu.Lock()
	defer s.streamFaults.mu.Unlock()
	s.streamFaults.f = f
}

// StreamFaultsInjected counts the stream faults injected, by kind
// ("duplicate", "drop", "delay").
func (s *Deployment) StreamFaultsInjected() map[string]int {
	s.streamFaults.mu.Lock()
	defer s.streamFaults.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.streamFaults.injected {
		out[k] = v
	}
	return out
}

// apply returns the records of ev to deliver now: dropped ones left out,
// duplicated ones twice; delayed ones are delivered by themselves later.
func (f *streamFaults) apply(ctx context.Context, ev events.DynamoDBEvent, deliver func(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error)) events.DynamoDBEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == (StreamFaults{}) {
		return ev
	}
	if f.injected == nil {
		f.injected = map[string]int{}
	}
	var out []events.DynamoDBEventRecord
	for _, rec := range ev.Records {
		switch x := rand.Float64(); {
		case x < f.f.Drop:
			f.injected["drop"]++
		case x < f.f.Drop+f.f.Delay:
			f.injected["delay"]++
			late := events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{rec}}
			delay := f.f.DelayBy
			go func() {
				t := time.NewTimer(delay)
				defer t.Stop()
				select {
				case <-ctx.Done():
				case <-t.C:
					_, _ = deliver(context.WithoutCancel(ctx), late)
				}
			}()
		case x < f.f.Drop+f.f.Delay+f.f.Duplicate:
			f.injected["duplicate"]++
			out = append(out, rec, rec)
		default:
			out = append(out, rec)
		}
	}
	ev.Records = out
	return ev
}
