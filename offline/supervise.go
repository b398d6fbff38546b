package offline

import (
	"context"
	"time"

	"github.com/certflow/certflow/offline/proc"
)

// Supervise watches the stack's processes until ctx ends: one that exits
// while the stack is not closing is reported by name, with how it ended,
// and started again on its ports (see each engine for what survives: Pebble
// forgets its accounts and orders; DynamoDB Local keeps its tables with
// Options.DynamoDBOnDisk and gets empty ones otherwise; moto and
// challtestsrv lose their state). A restart that fails is reported and
// tried again at the next check.
//
// Close stops the supervision before it stops the processes.
func (s *Stack) Supervise(ctx context.Context, report func(name string, err error)) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.mu.Lock()
	s.stopSupervising = func() {
		cancel()
		<-done
	}
	s.mu.Unlock()
	go func() {
		defer close(done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		pending := map[string]bool{} // restarts that failed, tried again
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, p := range s.exited() {
				_, err := p.Exited()
				report(p.Name(), err)
				s.untrack(p)
				pending[p.Name()] = true
			}
			for name := range pending {
				restart := s.restarts[name]
				if restart == nil {
					delete(pending, name)
					continue
				}
				if err := restart(ctx); err != nil {
					report(name+" (restart failed)", err)
					continue
				}
				delete(pending, name)
			}
		}
	}()
}

// exited returns the tracked processes that have exited, unless the stack
// is closing.
func (s *Stack) exited() []*proc.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil
	}
	var out []*proc.Process
	for _, p := range s.procs {
		if done, _ := p.Exited(); done {
			out = append(out, p)
		}
	}
	return out
}

// Process returns the running process of an engine by name ("pebble",
// "DynamoDB Local", "moto_server", "pebble-challtestsrv"), for fault
// injection; nil if there is none.
func (s *Stack) Process(name string) *proc.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.procs) - 1; i >= 0; i-- {
		if s.procs[i].Name() == name {
			if done, _ := s.procs[i].Exited(); !done {
				return s.procs[i]
			}
		}
	}
	return nil
}
