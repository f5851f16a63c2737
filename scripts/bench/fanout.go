package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/jobs"
)

// FanoutResult is one fan-out: many WebSocket clients on one server while events go
// through the store's atomic update.
type FanoutResult struct {
	// Server is keyLonghaul or keyNode.
	Server string
	// Wanted is the clients asked for; fewer are opened when the open-files limit
	// (FileLimit) cannot hold them.
	Wanted                            int
	FileLimit                         uint64
	Conns, Failed, Jobs, Files, Procs int
	Connect                           time.Duration
	// RSS of the server: before any client, with every client idle, and the most seen
	// while the events flowed.
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
	// CPU is each role's CPU use while the events flowed, in cores: server, client (the
	// client processes), redis, bench (the event source), machine.
	CPU map[string]float64
}

// PerConn is the server's resident memory per idle connection.
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

// AllDelivered reports whether every event reached every watcher, in order.
func (f FanoutResult) AllDelivered() bool {
	return f.Delivered == f.Expected && f.Gaps == 0 && f.Drops == 0 && f.Failed == 0
}

// fanFiles are the files of every fan-out job.
var fanFiles = []int64{70000, 70007, 70014, 70021}

// fanToken is the attempt that owns the fan-out jobs: the benchmark plays their worker.
const fanToken = "bench"

// liveSettings are longhaul's caps of connections for a stage that holds conns live ones,
// with room to spare for its plain requests.
func liveSettings(conns int) map[string]string {
	return map[string]string{
		"LONGHAUL_MAX_CONNECTIONS": strconv.Itoa(conns + 512),
		"LONGHAUL_MAX_LIVE":        strconv.Itoa(conns + 256),
	}
}

// liveStage is a stage of live clients: its rig, its running jobs and the API that serves
// them.
type liveStage struct {
	*rig
	store *jobs.Store
	ids   []string
	api   *longhaul
}

// newLiveStage starts the stage's Redis, creates n running jobs of files, and starts a
// longhaul API with room for conns live connections and the extra settings. Close it with
// close, as a rig.
func (b *bench) newLiveStage(ctx context.Context, name string, n int, files []int64, conns int, extra map[string]string) (*liveStage, error) {
	r, err := b.newRig(ctx, name)
	if err != nil {
		return nil, err
	}
	s := &liveStage{rig: r, store: jobs.NewStore(r.rdb, jobs.Options{})}
	settings := liveSettings(conns)
	maps.Copy(settings, extra)
	if s.ids, err = runningJobs(ctx, s.store, n, files); err == nil {
		s.api, err = r.longhaul(ctx, "api", settings)
	}
	if err != nil {
		r.close()
		return nil, err
	}
	return s, nil
}

// runFanout holds many WebSocket clients, in client processes of their own, on one
// `longhaul api` while the benchmark updates running jobs through jobs.Store.UpdateFile;
// then as many clients and events on the Node peer, whose `ws` server forwards the same
// channels.
func (b *bench) runFanout(ctx context.Context, rep *Report) error {
	fp := b.plan.Fan
	s, err := b.newLiveStage(ctx, "fanout", fp.Jobs, fanFiles, fp.Conns, nil)
	if err != nil {
		return err
	}
	defer s.close()
	res, err := b.fanout(ctx, "fanout", s.rig, s.api.server(), s.store, s.ids, fanFiles, fp, fp.Conns)
	if err != nil {
		return err
	}
	rep.Fanout = append(rep.Fanout, res)
	s.api.Stop(10 * time.Second)
	if !b.nodeOK {
		return nil
	}
	// Jobs of its own, as fresh as longhaul's were; the Node peer's snapshots come from
	// BullMQ hashes of them.
	ids, err := runningJobs(ctx, s.store, fp.Jobs, fanFiles)
	if err != nil {
		return err
	}
	if err := writeBullJobs(ctx, s.rdb, s.store, ids); err != nil {
		return err
	}
	node, err := s.nodePeer(ctx)
	if err != nil {
		return err
	}
	if res, err = b.fanout(ctx, "fanout", s.rig, node, s.store, ids, fanFiles, fp, fp.Conns); err != nil {
		return err
	}
	rep.Fanout = append(rep.Fanout, res)
	return nil
}

