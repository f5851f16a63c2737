package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what one measured load produced.
type Result struct {
	Name    string
	Clients int
	Ops     uint64
	Errors  uint64
	Elapsed time.Duration
	Lat     Hist
	// FirstErr is the first error an operation returned, if any.
	FirstErr error `json:"-"`
	// CPU is the CPU time each process used during the load, by role.
	CPU map[string]time.Duration
}

// CPUPerOp is the CPU time a role spent per operation.
func (r Result) CPUPerOp(role string) time.Duration {
	if r.Ops == 0 {
		return 0
	}
	return r.CPU[role] / time.Duration(r.Ops)
}

// Rate is the operations per second the load achieved.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Add sums another round of the same load into r.
func (r *Result) Add(o Result) {
	r.Ops += o.Ops
	r.Errors += o.Errors
	r.Elapsed += o.Elapsed
	r.Lat.Merge(o.Lat)
	for role, d := range o.CPU {
		if r.CPU == nil {
			r.CPU = map[string]time.Duration{}
		}
		r.CPU[role] += d
	}
	if r.FirstErr == nil {
		r.FirstErr = o.FirstErr
	}
}

// Err is the load's failure: any operation that failed fails the measurement, so that a
// rate is never made of errors.
func (r Result) Err() error {
	switch {
	case r.Errors > 0:
		return fmt.Errorf("%s with %d clients: %d of %d operations failed, first: %w",
			r.Name, r.Clients, r.Errors, r.Ops+r.Errors, r.FirstErr)
	case r.Ops == 0:
		return fmt.Errorf("%s with %d clients: no operation completed", r.Name, r.Clients)
	}
	return nil
}

// Op is one operation of a closed-loop load; worker is the client running it.
type Op func(ctx context.Context, worker int) error

// closedLoop runs clients goroutines that each repeat op back to back for d, and records
// the latency of every operation that succeeded.
func closedLoop(ctx context.Context, name string, clients int, d time.Duration, op Op) Result {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second) // bounds a stuck operation
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		res      = Result{Name: name, Clients: clients}
		stopping atomic.Bool
	)
	start := time.Now()
	timer := time.AfterFunc(d, func() { stopping.Store(true) })
	defer timer.Stop()
	for w := range clients {
		wg.Go(func() {
			var h Hist
			var ops, errs uint64
			var first error
			for !stopping.Load() && ctx.Err() == nil {
				t0 := time.Now()
				if err := op(ctx, w); err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				h.Record(time.Since(t0))
				ops++
			}
			mu.Lock()
			defer mu.Unlock()
			res.Lat.Merge(h)
			res.Ops += ops
			res.Errors += errs
			if res.FirstErr == nil {
				res.FirstErr = first
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}
