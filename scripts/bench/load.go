package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
)

// Result is what one measured load produced.
type Result struct {
	// Key names the load for the report: its server and operation, like "gin-peer 200".
	Key     string
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

// CPUPerOp is the CPU time the roles spent together per operation (see cpuMeter).
func (r Result) CPUPerOp(roles ...string) time.Duration {
	if r.Ops == 0 {
		return 0
	}
	var sum time.Duration
	for _, role := range roles {
		sum += r.CPU[role]
	}
	return sum / time.Duration(r.Ops)
}

// ClientCPUPerOp is what the clients cost per operation: the HTTP client process, and this
// process, where the raw Redis operations run.
func (r Result) ClientCPUPerOp() time.Duration { return r.CPUPerOp(roleClient, roleBench) }

// OthersCores is the CPU that processes other than the benchmark's took during the load, in
// cores: other people's work on a shared machine.
func (r Result) OthersCores() float64 {
	if r.Elapsed <= 0 || r.CPU[roleMachine] == 0 {
		return 0
	}
	ours := r.CPU[roleServer] + r.CPU[roleRedis] + r.CPU[roleClient] + r.CPU[roleBench]
	return max(0, (r.CPU[roleMachine]-ours).Seconds()/r.Elapsed.Seconds())
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

// load is one operation of a request stage: over HTTP by the client process, or a raw Redis
// operation in this process.
type load struct {
	key, name string
	// server is the process that serves the load, metered as roleServer; nil for a raw
	// Redis operation.
	server *devbin.Process
	// lh is set when the server is longhaul, so that it can be profiled.
	lh  *longhaul
	run func(ctx context.Context, clients int, d time.Duration) (Result, error)
}

// httpLoadOf is a load that the client process sends to srv: spec without its name,
// clients and duration, which each run sets.
func (s *rig) httpLoadOf(key string, srv *server, client *httpLoad, spec loadSpec) load {
	spec.Base = srv.URL
	spec.Name = key
	return load{key: key, name: key, server: srv.proc, lh: srv.lh,
		run: func(ctx context.Context, clients int, d time.Duration) (Result, error) {
			spec.Clients, spec.Duration = clients, d
			return client.run(ctx, spec)
		}}
}

// inProcess is a load of op run by goroutines of this process.
func inProcess(key, name string, op Op) load {
	return load{key: key, name: name, run: func(ctx context.Context, clients int, d time.Duration) (Result, error) {
		return closedLoop(ctx, name, clients, d, op), nil
	}}
}

// compare measures loads with n clients each: a warm-up of each, then rounds in which each
// load has its turn, the first of a round going last in the next, so that a change of the
// machine's load hits them all alike. The rounds are summed up. The CPU of every process
// is metered through each run; when profiling, longhaul is profiled through its rounds.
func (b *bench) compare(ctx context.Context, r *rig, client *httpLoad, n int, loads []load, profile string) ([]Result, error) {
	for _, l := range loads {
		if _, err := l.run(ctx, n, b.plan.Warmup); err != nil {
			return nil, err
		}
	}
	results := make([]Result, len(loads))
	for i, l := range loads {
		results[i] = Result{Key: l.key, Name: l.name, Clients: n}
	}
	for round := range b.plan.Rounds {
		for j := range loads {
			i := (round + j) % len(loads)
			l := loads[i]
			wait := b.profileDuring(ctx, l.lh, b.plan.Duration, fmt.Sprintf("r%d-%s-%s", round, l.key, profile))
			used := r.meter(l.server, client).start()
			res, err := l.run(ctx, n, b.plan.Duration)
			if err != nil {
				return nil, err
			}
			res.CPU = used()
			results[i].Add(res)
			if err := wait(); err != nil {
				b.logf("  profile: %v", err)
			}
		}
	}
	for _, res := range results {
		if err := res.Err(); err != nil {
			return results, err
		}
	}
	return results, nil
}