// runScale is the fan-out with as many clients as the plan asks, tens of thousands, on one
// longhaul API: fewer where the machine's open-files limit cannot hold them.
func (b *bench) runScale(ctx context.Context, rep *Report) error {
	fp := b.plan.Scale
	// The API holds one descriptor per client, and needs some for itself.
	conns := min(fp.Conns, int(b.fileLimit)-1024)
	if conns < fp.Conns {
		b.logf("  the open-files limit is %d: %d clients rather than %d", b.fileLimit, conns, fp.Conns)
	}
	s, err := b.newLiveStage(ctx, "scale", fp.Jobs, fanFiles, conns, nil)
	if err != nil {
		return err
	}
	defer s.close()
	rep.Scale, err = b.fanout(ctx, "scale", s.rig, s.api.server(), s.store, s.ids, fanFiles, fp, conns)
	return err
}

// runWatchers has thousands of clients watch one running job of a thousand files, updated
// twice a second: what the API spends on them while almost nothing happens.
func (b *bench) runWatchers(ctx context.Context, rep *Report) error {
	fp := b.plan.Watchers
	files := make([]int64, fp.Files)
	for i := range files {
		files[i] = 70000 + int64(i)
	}
	s, err := b.newLiveStage(ctx, "watchers", fp.Jobs, files, fp.Conns, nil)
	if err != nil {
		return err
	}
	defer s.close()
	rep.Watchers, err = b.fanout(ctx, "watchers", s.rig, s.api.server(), s.store, s.ids, files, fp, fp.Conns)
	return err
}

// fanout, for the stage name (which names its profiles), connects conns WebSocket clients
// to srv, watching ids round robin; reads the server's RSS before and with them idle; then
// makes fp.Rate events per second through jobs.Store.UpdateFile, round robin over the jobs
// and files, and collects what the clients read.
func (b *bench) fanout(ctx context.Context, name string, r *rig, srv *server, store *jobs.Store, ids []string, files []int64, fp FanPlan, conns int) (*FanoutResult, error) {
	res := &FanoutResult{Server: srv.Key, Wanted: fp.Conns, FileLimit: b.fileLimit, Jobs: len(ids), Files: len(files), Rate: fp.Rate}
	var err error
	if res.RSSBase, err = settledRSS(ctx, srv, fp.Idle); err != nil {
		return nil, err
	}
	started := time.Now()
	clients, err := b.startClients(ctx, r, srv, ids, conns)
	if err != nil {
		return nil, err
	}
	defer clients.quit()
	res.Procs = len(clients.procs)
	for _, m := range clients.ready {
		res.Conns += m.Conns
		res.Failed += m.Failed
		if m.FirstErr != "" {
			b.logf("  a client failed to connect: %s", m.FirstErr)
		}
	}
	res.Connect = time.Since(started)
	if res.Conns == 0 {
		return nil, fmt.Errorf("no WebSocket client connected to %s", srv.Key)
	}
	b.logf("  %s: %d clients connected in %v (%d failed)", srv.Key, res.Conns, res.Connect.Round(time.Millisecond), res.Failed)
	sleep(ctx, fp.Idle)
	if res.RSSIdle, err = rssBytes(srv.proc); err != nil {
		return nil, err
	}
	if err := b.profileIdle(ctx, srv.lh, name+"-idle"); err != nil {
		b.logf("  profile: %v", err)
	}

	cpu := r.meter(srv.proc, nil)
	for _, p := range clients.procs {
		cpu.add(roleClient, p.PID())
	}
	if err := b.fanLoad(ctx, name, srv, cpu, store, ids, files, fp, res); err != nil {
		return nil, err
	}
	res.Expected = expectedDeliveries(res.Conns+res.Failed, len(ids), res.Updates)
	// The last events reach their clients within seconds, or are lost.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if err := clients.collect(res); err != nil {
			return nil, err
		}
		if res.Delivered >= res.Expected || time.Now().After(deadline) {
			break
		}
		sleep(ctx, 100*time.Millisecond)
	}
	b.logf("  %s: %d updates at %.0f/s: delivered %d of %d, p99 %v, %.1f KiB per idle connection, %.2f cores",
		srv.Key, res.Updates, res.UpdateRate(), res.Delivered, res.Expected, res.Latency.Quantile(0.99), res.PerConn()/1024, res.CPU[roleServer])
	return res, nil
}

