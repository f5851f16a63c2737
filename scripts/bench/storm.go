package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/redis/go-redis/v9"
)

// StormResult is a reconnect storm: every client of an API that restarts comes back to
// the new process within a few seconds, while the jobs they watch go on running.
type StormResult struct {
	Conns, Jobs, Rate int
	// Spread is the window in which the clients come back, each at a random moment of it.
	Spread time.Duration
	// Lost are the connections the restart ended; Resynced those back with a snapshot;
	// RedialFailed those not back in 30 s, the first of them failing with RedialErr.
	Lost, Resynced, RedialFailed int
	RedialErr                    string
	// Down is from the old API's SIGTERM to the new one answering /healthz.
	Down time.Duration
	// Resync is from the new API answering /healthz to each client's snapshot.
	Resync Hist
	// SnapshotReads are the HGETALLs that Redis ran from the new API's start to the last
	// client's snapshot, read from INFO commandstats; SnapshotStates the distinct (job, seq)
	// the clients' snapshots carried: the reads a server that shares its snapshot needs.
	SnapshotReads  int64
	SnapshotStates int
	// Updates went through the store during the storm, Rate per second asked for.
	Updates int
	// Health is GET /healthz of the new API, probed through the storm; HealthErrors failed.
	Health       Hist
	HealthErrors int
	// CPU is each role's CPU use through the storm, in cores; RSSPeak the new API's most.
	CPU     map[string]float64
	RSSPeak int64
}

// AllResynced reports whether every client the restart cut off got its snapshot back.
func (s StormResult) AllResynced() bool { return s.Lost > 0 && s.Resynced == s.Lost }

// ReadsPerState is the snapshot reads per distinct (job, seq) served: 1 when the clients of
// one job at one seq shared one read.
func (s StormResult) ReadsPerState() float64 {
	if s.SnapshotStates == 0 {
		return 0
	}
	return float64(s.SnapshotReads) / float64(s.SnapshotStates)
}

