package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/jobs"
)

// FanoutResult is the fan-out stage: many WebSocket clients on one API process while
// events go through the store's atomic update.
type FanoutResult struct {
	Conns, Failed, Jobs, Procs int
	Connect                    time.Duration
	// RSS of the API process: before any client, with every client idle, and the most
	// seen while the events flowed.
	RSSBase, RSSIdle, RSSLoad int64
	// Rate is the events per second asked for; Updates the ones the store took, in Took.
	Rate    int
	Updates int
	Took    time.Duration
	// Update is the latency of jobs.Store.UpdateFile as the event source saw it.
	Update Hist
	// Expected deliveries are the updates times the watchers of their jobs.
	Expected, Delivered  uint64
	Gaps, Resyncs, Drops uint64
	// Latency is from just before UpdateFile to the client reading the event.
	Latency Hist
	// Raw is from just before UpdateFile to a plain Redis subscriber (PSUBSCRIBE) in the
	// first client process reading the event: what Redis pub/sub alone delivers, in the
	// same run and on the same machine.
	Raw Hist
	// CPU is each process's CPU use while the events flowed, in cores, by role: api,
	// clients, redis, bench (the event source).
	CPU map[string]float64
}

// PerConn is the API's resident memory per idle connection.
func (f FanoutResult) PerConn() float64 {
	if f.Conns == 0 {
		return 0
	}
	return float64(f.RSSIdle-f.RSSBase) / float64(f.Conns)
}

// UpdateRate is the events per second the store took.
func (f FanoutResult) UpdateRate() float64 {
	if f.Took <= 0 {
		return 0
	}
	return float64(f.Updates) / f.Took.Seconds()
}

// fanFiles are the files of every fan-out job.
var fanFiles = []int64{70000, 70007, 70014, 70021}

// fanToken is the attempt that owns the fan-out jobs: the benchmark plays their worker.
const fanToken = "bench"

// runFanout holds many WebSocket clients, in client processes of their own, on one
// `longhaul api` while the benchmark updates running jobs through jobs.Store.UpdateFile.
func (b *bench) runFanout(ctx context.Context, rep *Report) error {
	r, err := b.newRig(ctx, "fanout")
	if err != nil {
		return err
	}
	defer r.close()
	store := jobs.NewStore(r.rdb, jobs.Options{})
	p := b.plan
	ids, err := runningJobs(ctx, store, p.FanJobs)
	if err != nil {
		return err
	}
	jobsFile := filepath.Join(r.dir, "jobs.txt")
	if err := os.WriteFile(jobsFile, []byte(strings.Join(ids, "\n")), 0o644); err != nil {
		return err
	}
	lh, err := r.longhaul(ctx, "api", nil)
	if err != nil {
		return err
	}
	res := &FanoutResult{Jobs: p.FanJobs, Procs: p.FanProcs, Rate: p.FanRate}
	if res.RSSBase, err = settledRSS(ctx, lh, p.FanIdle); err != nil {
		return err
	}

	started := time.Now()
	clients, err := b.startClients(ctx, r, strings.Replace(lh.URL, "http://", "ws://", 1), jobsFile)
	if err != nil {
		return err
	}
	defer clients.quit()
	for _, r := range clients.ready {
		res.Conns += r.Conns
		res.Failed += r.Failed
		if r.FirstErr != "" {
			b.logf("  a client failed to connect: %s", r.FirstErr)
		}
	}
	res.Connect = time.Since(started)
	if res.Conns == 0 {
		return fmt.Errorf("no WebSocket client connected")
	}
	b.logf("  %d clients connected in %v (%d failed)", res.Conns, res.Connect.Round(time.Millisecond), res.Failed)
	sleep(ctx, p.FanIdle)
	if res.RSSIdle, err = rssBytes(lh.Process); err != nil {
		return err
	}
	if err := b.profileIdle(ctx, lh); err != nil {
		b.logf("  profile: %v", err)
	}

	cpu := meterOf(lh, r.redis)
	for _, p := range clients.procs {
		cpu.add("clients", p.PID())
	}
	if err := b.fanLoad(ctx, lh, cpu, store, ids, res); err != nil {
		return err
	}
	res.Expected = expectedDeliveries(res.Conns+res.Failed, p.FanJobs, res.Updates)
	// The last events reach their clients within seconds, or are lost.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if err := clients.collect(res); err != nil {
			return err
		}
		if res.Delivered >= res.Expected || time.Now().After(deadline) {
			break
		}
		sleep(ctx, 100*time.Millisecond)
	}
	b.logf("  %d updates at %.0f/s: delivered %d of %d, p99 %v, %.1f KiB per idle connection",
		res.Updates, res.UpdateRate(), res.Delivered, res.Expected, res.Latency.Quantile(0.99), res.PerConn()/1024)
	rep.Fanout = res
	return nil
}

