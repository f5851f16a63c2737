package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
	"golang.org/x/sync/errgroup"
)

// postJobs posts the run's jobs through the API, a few at a time, and returns their ids.
// Job i has the files 7(i·files+1) ... 7(i·files+files): all available, all distinct.
func (c *cluster) postJobs(ctx context.Context) ([]string, error) {
	begin := time.Now()
	ids := make([]string, c.o.jobs)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range ids {
		g.Go(func() error {
			files := make([]int64, c.o.files)
			for j := range files {
				files[j] = 7 * int64(i*c.o.files+j+1)
			}
			id, err := c.post(ctx, files)
			ids[i] = id
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	c.out.printf("posted %d jobs (%d files) in %v", len(ids), len(ids)*c.o.files, time.Since(begin).Round(time.Millisecond))
	return ids, nil
}

func (c *cluster) post(ctx context.Context, files []int64) (string, error) {
	body, _ := json.Marshal(map[string]any{"file_ids": files})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.apiURL+"/v1/download/initiate", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("post a job: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		JobID string `json:"job_id"`
	}
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(raw, &out) != nil || out.JobID == "" {
		return "", fmt.Errorf("post a job: %d %s", resp.StatusCode, raw)
	}
	return out.JobID, nil
}

// stats are what the chaos phase did.
type stats struct {
	elapsed         time.Duration
	sigkills        int
	sigterms        int
	inProgress      int // kills that hit a worker while a file of one of its jobs was in progress
	filesInProgress int // the files in progress at those kills, summed
	redisRestarts   int
	failures        []string // what went wrong during the phase itself
}

func (s *stats) kills() int { return s.sigkills + s.sigterms }

// chaos kills a random worker every -kill-every or so, starting a replacement each time,
// and kills and restarts Redis once, for -duration or until every job has finished.
func (c *cluster) chaos(ctx context.Context, ids []string) *stats {
	rng := rand.New(rand.NewPCG(c.o.seed, c.o.seed>>32|1))
	st := &stats{}
	begin := time.Now()
	end := begin.Add(c.o.duration)
	// Redis dies once, somewhere in the middle of the phase.
	redisAt := begin.Add(time.Duration(float64(c.o.duration) * (0.35 + 0.3*rng.Float64())))
	// wait is how long a kill may wait for its victim to be in the middle of a file: the
	// first one long enough for work to have started, later ones briefly.
	wait := 20 * time.Second
	for ctx.Err() == nil && time.Now().Before(end) {
		if c.allFinished(ctx, ids) {
			c.out.printf("every job finished %v into the chaos phase; ending it early", time.Since(begin).Round(100*time.Millisecond))
			break
		}
		if st.redisRestarts == 0 && !time.Now().Before(redisAt) {
			c.crashRedis(ctx, rng, st)
		} else {
			// SIGKILL only early (the first kill always), so that asynq's recovery after a
			// crash, one to two minutes, fits the run; SIGTERM afterwards.
			sig := syscall.SIGTERM
			if time.Since(begin) < c.o.sigkillWindow && (st.sigkills == 0 || rng.IntN(2) == 0) {
				sig = syscall.SIGKILL
			}
			c.kill(ctx, rng, sig, wait, ids, st)
			wait = 6 * time.Second // a heartbeat of a new worker, and some
		}
		gap := time.Duration(float64(c.o.killEvery) * (0.5 + rng.Float64()))
		select {
		case <-ctx.Done():
		case <-time.After(gap):
		}
	}
	if st.redisRestarts == 0 && ctx.Err() == nil {
		c.crashRedis(ctx, rng, st) // the phase ended early: Redis still dies once
	}
	st.elapsed = time.Since(begin)
	c.out.printf("chaos phase over after %v: %d kills (%d SIGKILL, %d SIGTERM), %d while a file was in progress (%d files), %d Redis restart(s)",
		st.elapsed.Round(100*time.Millisecond), st.kills(), st.sigkills, st.sigterms, st.inProgress, st.filesInProgress, st.redisRestarts)
	return st
}

// kill sends sig to a worker and starts a replacement. It waits, at most wait, for a
// worker that is in the middle of a file, and picks one of those; after that, or once
// every job has finished, any worker.
func (c *cluster) kill(ctx context.Context, rng *rand.Rand, sig syscall.Signal, wait time.Duration, ids []string, st *stats) {
	var victim *devbin.Longhaul
	var hit inProgress
	deadline := time.Now().Add(wait)
	nextCheck := time.Now().Add(time.Second)
	for victim == nil && ctx.Err() == nil {
		if time.Now().After(nextCheck) {
			nextCheck = time.Now().Add(time.Second)
			if c.allFinished(ctx, ids) {
				deadline = time.Now()
			}
		}
		busy := c.inProgress(ctx)
		var candidates []*devbin.Longhaul
		for _, w := range c.workers {
			if busy[w.PID()].files > 0 {
				candidates = append(candidates, w)
			}
		}
		switch {
		case len(candidates) > 0:
			victim = candidates[rng.IntN(len(candidates))]
			hit = busy[victim.PID()]
		case !time.Now().Before(deadline):
			victim = c.workers[rng.IntN(len(c.workers))]
		default:
			time.Sleep(100 * time.Millisecond)
		}
	}
	if victim == nil {
		return
	}
	c.workers = slices.DeleteFunc(c.workers, func(w *devbin.Longhaul) bool { return w == victim })
	if hit.files > 0 {
		st.inProgress++
		st.filesInProgress += hit.files
	}
	if sig == syscall.SIGKILL {
		st.sigkills++
		victim.Kill()
	} else {
		st.sigterms++
		// A worker stopped with SIGTERM hands its jobs back at their next checkpoint and
		// exits within its shutdown timeout.
		if err := victim.Stop(c.o.shutdownTimeout + 10*time.Second); err != nil {
			st.failures = append(st.failures, err.Error())
		} else if !victim.State().Success() {
			st.failures = append(st.failures, fmt.Sprintf("%s (pid %d) exited with %v after SIGTERM; want status 0 (see %s)",
				victim.Name(), victim.PID(), victim.State(), victim.LogPath()))
		}
	}
	next, err := c.startWorker(ctx)
	replacement := "none: " + fmt.Sprint(err)
	if err == nil {
		replacement = fmt.Sprintf("%s (pid %d)", next.Name(), next.PID())
	} else {
		st.failures = append(st.failures, "start a replacement worker: "+err.Error())
	}
	c.out.printf("%s %s (pid %d): %d file(s) in progress in job(s) %v; replaced by %s",
		sigName(sig), victim.Name(), victim.PID(), hit.files, hit.jobs, replacement)
}

// inProgress is what one worker was doing when a kill was decided.
type inProgress struct {
	files int      // files in progress (processing, 0 < percent < 100)
	jobs  []string // the jobs they belong to
}

// inProgress reads, for each worker process by pid, the files in progress of the jobs that
// asynq says it runs. asynq writes that list with its heartbeat, every 5 s, so a job that a
// worker took up since is missing from it: the count errs low, never high (a job that moved
// on is no longer processing there, or no longer listed).
func (c *cluster) inProgress(ctx context.Context) map[int]inProgress {
	servers, err := c.insp.Servers()
	if err != nil {
		return nil
	}
	out := map[int]inProgress{}
	for _, s := range servers {
		var ip inProgress
		for _, w := range s.ActiveWorkers {
			j, err := c.store.Get(ctx, w.TaskID)
			if err != nil || j.Status != jobs.StatusProcessing {
				continue
			}
			n := 0
			for _, f := range j.Files {
				if f.Status == jobs.StatusProcessing && f.Percent > 0 && f.Percent < 100 {
					n++
				}
			}
			if n > 0 {
				ip.files += n
				ip.jobs = append(ip.jobs, j.ID)
			}
		}
		out[s.PID] = ip
	}
	return out
}

// orphans describes the active tasks whose lease has expired: their worker died, and
// asynq's recoverer will hand them on.
func (c *cluster) orphans() string {
	active, err := c.insp.ListActiveTasks(tasks.Queue, asynq.PageSize(1000))
	if err != nil {
		return ""
	}
	var ids []string
	for _, t := range active {
		if t.IsOrphaned {
			ids = append(ids, t.ID)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	return fmt.Sprintf("; %d orphaned (lease expired, awaiting asynq's recoverer): %v", len(ids), ids)
}

// allFinished reports whether every job is terminal.
func (c *cluster) allFinished(ctx context.Context, ids []string) bool {
	for _, id := range ids {
		j, err := c.store.Get(ctx, id)
		if err != nil || !j.Status.Terminal() {
			return false
		}
	}
	return true
}

// drain waits, until ctx ends, for every job to be terminal and for asynq to hold no task
// that is still to run. It reports whether that happened.
func (c *cluster) drain(ctx context.Context, ids []string) bool {
	begin := time.Now()
	lastReport := begin
	open := slices.Clone(ids)
	for {
		open = slices.DeleteFunc(open, func(id string) bool {
			j, err := c.store.Get(ctx, id)
			return err == nil && j.Status.Terminal()
		})
		q, qerr := c.insp.GetQueueInfo(tasks.Queue)
		queued := -1
		if qerr == nil {
			queued = q.Active + q.Pending + q.Scheduled + q.Retry
		}
		if len(open) == 0 && queued == 0 {
			c.out.printf("drained: every job finished and no task is left to run, %v after the chaos phase", time.Since(begin).Round(100*time.Millisecond))
			return true
		}
		if time.Since(lastReport) >= 10*time.Second {
			lastReport = time.Now()
			c.out.printf("draining: %d of %d jobs finished; asynq: %s%s", len(ids)-len(open), len(ids),
				queueSummary(q, qerr), c.orphans())
		}
		select {
		case <-ctx.Done():
			c.out.printf("timed out draining: %d of %d jobs finished; asynq: %s", len(ids)-len(open), len(ids), queueSummary(q, qerr))
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func sigName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}