// runStorm has clients of running jobs on one API; the API restarts on the same address,
// and the clients reconnect, each at a random moment of the plan's spread. It measures how
// long until every client has its snapshot again, how many snapshot reads Redis served for
// that, and how the API answers /healthz meanwhile.
func (b *bench) runStorm(ctx context.Context, rep *Report) error {
	p := b.plan
	port, err := devbin.FreePort()
	if err != nil {
		return err
	}
	// The new API must serve where the old one did.
	addr := map[string]string{"LONGHAUL_ADDR": "127.0.0.1:" + strconv.Itoa(port)}
	s, err := b.newLiveStage(ctx, "storm", p.StormJobs, fanFiles, p.StormConns, addr)
	if err != nil {
		return err
	}
	defer s.close()
	r, store, ids, old := s.rig, s.store, s.ids, s.api
	res := &StormResult{Jobs: p.StormJobs, Rate: p.StormRate, Spread: p.StormSpread}
	clients, err := b.startClients(ctx, r, old.server(), ids, p.StormConns)
	if err != nil {
		return err
	}
	defer clients.quit()
	for _, m := range clients.ready {
		res.Conns += m.Conns
		if m.Failed > 0 {
			return fmt.Errorf("%d clients failed to connect before the restart, first: %s", m.Failed, m.FirstErr)
		}
	}
	// Reports come in the order of the commands: once they are in, the clients hold.
	if err := clients.send("hold"); err != nil {
		return err
	}
	if _, err := clients.reports(); err != nil {
		return err
	}

	stopped := time.Now()
	if err := old.Stop(15 * time.Second); err != nil {
		return err
	}
	if err := awaitClients(ctx, clients, 15*time.Second, "every client to see the restart", func(ms []clientMsg) bool {
		res.Lost = sumOf(ms, func(m clientMsg) int { return m.Lost })
		return res.Lost >= res.Conns
	}); err != nil {
		return err
	}
	settings := liveSettings(p.StormConns)
	maps.Copy(settings, addr)
	api, err := r.longhaul(ctx, "api", settings)
	if err != nil {
		return err
	}
	up := time.Now()
	res.Down = up.Sub(stopped)
	reads0, err := hgetallCalls(ctx, r.rdb)
	if err != nil {
		return err
	}
	cpu := r.meter(api.Process, nil)
	for _, pr := range clients.procs {
		cpu.add(roleClient, pr.PID())
	}
	used := cpu.start()
	stop := make(chan struct{})
	var bg sync.WaitGroup
	var gen genResult
	bg.Go(func() { gen = generate(ctx, store, ids, fanFiles, p.StormRate, 10*time.Minute, stop) })
	bg.Go(func() { res.Health, res.HealthErrors = probeHealth(ctx, api.URL, stop) })
	bg.Go(func() { res.RSSPeak = peakRSS(api.Process, stop) })

	if err := clients.send(fmt.Sprintf("reconnect %d %d", up.UnixNano(), p.StormSpread.Nanoseconds())); err != nil {
		close(stop)
		return err
	}
	var last []clientMsg
	waitErr := awaitClients(ctx, clients, 60*time.Second, "every client to resync", func(ms []clientMsg) bool {
		last = ms
		back := sumOf(ms, func(m clientMsg) int { return int(m.Resynced + m.RedialFailed) })
		return back >= res.Lost
	})
	ended := time.Now()
	reads1, err := hgetallCalls(ctx, r.rdb)
	close(stop)
	bg.Wait()
	if err != nil {
		return err
	}
	res.CPU = cores(used(), ended.Sub(up))
	res.SnapshotReads = reads1 - reads0
	res.Updates = gen.ok
	states := map[string]bool{}
	for _, m := range last {
		res.Resynced += int(m.Resynced)
		res.RedialFailed += int(m.RedialFailed)
		if res.RedialErr == "" {
			res.RedialErr = m.RedialErr
		}
		res.Resync.Merge(m.Resync)
		for job, seqs := range m.Snapshots {
			for _, seq := range seqs {
				states[job+"@"+strconv.FormatInt(seq, 10)] = true
			}
		}
	}
	res.SnapshotStates = len(states)
	b.logf("  storm: %d of %d clients resynced, the last %v after the restart; %d HGETALLs for %d (job, seq) snapshots; /healthz p99 %v",
		res.Resynced, res.Lost, time.Duration(res.Resync.Max).Round(time.Millisecond), res.SnapshotReads, res.SnapshotStates, res.Health.Quantile(0.99))
	rep.Storm = res
	if waitErr != nil {
		b.logf("  storm: %v", waitErr)
	}
	return gen.err()
}

// awaitClients asks the client processes for their reports until done holds of them, or
// limit passes.
func awaitClients(ctx context.Context, clients *clientProcs, limit time.Duration, what string, done func([]clientMsg) bool) error {
	deadline := time.Now().Add(limit)
	for {
		ms, err := clients.reports()
		if err != nil {
			return err
		}
		if done(ms) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", limit, what)
		}
		sleep(ctx, 100*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func sumOf(ms []clientMsg, f func(clientMsg) int) int {
	n := 0
	for _, m := range ms {
		n += f(m)
	}
	return n
}

// hgetallCalls is how many HGETALLs the Redis has run, scripts' included: every snapshot
// longhaul reads is one (jobs.Store.Get).
func hgetallCalls(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, fmt.Errorf("read INFO commandstats: %w", err)
	}
	for line := range strings.Lines(info) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_hgetall:calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		return strconv.ParseInt(calls, 10, 64)
	}
	return 0, nil // none yet
}

// probeHealth sends GET /healthz to base every 10 ms, one at a time, until stop is closed,
// and returns the latencies of those answered 200 and the number of the others.
func probeHealth(ctx context.Context, base string, stop <-chan struct{}) (Hist, int) {
	var h Hist
	errs := 0
	client, err := newRawHTTP(base)
	if err != nil {
		return h, 1
	}
	defer client.close()
	for {
		select {
		case <-stop:
			return h, errs
		case <-ctx.Done():
			return h, errs
		case <-time.After(10 * time.Millisecond):
		}
		probe, cancel := context.WithTimeout(ctx, 5*time.Second)
		t0 := time.Now()
		status, _, err := client.do(probe, http.MethodGet, "/healthz", "", nil)
		cancel()
		if err != nil || status != http.StatusOK {
			errs++
			continue
		}
		h.Record(time.Since(t0))
	}
}

