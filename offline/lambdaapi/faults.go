package lambdaapi

import (
	"math/rand/v2"
	"slices"
	"sync"
)

// Fault is what an injected failure does to an invocation.
type Fault string

// Faults the server can inject.
const (
	// Throttled answers 429 TooManyRequestsException before the handler
	// runs (Step Functions: Lambda.TooManyRequestsException).
	Throttled Fault = "throttled"
	// ServiceError answers 500 ServiceException before the handler runs
	// (Lambda.ServiceException).
	ServiceError Fault = "serviceError"
	// TimedOut runs the handler, then answers the function error of a
	// timeout (Sandbox.Timedout; Step Functions: Lambda.Unknown): the
	// work is done, its answer lost.
	TimedOut Fault = "timedOut"
)

// Faults says which invocations fail and how.
type Faults struct {
	// Rate is the share of invocations that fail, from 0 to 1.
	Rate float64
	// Kinds are the faults chosen from at random; empty means all.
	Kinds []Fault
	// Functions limits the faults to these function names; empty means
	// every function.
	Functions []string
}

type faults struct {
	mu       sync.Mutex
	f        Faults
	injected map[Fault]int
}

// SetFaults makes invocations fail as f says from now on; the zero Faults
// stops injecting.
func (s *Server) SetFaults(f Faults) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.f = f
}

// Injected counts the faults injected so far, by kind.
func (s *Server) Injected() map[Fault]int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	out := make(map[Fault]int, len(s.faults.injected))
	for k, v := range s.faults.injected {
		out[k] = v
	}
	return out
}

// pick decides whether the invocation of function name fails, and how.
func (f *faults) pick(name string) (Fault, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f.Rate <= 0 || (len(f.f.Functions) > 0 && !slices.Contains(f.f.Functions, name)) || rand.Float64() >= f.f.Rate {
		return "", false
	}
	kinds := f.f.Kinds
	if len(kinds) == 0 {
		kinds = []Fault{Throttled, ServiceError, TimedOut}
	}
	k := kinds[rand.IntN(len(kinds))]
	if f.injected == nil {
		f.injected = map[Fault]int{}
	}
	f.injected[k]++
	return k, true
}