// profileIdle saves the API's heap, goroutines and memory statistics with every client idle.
func (b *bench) profileIdle(ctx context.Context, lh *longhaul) error {
	if !b.profiling() {
		return nil
	}
	for kind, name := range map[string]string{
		"heap?gc=1":         "fanout-idle.heap.pprof",
		"goroutine?debug=1": "fanout-idle.goroutines.txt",
		"../vars":           "fanout-idle.vars.json",
		"allocs":            "fanout-idle.allocs.pprof",
	} {
		if err := b.profile(ctx, lh, kind, name); err != nil {
			return err
		}
	}
	return nil
}

// fanLoad runs the events and watches the API process meanwhile.
func (b *bench) fanLoad(ctx context.Context, lh *longhaul, cpu *cpuMeter, store *jobs.Store, ids []string, res *FanoutResult) error {
	used := cpu.start()
	stopWatch := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if rss, err := rssBytes(lh.Process); err == nil {
					res.RSSLoad = max(res.RSSLoad, rss)
				}
			case <-stopWatch:
				return
			}
		}
	})
	wait := b.profileDuring(ctx, lh, b.plan.FanDuration-time.Second, "fanout-load.cpu.pprof")
	if b.profiling() {
		go func() {
			sleep(ctx, b.plan.FanDuration/2)
			if err := b.profile(ctx, lh, "trace?seconds=2", "fanout-load.trace"); err != nil {
				b.logf("  trace: %v", err)
			}
		}()
	}
	gen := generate(ctx, store, ids, b.plan.FanRate, b.plan.FanDuration)
	close(stopWatch)
	watch.Wait()
	if err := wait(); err != nil {
		b.logf("  profile: %v", err)
	}
	res.CPU = map[string]float64{}
	for role, d := range used() {
		res.CPU[role] = d.Seconds() / gen.took.Seconds()
	}
	res.Updates, res.Took, res.Update = gen.ok, gen.took, gen.lat
	if gen.failed > 0 {
		return fmt.Errorf("%d of %d updates failed, first: %w", gen.failed, gen.failed+gen.ok, gen.firstErr)
	}
	if gen.ok == 0 {
		return fmt.Errorf("no update went through")
	}
	return nil
}

// expectedDeliveries is the events the clients should have read: connection k watches job
// k mod jobs, and update i is of job i mod jobs.
func expectedDeliveries(conns, nJobs, updates int) uint64 {
	watchers := make([]uint64, nJobs)
	for k := range conns {
		watchers[k%nJobs]++
	}
	total := uint64(0)
	for i := range updates {
		total += watchers[i%nJobs]
	}
	return total
}

// runningJobs creates n jobs that a worker (the benchmark) has claimed.
func runningJobs(ctx context.Context, store *jobs.Store, n int) ([]string, error) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = jobs.NewID()
		if err := store.Create(ctx, ids[i], fanFiles); err != nil {
			return nil, err
		}
		if _, err := store.Claim(ctx, ids[i], fanToken); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// settledRSS reads a process's RSS after it has served a few requests and rested.
func settledRSS(ctx context.Context, lh *longhaul, rest time.Duration) (int64, error) {
	client := newHTTPClient(1)
	defer client.CloseIdleConnections()
	for range 10 {
		resp, err := client.Get(lh.URL + "/healthz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
	}
	sleep(ctx, rest)
	return rssBytes(lh.Process)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// genResult is what the event source did.
type genResult struct {
	ok, failed int
	firstErr   error
	took       time.Duration
	lat        Hist
}

// generate makes rate updates per second for d through jobs.Store.UpdateFile: update i
// is of job i mod len(ids), round robin over its files, its percent growing by one every
// round. Each carries the time it was made in its size, for the clients to measure with.
func generate(ctx context.Context, store *jobs.Store, ids []string, rate int, d time.Duration) genResult {
	const workers = 32
	todo := make(chan int, rate)
	var (
		mu  sync.Mutex
		res genResult
		wg  sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			var lat Hist
			ok, failed := 0, 0
			var first error
			for i := range todo {
				job, file := ids[i%len(ids)], fanFiles[i/len(ids)%len(fanFiles)]
				round := i / (len(ids) * len(fanFiles))
				t0 := time.Now()
				err := store.UpdateFile(ctx, job, fanToken, jobs.File{ID: file, Status: jobs.StatusProcessing,
					Percent: float64(min(round, 99)), Attempt: 1, Size: t0.UnixNano()})
				if err != nil {
					failed++
					if first == nil {
						first = err
					}
					continue
				}
				lat.Record(time.Since(t0))
				ok++
			}
			mu.Lock()
			defer mu.Unlock()
			res.ok += ok
			res.failed += failed
			res.lat.Merge(lat)
			if res.firstErr == nil {
				res.firstErr = first
			}
		})
	}
	start := time.Now()
	total := int(float64(rate) * d.Seconds())
	tick := time.NewTicker(time.Millisecond)
	sent := 0
	for sent < total && ctx.Err() == nil {
		<-tick.C
		due := min(total, int(time.Since(start).Seconds()*float64(rate)))
		for ; sent < due; sent++ {
			todo <- sent
		}
	}
	tick.Stop()
	close(todo)
	wg.Wait()
	res.took = time.Since(start)
	return res
}