// profileIdle saves the API's heap, goroutines and memory statistics with every client idle
// (or gone), in files named after what is profiled.
func (b *bench) profileIdle(ctx context.Context, lh *longhaul, what string) error {
	if !b.profiling() || lh == nil {
		return nil
	}
	for kind, suffix := range map[string]string{
		"heap?gc=1":         ".heap.pprof",
		"goroutine?debug=1": ".goroutines.txt",
		"../vars":           ".vars.json",
		"allocs":            ".allocs.pprof",
	} {
		if err := b.profile(ctx, lh, kind, what+suffix); err != nil {
			return err
		}
	}
	return nil
}

// fanLoad runs the events and watches the server meanwhile.
func (b *bench) fanLoad(ctx context.Context, name string, srv *server, cpu *cpuMeter, store *jobs.Store, ids []string, files []int64, fp FanPlan, res *FanoutResult) error {
	used := cpu.start()
	stopWatch := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if rss, err := rssBytes(srv.proc); err == nil {
					res.RSSLoad = max(res.RSSLoad, rss)
				}
			case <-stopWatch:
				return
			}
		}
	})
	wait := b.profileDuring(ctx, srv.lh, fp.Duration-time.Second, name+"-load.cpu.pprof")
	if b.profiling() && srv.lh != nil {
		go func() {
			sleep(ctx, fp.Duration/2)
			if err := b.profile(ctx, srv.lh, "trace?seconds=2", name+"-load.trace"); err != nil {
				b.logf("  trace: %v", err)
			}
		}()
	}
	gen := generate(ctx, store, ids, files, fp.Rate, fp.Duration, nil)
	close(stopWatch)
	watch.Wait()
	if err := wait(); err != nil {
		b.logf("  profile: %v", err)
	}
	res.CPU = cores(used(), gen.took)
	res.Updates, res.Took, res.Update = gen.ok, gen.took, gen.lat
	return gen.err()
}