// peakRSS reads a process's RSS every 250 ms until stop is closed, and returns the most.
func peakRSS(p *devbin.Process, stop <-chan struct{}) int64 {
	peak := int64(0)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		if rss, err := rssBytes(p); err == nil {
			peak = max(peak, rss)
		}
		select {
		case <-t.C:
		case <-stop:
			return peak
		}
	}
}

// AfterCloseResult is an API's memory once many connections have come and gone.
type AfterCloseResult struct {
	Conns int
	// RSSIdle is before any connection; RSSOpen with all of them open and idle. FDsIdle
	// and FDsOpen are the API's open descriptors then, to tell that the connections did
	// open and close.
	RSSIdle, RSSOpen int64
	FDsIdle, FDsOpen int
	// Samples are the RSS after the connections closed.
	Samples []RSSSample
}

// RSSSample is a process's RSS and open descriptors some time after an event.
type RSSSample struct {
	After time.Duration
	RSS   int64
	FDs   int
}

// RSSEnd is the last sample's RSS.
func (a AfterCloseResult) RSSEnd() int64 {
	if len(a.Samples) == 0 {
		return 0
	}
	return a.Samples[len(a.Samples)-1].RSS
}

// Ratio is the RSS at the last sample over the idle process's.
func (a AfterCloseResult) Ratio() float64 {
	if a.RSSIdle == 0 {
		return 0
	}
	return float64(a.RSSEnd()) / float64(a.RSSIdle)
}

// runAfterClose opens many connections to an idle API, closes them all as browsers leaving
// would, and reads the API's RSS until the plan's wait has passed.
func (b *bench) runAfterClose(ctx context.Context, rep *Report) error {
	p := b.plan
	s, err := b.newLiveStage(ctx, "afterclose", p.StormJobs, fanFiles, p.AfterCloseConns, nil)
	if err != nil {
		return err
	}
	defer s.close()
	lh, srv := s.api, s.api.server()
	res := &AfterCloseResult{}
	if res.RSSIdle, err = settledRSS(ctx, srv, p.Fan.Idle); err != nil {
		return err
	}
	res.FDsIdle = openFiles(lh.Process)
	clients, err := b.startClients(ctx, s.rig, srv, s.ids, p.AfterCloseConns)
	if err != nil {
		return err
	}
	for _, m := range clients.ready {
		res.Conns += m.Conns
	}
	sleep(ctx, p.Fan.Idle)
	if res.RSSOpen, err = rssBytes(lh.Process); err != nil {
		clients.quit()
		return err
	}
	res.FDsOpen = openFiles(lh.Process)
	clients.quit()
	closed := time.Now()
	const samples = 6
	for i := range samples + 1 {
		at := p.AfterCloseWait * time.Duration(i) / samples
		sleep(ctx, time.Until(closed.Add(at)))
		rss, err := rssBytes(lh.Process)
		if err != nil {
			return err
		}
		res.Samples = append(res.Samples, RSSSample{After: at, RSS: rss, FDs: openFiles(lh.Process)})
	}
	// Profiled after the last sample: the profile's collection would change what it reads.
	if err := b.profileIdle(ctx, lh, "afterclose-after"); err != nil {
		b.logf("  profile: %v", err)
	}
	b.logf("  after close: %d connections; RSS idle %.1f MiB, open %.1f MiB, %v after they closed %.1f MiB",
		res.Conns, mib(res.RSSIdle), mib(res.RSSOpen), p.AfterCloseWait, mib(res.RSSEnd()))
	rep.AfterClose = res
	return nil
}

// openFiles is the number of descriptors process p holds open, or -1 when /proc does not
// tell.
func openFiles(p *devbin.Process) int {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.PID()))
	if err != nil {
		return -1
	}
	return len(fds)
}
