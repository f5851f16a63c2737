package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/redis/go-redis/v9"
)

// WorkerResult is the worker path beside asynq running no-op tasks.
type WorkerResult struct {
	Jobs, FilesPerJob, Concurrency int
	// Took is from the first event of any job to the last job completed.
	Took  time.Duration
	Files int // files found written in the storage directory
	// NoopTasks ran in NoopTook, from the first task's start to the last one's return.
	NoopTasks int
	NoopTook  time.Duration
	// WorkerCPU is the longhaul worker's CPU use while it ran, in cores.
	WorkerCPU float64
}

// FileRate is the files per second through the whole path.
func (w WorkerResult) FileRate() float64 { return rate(w.Jobs*w.FilesPerJob, w.Took) }

// JobRate is the jobs per second.
func (w WorkerResult) JobRate() float64 { return rate(w.Jobs, w.Took) }

// NoopRate is asynq's no-op tasks per second.
func (w WorkerResult) NoopRate() float64 { return rate(w.NoopTasks, w.NoopTook) }

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// workerFiles are the files of every job of the worker path and end to end: all available
// (divisible by 7), so that each is written.
var workerFiles = []int64{7, 14, 21, 28}

// runWorkerPath queues jobs, then lets one `longhaul worker` with a file time of 0 run them
// all: claim, a processing and a ready update per file (each with its seq and publish),
// every file written and synced, completion. Then asynq runs as many no-op tasks of the
// same payload in a process of its own, with the same concurrency.
func (b *bench) runWorkerPath(ctx context.Context, rep *Report) error {
	r, err := b.newRig(ctx, "worker")
	if err != nil {
		return err
	}
	defer r.close()
	rdb := r.rdb
	p := b.plan
	res := &WorkerResult{Jobs: p.WorkerJobs, FilesPerJob: len(workerFiles), Concurrency: p.WorkerConcurrency}
	if err := queueJobs(ctx, rdb, p.WorkerJobs); err != nil {
		return err
	}
	w, err := watchJobs(ctx, rdb, p.WorkerJobs)
	if err != nil {
		return err
	}
	defer w.close()
	lh, err := r.longhaul(ctx, "worker", map[string]string{"LONGHAUL_WORKER_CONCURRENCY": strconv.Itoa(p.WorkerConcurrency)})
	if err != nil {
		return err
	}
	cpu0, _ := cpuTime(lh.PID())
	wait := b.profileDuring(ctx, lh, 3*time.Second, "worker.cpu.pprof")
	if b.profiling() {
		go b.profile(ctx, lh, "trace?seconds=1", "worker.trace")
	}
	if !w.wait(ctx, 5*time.Minute) {
		_, _, n, _ := w.span()
		return fmt.Errorf("only %d of %d jobs finished in 5 minutes:\n%s", n, p.WorkerJobs, lh.Tail(10))
	}
	cpu1, _ := cpuTime(lh.PID())
	first, last, _, completed := w.span()
	res.Took = last.Sub(first)
	res.WorkerCPU = (cpu1 - cpu0).Seconds() / res.Took.Seconds()
	if err := wait(); err != nil {
		b.logf("  profile: %v", err)
	}
	if completed != p.WorkerJobs {
		return fmt.Errorf("%d of %d jobs completed", completed, p.WorkerJobs)
	}
	if res.Files, err = countFiles(filepath.Join(r.dir, "files")); err != nil {
		return err
	}
	if res.Files != p.WorkerJobs*len(workerFiles) {
		return fmt.Errorf("%d files written, want %d", res.Files, p.WorkerJobs*len(workerFiles))
	}
	lh.Stop(10 * time.Second)

	res.NoopTasks = p.NoopTasks
	if res.NoopTook, err = b.runNoop(ctx, r, p.NoopTasks); err != nil {
		return err
	}
	b.logf("  worker: %.0f files/s (%.0f jobs/s); asynq no-op: %.0f tasks/s", res.FileRate(), res.JobRate(), res.NoopRate())
	rep.Worker = res
	return nil
}

// queueJobs creates n jobs of workerFiles and queues their tasks, as the API would.
func queueJobs(ctx context.Context, rdb *redis.Client, n int) error {
	store := jobs.NewStore(rdb, jobs.Options{})
	queue := asynq.NewClientFromRedisClient(rdb)
	for range n {
		id := jobs.NewID()
		if err := store.Create(ctx, id, workerFiles); err != nil {
			return err
		}
		task, err := tasks.NewDownloadTask(tasks.DownloadPayload{JobID: id}, len(workerFiles), taskOptions)
		if err != nil {
			return err
		}
		if _, err := queue.EnqueueContext(ctx, task); err != nil {
			return err
		}
	}
	return nil
}

// runNoop queues n download tasks on the no-op queue, then runs them in a no-op worker
// process, and returns how long they took.
func (b *bench) runNoop(ctx context.Context, r *rig, n int) (time.Duration, error) {
	queue := asynq.NewClientFromRedisClient(r.rdb)
	for range n {
		task, err := tasks.NewDownloadTask(tasks.DownloadPayload{JobID: jobs.NewID()}, len(workerFiles), taskOptions)
		if err != nil {
			return 0, err
		}
		if _, err := queue.EnqueueContext(ctx, task, asynq.Queue(noopQueue)); err != nil {
			return 0, err
		}
	}
	done := make(chan noopDone, 1)
	onLine := func(line string) {
		var d noopDone
		if json.Unmarshal([]byte(line), &d) == nil && d.Type == "done" {
			done <- d
		}
	}
	p, err := r.start(devbin.Spec{Name: "asynq no-op worker", Log: filepath.Join(r.dir, "noop.log"),
		OnLine: onLine, Args: []string{b.self, cmdNoopWorker, "-redis", r.redis.Addr(),
			"-concurrency", strconv.Itoa(b.plan.WorkerConcurrency), "-n", strconv.Itoa(n)}})
	if err != nil {
		return 0, err
	}
	select {
	case d := <-done:
		return time.Duration(d.Last - d.First), nil
	case <-p.Done():
		return 0, p.ExitError()
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("the no-op worker did not finish %d tasks in 5 minutes", n)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// countFiles counts the regular files under dir.
func countFiles(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	return n, err
}