// cores turns CPU times used over d into cores.
func cores(used map[string]time.Duration, d time.Duration) map[string]float64 {
	out := map[string]float64{}
	for role, t := range used {
		out[role] = t.Seconds() / d.Seconds()
	}
	return out
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

// runningJobs creates n jobs of files that a worker (the benchmark) has claimed.
func runningJobs(ctx context.Context, store *jobs.Store, n int, files []int64) ([]string, error) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = jobs.NewID()
		if err := store.Create(ctx, ids[i], files); err != nil {
			return nil, err
		}
		if _, err := store.Claim(ctx, ids[i], fanToken); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// settledRSS reads a server's RSS after it has served a few requests and rested.
func settledRSS(ctx context.Context, srv *server, rest time.Duration) (int64, error) {
	client := newHTTPClient(1)
	defer client.CloseIdleConnections()
	for range 10 {
		resp, err := client.Get(srv.URL + "/healthz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
	}
	sleep(ctx, rest)
	return rssBytes(srv.proc)
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

// err is the event source's failure: an update that failed, or none that went through.
func (g genResult) err() error {
	if g.failed > 0 {
		return fmt.Errorf("%d of %d updates failed, first: %w", g.failed, g.failed+g.ok, g.firstErr)
	}
	if g.ok == 0 {
		return fmt.Errorf("no update went through")
	}
	return nil
}

// generate makes rate updates per second for d, or until stop is closed, through
// jobs.Store.UpdateFile: update i is of job i mod len(ids), round robin over its files,
// its percent growing by one every round. Each carries the time it was made in its size,
// for the clients to measure with.
func generate(ctx context.Context, store *jobs.Store, ids []string, files []int64, rate int, d time.Duration, stop <-chan struct{}) genResult {
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
				job, file := ids[i%len(ids)], files[i/len(ids)%len(files)]
				round := i / (len(ids) * len(files))
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
loop:
	for sent < total && ctx.Err() == nil {
		select {
		case <-tick.C:
		case <-stop:
			break loop
		}
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

// startClients starts client processes for conns WebSocket clients of srv, watching ids,
// each process with connsPerClientProcess of them at most and a loopback source address of
// its own, and waits until all have their snapshots.
func (b *bench) startClients(ctx context.Context, r *rig, srv *server, ids []string, conns int) (*clientProcs, error) {
	jobsFile := filepath.Join(r.dir, fmt.Sprintf("jobs-%d.txt", time.Now().UnixNano()))
	if err := os.WriteFile(jobsFile, []byte(strings.Join(ids, "\n")), 0o644); err != nil {
		return nil, err
	}
	wsURL := strings.Replace(srv.URL, "http://", "ws://", 1)
	nProcs := max(2, (conns+connsPerClientProcess-1)/connsPerClientProcess)
	per := (conns + nProcs - 1) / nProcs
	cp := &clientProcs{}
	for i := range nProcs {
		from, to := i*per, min((i+1)*per, conns)
		stdin, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		msgs := make(chan clientMsg, 4)
		args := []string{b.self, cmdFanoutClient, "-url", wsURL, "-jobs", jobsFile,
			"-from", strconv.Itoa(from), "-to", strconv.Itoa(to), "-src", b.nextSource()}
		if i == 0 {
			args = append(args, "-redis", r.redis.Addr())
		}
		onLine := func(line string) {
			var m clientMsg
			if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &m) == nil && m.Type != "" {
				msgs <- m
			}
		}
		pr, err := r.start(devbin.Spec{Name: "fanout client " + strconv.Itoa(i), Args: args,
			Log: filepath.Join(r.dir, fmt.Sprintf("client-%d-%d.log", i, time.Now().UnixNano())), OnLine: onLine, Stdin: stdin})
		stdin.Close()
		if err != nil {
			w.Close()
			return nil, err
		}
		cp.procs, cp.stdins, cp.msgs = append(cp.procs, pr), append(cp.stdins, w), append(cp.msgs, msgs)
	}
	timeout := time.After(3*time.Minute + time.Duration(conns)*10*time.Millisecond)
	for i := range cp.procs {
		m, err := cp.await(ctx, i, "ready", timeout)
		if err != nil {
			return nil, err
		}
		cp.ready = append(cp.ready, m)
	}
	return cp, nil
}

// nextSource is a loopback source address no client process of this run has used yet, so
// that each has its own ports, untouched by the connections of earlier stages.
func (b *bench) nextSource() string {
	b.sources++
	n := 1 + b.sources // 127.0.0.2 first
	return fmt.Sprintf("127.%d.%d.%d", n>>16&0xff, n>>8&0xff, n&0xff)
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

// send gives every client process a command.
func (cp *clientProcs) send(cmd string) error {
	for _, w := range cp.stdins {
		if _, err := fmt.Fprintln(w, cmd); err != nil {
			return err
		}
	}
	return nil
}

// reports asks every client process for its report.
func (cp *clientProcs) reports() ([]clientMsg, error) {
	if err := cp.send("report"); err != nil {
		return nil, err
	}
	timeout := time.After(time.Minute)
	out := make([]clientMsg, len(cp.procs))
	for i := range cp.procs {
		m, err := cp.await(context.Background(), i, "report", timeout)
		if err != nil {
			return nil, err
		}
		out[i] = m
	}
	return out, nil
}

// collect sums the client processes' reports into res, replacing what an earlier collect
// put there.
func (cp *clientProcs) collect(res *FanoutResult) error {
	ms, err := cp.reports()
	if err != nil {
		return err
	}
	res.Delivered, res.Gaps, res.Resyncs, res.Drops, res.Latency, res.Raw = 0, 0, 0, 0, Hist{}, Hist{}
	for _, m := range ms {
		res.Delivered += m.Events
		res.Gaps += m.Gaps
		res.Resyncs += m.Resyncs
		res.Drops += m.Closed
		res.Latency.Merge(m.Latencies)
		res.Raw.Merge(m.Raw)
	}
	return nil
}

// quit closes the clients' connections and lets their processes end. Once is enough: a
// second call waits for nothing.
func (cp *clientProcs) quit() {
	for _, w := range cp.stdins {
		fmt.Fprintln(w, "quit")
		w.Close()
	}
	cp.stdins = nil
	for _, p := range cp.procs {
		select {
		case <-p.Done():
		case <-time.After(15 * time.Second):
			p.Stop(time.Second)
		}
	}
}