// clientProcs are the fan-out's client processes.
type clientProcs struct {
	procs  []*devbin.Process
	stdins []*os.File
	msgs   []chan clientMsg
	ready  []clientMsg
}

// startClients starts the client processes, each with its share of the connections from
// a loopback source address of its own, and waits until all have their snapshots.
func (b *bench) startClients(ctx context.Context, r *rig, wsURL, jobsFile string) (*clientProcs, error) {
	p := b.plan
	cp := &clientProcs{}
	per := (p.FanConns + p.FanProcs - 1) / p.FanProcs
	for i := range p.FanProcs {
		from, to := i*per, min((i+1)*per, p.FanConns)
		stdin, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		msgs := make(chan clientMsg, 4)
		args := []string{b.self, cmdFanoutClient, "-url", wsURL, "-jobs", jobsFile,
			"-from", strconv.Itoa(from), "-to", strconv.Itoa(to), "-src", fmt.Sprintf("127.0.0.%d", 2+i)}
		if i == 0 {
			args = append(args, "-redis", r.redis.Addr())
		}
		onLine := func(line string) {
			var m clientMsg
			if json.Unmarshal([]byte(line), &m) == nil && m.Type != "" {
				msgs <- m
			}
		}
		pr, err := r.start(devbin.Spec{Name: "fanout client " + strconv.Itoa(i), Args: args,
			Log: filepath.Join(r.dir, fmt.Sprintf("client-%d.log", i)), OnLine: onLine, Stdin: stdin})
		stdin.Close()
		if err != nil {
			w.Close()
			return nil, err
		}
		cp.procs, cp.stdins, cp.msgs = append(cp.procs, pr), append(cp.stdins, w), append(cp.msgs, msgs)
	}
	timeout := time.After(3*time.Minute + time.Duration(p.FanConns)*10*time.Millisecond)
	for i := range cp.procs {
		m, err := cp.await(ctx, i, "ready", timeout)
		if err != nil {
			return nil, err
		}
		cp.ready = append(cp.ready, m)
	}
	return cp, nil
}

func (cp *clientProcs) await(ctx context.Context, i int, typ string, timeout <-chan time.Time) (clientMsg, error) {
	for {
		select {
		case m := <-cp.msgs[i]:
			if m.Type == typ {
				return m, nil
			}
		case <-cp.procs[i].Done():
			return clientMsg{}, cp.procs[i].ExitError()
		case <-timeout:
			return clientMsg{}, fmt.Errorf("%s: no %q in time:\n%s", cp.procs[i].Name(), typ, cp.procs[i].Tail(10))
		case <-ctx.Done():
			return clientMsg{}, ctx.Err()
		}
	}
}

// collect asks every client process for its report and sums them into res, replacing
// what an earlier collect put there.
func (cp *clientProcs) collect(res *FanoutResult) error {
	res.Delivered, res.Gaps, res.Resyncs, res.Drops, res.Latency, res.Raw = 0, 0, 0, 0, Hist{}, Hist{}
	timeout := time.After(time.Minute)
	for i, w := range cp.stdins {
		if _, err := fmt.Fprintln(w, "report"); err != nil {
			return err
		}
		m, err := cp.await(context.Background(), i, "report", timeout)
		if err != nil {
			return err
		}
		res.Delivered += m.Events
		res.Gaps += m.Gaps
		res.Resyncs += m.Resyncs
		res.Drops += m.Closed
		res.Latency.Merge(m.Latencies)
		res.Raw.Merge(m.Raw)
	}
	return nil
}

// quit closes the clients' connections and lets their processes end.
func (cp *clientProcs) quit() {
	for _, w := range cp.stdins {
		fmt.Fprintln(w, "quit")
		w.Close()
	}
	for _, p := range cp.procs {
		select {
		case <-p.Done():
		case <-time.After(15 * time.Second):
			p.Stop(time.Second)
		}
	}
}
