package main

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
)

// result is what the end checks found.
type result struct {
	o       options
	st      *stats
	elapsed time.Duration

	jobs       map[string]int // final job status (or "missing") → jobs
	filesTotal int
	filesReady int
	stored     int // ready files found in storage with the size their status gives

	auditOnce    int // files made ready exactly once by the audit
	auditMore    int // files made ready more than once
	auditMissing int // files the audit never saw made ready
	auditStray   int // audit entries for files that are not part of their job

	tasks map[string]int // asynq state of the jobs' tasks → tasks
	queue string         // asynq's counts for the queue

	failures []string
}

func (r *result) fail(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// verify checks the end state. It has its own time: the run's may be used up.
func (c *cluster) verify(ids []string, st *stats, drained bool) *result {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := &result{o: c.o, st: st, jobs: map[string]int{}, tasks: map[string]int{}}
	r.failures = append(r.failures, st.failures...)
	if !drained {
		r.fail("the jobs did not drain within -timeout %v", c.o.timeout)
	}
	for _, id := range ids {
		c.verifyJob(ctx, r, id)
	}
	c.verifyQueue(r)
	if st.inProgress < c.o.minKillsInProgress {
		r.fail("only %d kill(s) hit a file in progress; -min-kills-in-progress is %d (more jobs or files, or a longer -file-time-max, keep the workers busier)",
			st.inProgress, c.o.minKillsInProgress)
	}
	c.verifyProcesses(r)
	r.elapsed = time.Since(c.started)
	return r
}

// verifyJob checks that a job completed at 100% with every file ready, stored, and made
// ready exactly once, and that its task is completed in asynq.
func (c *cluster) verifyJob(ctx context.Context, r *result, id string) {
	j, err := c.store.Get(ctx, id)
	if err != nil {
		r.jobs["missing"]++
		r.fail("job %s: %v", id, err)
		return
	}
	r.jobs[string(j.Status)]++
	if j.Status != jobs.StatusCompleted || j.Progress.Percent != 100 {
		r.fail("job %s ended %s at %v%% (%d of %d files ready)", id, j.Status, j.Progress.Percent, j.Progress.FilesReady, len(j.Files))
	}
	made := map[string]int{}
	entries, err := c.store.Audit(ctx, id)
	if err != nil {
		r.fail("job %s: %v", id, err)
	}
	for _, e := range entries {
		file, _, _ := strings.Cut(e, " ")
		made[file]++
	}
	for _, f := range j.Files {
		r.filesTotal++
		fid := strconv.FormatInt(f.ID, 10)
		if f.Status == jobs.StatusReady {
			r.filesReady++
		} else {
			r.fail("job %s: file %d ended %s", id, f.ID, f.Status)
		}
		switch n := made[fid]; {
		case n == 1:
			r.auditOnce++
		case n == 0:
			r.auditMissing++
			r.fail("job %s: file %d was never made ready by the audit", id, f.ID)
		default:
			r.auditMore++
			r.fail("job %s: file %d was made ready %d times by the audit %v", id, f.ID, n, entries)
		}
		delete(made, fid)
		if f.Status == jobs.StatusReady {
			size, err := c.files.Size(id, f.ID)
			if err == nil && size == f.Size {
				r.stored++
			} else {
				r.fail("job %s: file %d is ready with %d bytes, but storage has %v", id, f.ID, f.Size, sizeString(size, err))
			}
		}
	}
	for fid, n := range made {
		r.auditStray += n
		r.fail("job %s: the audit names file %s, which is not part of the job", id, fid)
	}
	state := "gone"
	if info, err := c.insp.GetTaskInfo(tasks.Queue, id); err == nil {
		state = info.State.String()
	}
	r.tasks[state]++
	if state != asynq.TaskStateCompleted.String() {
		r.fail("job %s: its task is %s in asynq, want completed", id, state)
	}
}

func sizeString(size int64, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d bytes", size)
}

// verifyQueue checks that asynq's queue holds nothing that is still to run or that died.
func (c *cluster) verifyQueue(r *result) {
	q, err := c.insp.GetQueueInfo(tasks.Queue)
	r.queue = queueSummary(q, err)
	if err != nil {
		r.fail("read asynq's queue: %v", err)
		return
	}
	if q.Active+q.Pending+q.Scheduled+q.Retry+q.Archived > 0 {
		r.fail("asynq's queue is not empty: %s", r.queue)
	}
}

func queueSummary(q *asynq.QueueInfo, err error) string {
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return fmt.Sprintf("%d active, %d pending, %d scheduled, %d retry, %d archived, %d completed",
		q.Active, q.Pending, q.Scheduled, q.Retry, q.Archived, q.Completed)
}

// verifyProcesses checks that no process died without being told to, and that no log
// shows a panic or a data race.
func (c *cluster) verifyProcesses(r *result) {
	procs := c.redisProcesses()
	for _, lh := range c.procs {
		procs = append(procs, lh.Process)
	}
	for _, p := range procs {
		if p.ExitedByItself() {
			r.fail("%s (pid %d) exited by itself with %v; see %s", p.Name(), p.PID(), p.State(), p.LogPath())
		}
	}
	logs, _ := filepath.Glob(filepath.Join(c.dir, "logs", "*.log"))
	for _, path := range logs {
		if line := firstAlarm(path); line != "" {
			r.fail("%s: %s", filepath.Base(path), line)
		}
	}
}

// firstAlarm returns the first line of a log that shows a panic, a fatal runtime error or
// a data race.
func firstAlarm(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") ||
			strings.Contains(line, "WARNING: DATA RACE") {
			return line
		}
	}
	return ""
}

// print writes the counts and the verdict.
func (r *result) print(out *printer) {
	o, st := r.o, r.st
	out.printf("jobs:   %d posted: %d completed, %d failed, %d canceled, %d unfinished, %d missing",
		o.jobs, r.jobs["completed"], r.jobs["failed"], r.jobs["canceled"],
		r.jobs["queued"]+r.jobs["processing"], r.jobs["missing"])
	out.printf("files:  %d available, %d ready, %d stored; audit: %d made ready exactly once, %d more than once, %d never, %d stray",
		o.jobs*o.files, r.filesReady, r.stored, r.auditOnce, r.auditMore, r.auditMissing, r.auditStray)
	out.printf("asynq:  the jobs' tasks: %s; queue: %s", countsString(r.tasks), r.queue)
	out.printf("chaos:  %d kills (%d SIGKILL, %d SIGTERM), %d while a file was in progress (%d files; at least %d wanted), %d Redis restart(s)",
		st.kills(), st.sigkills, st.sigterms, st.inProgress, st.filesInProgress, o.minKillsInProgress, st.redisRestarts)
	if len(r.failures) == 0 {
		out.printf("PASS in %v", r.elapsed.Round(100*time.Millisecond))
		return
	}
	out.printf("FAIL in %v: %d check(s) failed:", r.elapsed.Round(100*time.Millisecond), len(r.failures))
	const shown = 20
	for i, f := range r.failures {
		if i == shown {
			out.printf("  ... and %d more", len(r.failures)-shown)
			break
		}
		out.printf("  - %s", f)
	}
}

func countsString(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}
