package main

// Durability under faults ("checkpoint per file, fence per attempt", ARCHITECTURE.md
// decision 3): a worker stopped with SIGTERM in the middle of a file, a worker frozen with
// SIGSTOP past its lease and then thawed, and Redis killed with SIGKILL mid-run. Workers run
// as child processes (startChild) so that they can be signalled like in production; the
// audit kept in Redis (jobs.Store.Audit) proves that no file was made ready twice.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/internal/proctest"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/redis/go-redis/v9"
)

// TestSIGTERMWorkerResumesFromCheckpoint stops a worker with SIGTERM in the middle of files
// that take longer (6 s) than its shutdown timeout (2 s), so the worker cannot simply finish
// them: it has to hand the job back at its last checkpoint. The next worker resumes from
// there: no file shows less than it had at the SIGTERM, the files already ready are not made
// again, and every file is made ready exactly once.
func TestSIGTERMWorkerResumesFromCheckpoint(t *testing.T) { resumeAfterSIGTERM(t, inDirectory) }

// resumeAfterSIGTERM is TestSIGTERMWorkerResumesFromCheckpoint with files kept where keep
// puts them.
func resumeAfterSIGTERM(t *testing.T, keep fileStorage) {
	t.Parallel()
	rs := redistest.Start(t, redistest.Options{})
	env := fastEnv(t, rs.URL(), "LONGHAUL_FILE_TIME_MIN", "6s", "LONGHAUL_FILE_TIME_MAX", "6s",
		"LONGHAUL_FILE_CONCURRENCY", "2", "LONGHAUL_SHUTDOWN_TIMEOUT", "2s")
	keep(t, env)
	base := startRun(t, "api", env)
	first := startChild(t, "worker", env)
	store := jobs.NewStore(rs.Client(), jobs.Options{})

	ids := []int64{70000, 70007, 70014, 70021}
	p := postJob(client{t, base}, ids...)
	// The first two files are ready and the next two well into their 6 s, far enough from
	// both ends that the SIGTERM lands in the middle of them.
	proctest.WaitUntil(t, time.Minute, "a file ready and another between 20% and 80%", func() bool {
		s := p.poll()
		return countReady(s) > 0 && len(filesMidway(s, 20, 80)) > 0
	})
	exitAfter(t, first, syscall.SIGTERM, 30*time.Second)

	atStop := p.poll()
	checkpoints := filesMidway(atStop, 0, 100)
	if atStop.Status != "processing" || len(checkpoints) == 0 {
		t.Fatalf("after the SIGTERM the job is %s with files %+v; want processing with a file part-way",
			atStop.Status, atStop.Files)
	}
	// A handed-back task waits in retry (or pending) for the next worker. A task left active
	// would wait for its lease to expire, a minute or two, as after a crash.
	if st := taskState(t, rs.Client(), p.id); st != asynq.TaskStateRetry && st != asynq.TaskStatePending {
		t.Errorf("after the SIGTERM the job's task is %s; want retry or pending (handed back)", st)
	}
	madeBefore := auditByFile(t, store, p.id)
	firstToken := onlyToken(t, madeBefore)

	startChild(t, "worker", env)
	lowest := map[int64]float64{} // the lowest percent each part-way file showed after the SIGTERM
	proctest.WaitUntil(t, 3*time.Minute, "the job to finish on the next worker", func() bool {
		s := p.poll()
		for _, f := range s.Files {
			if _, ok := checkpoints[f.FileID]; ok {
				if low, seen := lowest[f.FileID]; !seen || f.Percent < low {
					lowest[f.FileID] = f.Percent
				}
			}
		}
		return s.terminal()
	})
	for id, cp := range checkpoints {
		if lowest[id] < cp {
			t.Errorf("file %d was at %v%% at the SIGTERM and showed %v%% after the resume: work was redone from before its checkpoint",
				id, cp, lowest[id])
		}
	}
	checkCompleted(t, p.last, ids)
	made := checkAuditOnce(t, store, p.id, ids)
	for _, id := range ids {
		switch _, wasReady := madeBefore[id]; {
		case wasReady && made[id][0] != firstToken:
			t.Errorf("file %d was ready before the SIGTERM, but the audit says attempt %s made it", id, made[id][0])
		case !wasReady && made[id][0] == firstToken:
			t.Errorf("file %d was not ready at the SIGTERM, but the audit says the stopped attempt made it", id)
		}
	}
}

// TestSIGSTOPWorkerPastItsLeaseIsFencedOff freezes a worker with SIGSTOP mid-job until asynq
// has given the job to another worker (its lease expired), then thaws it while the other
// worker is still at work. The thawed attempt must not write anything: the job ends
// completed with every file ready, each made by one attempt only, and the files the frozen
// attempt made are exactly those it had made before it froze.
func TestSIGSTOPWorkerPastItsLeaseIsFencedOff(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for asynq's lease to expire (one to two minutes)")
	}
	t.Parallel()
	rs := redistest.Start(t, redistest.Options{})
	env := fastEnv(t, rs.URL(), "LONGHAUL_FILE_TIME_MIN", "2s", "LONGHAUL_FILE_TIME_MAX", "3s",
		"LONGHAUL_FILE_CONCURRENCY", "2")
	base := startRun(t, "api", env)
	frozen := startChild(t, "worker", env)
	store := jobs.NewStore(rs.Client(), jobs.Options{})

	ids := []int64{70000, 70007, 70014, 70021, 70028, 70035, 70042, 70049}
	p := postJob(client{t, base}, ids...)
	proctest.WaitUntil(t, time.Minute, "a file ready and another part-way", func() bool {
		s := p.poll()
		return countReady(s) > 0 && len(filesMidway(s, 0, 100)) > 0
	})
	if err := frozen.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	atStop := getJob(t, store, p.id)
	madeBefore := auditByFile(t, store, p.id)
	frozenToken := onlyToken(t, madeBefore)

	startChild(t, "worker", env)
	// asynq hands the task on once the frozen worker's lease (30 s) has expired by another
	// 30 s and a recoverer (every minute) has seen it: one to two minutes.
	proctest.WaitUntil(t, 4*time.Minute, "another worker to take the job over", func() bool {
		p.poll() // nothing may go backwards meanwhile
		return takenOver(t, store, p.id, atStop, frozenToken)
	})
	if err := frozen.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	final := p.untilDone(3 * time.Minute)
	checkCompleted(t, final, ids)
	made := checkAuditOnce(t, store, p.id, ids)
	for _, id := range ids {
		_, wasReady := madeBefore[id]
		if byFrozen := made[id][0] == frozenToken; byFrozen != wasReady {
			t.Errorf("file %d: made by the frozen attempt = %v, ready before the SIGSTOP = %v; the thawed attempt must write nothing",
				id, byFrozen, wasReady)
		}
	}
	proctest.WaitUntil(t, 30*time.Second, "the job's task to be completed in asynq", func() bool {
		return taskState(t, rs.Client(), p.id) == asynq.TaskStateCompleted
	})
	select {
	case <-frozen.Done():
		t.Errorf("the thawed worker exited (%v); it should go on serving", frozen.State())
	default:
	}
}

// TestRedisKilledMidRunLosesNoAcknowledgedJob kills Redis (AOF, fsync every second) with
// SIGKILL while jobs run and others are being posted, and restarts it. Every job
// acknowledged with 202 at least two seconds before the kill, and every one acknowledged
// after the restart, ends completed with each file made ready exactly once; no percent goes
// backwards across the restart; and no job that was never acknowledged is left half made.
func TestRedisKilledMidRunLosesNoAcknowledgedJob(t *testing.T) {
	if testing.Short() {
		t.Skip("a task caught mid-dequeue by the kill waits for its lease to expire (up to two minutes)")
	}
	t.Parallel()
	rs := redistest.Start(t, redistest.Options{AppendOnly: true})
	// Two jobs at a time per worker, fewer than are posted, so that tasks wait in the queue
	// when Redis dies as well as run.
	env := fastEnv(t, rs.URL(), "LONGHAUL_FILE_TIME_MIN", "500ms", "LONGHAUL_FILE_TIME_MAX", "1500ms",
		"LONGHAUL_FILE_CONCURRENCY", "2", "LONGHAUL_WORKER_CONCURRENCY", "2")
	base := startRun(t, "api", env)
	startChild(t, "worker", env)
	startChild(t, "worker", env)
	store := jobs.NewStore(rs.Client(), jobs.Options{})
	c := client{t, base}

	posts := startPosting(base, 150*time.Millisecond)
	t.Cleanup(posts.stop)
	pollers := map[string]*poller{}
	pollerOf := func(id string) *poller {
		if pollers[id] == nil {
			pollers[id] = &poller{client: c, id: id}
		}
		return pollers[id]
	}
	// Kill Redis once ten jobs were acknowledged more than two seconds ago and one of them
	// is part-way through a file: the kill hits running and queued work that the test holds
	// to account.
	proctest.WaitUntil(t, 2*time.Minute, "ten acknowledged jobs, one part-way through a file", func() bool {
		old, midway := 0, false
		for _, a := range posts.acked() {
			if time.Since(a.at) < 2*time.Second {
				break
			}
			old++
			if s := pollerOf(a.id).poll(); !midway && s.Status == "processing" && len(filesMidway(s, 0, 100)) > 0 {
				midway = true
			}
		}
		return old >= 10 && midway
	})
	killedAt := time.Now()
	rs.Kill()
	time.Sleep(time.Second) // the outage itself: requests meanwhile are refused with 503
	restartedAt := time.Now()
	rs.Restart()
	proctest.WaitUntil(t, time.Minute, "/readyz after the restart", func() bool { return statusCode(t, base+"/readyz") == 200 })
	proctest.WaitUntil(t, time.Minute, "a job acknowledged after the restart", func() bool {
		acked := posts.acked()
		return len(acked) > 0 && acked[len(acked)-1].at.After(restartedAt)
	})
	posts.stop()

	var held []*poller // the jobs the test holds to account
	var window []string
	for _, a := range posts.acked() {
		before := killedAt.Sub(a.at)
		if a.at.Before(restartedAt) && before < 2*time.Second {
			window = append(window, fmt.Sprintf("%s %v before: %d", a.id, before.Round(time.Millisecond),
				statusCode(t, base+"/v1/download/status/"+a.id)))
			continue
		}
		if code := statusCode(t, base+"/v1/download/status/"+a.id); code != http.StatusOK {
			t.Errorf("job %s, acknowledged %v before the kill, answers %d after the restart: lost",
				a.id, before.Round(time.Millisecond), code)
			continue
		}
		held = append(held, pollerOf(a.id))
	}
	t.Logf("%d jobs acknowledged, %d held to account; acknowledged less than 2s before the kill (status now): %v",
		len(posts.acked()), len(held), window)
	proctest.WaitUntil(t, 4*time.Minute, "every acknowledged job to finish", func() bool {
		for _, p := range held {
			if !p.last.terminal() && !p.poll().terminal() {
				return false
			}
		}
		return true
	})
	for _, p := range held {
		checkCompleted(t, p.last, fileIDsOf(p.last))
		checkAuditOnce(t, store, p.id, fileIDsOf(p.last))
	}
	checkNoHalfJobs(t, store, rs, posts.acked())
}

// postJob posts a job that must be accepted and returns a poller of it.
func postJob(c client, ids ...int64) *poller {
	c.t.Helper()
	code, body := c.post(ids...)
	id, _ := body["job_id"].(string)
	if code != http.StatusAccepted || id == "" {
		c.t.Fatalf("initiate = %d %v", code, body)
	}
	return &poller{client: c, id: id}
}

// exitAfter sends sig to a child and waits, at most limit, for it to exit with status 0.
func exitAfter(t *testing.T, c *devbin.Longhaul, sig syscall.Signal, limit time.Duration) {
	t.Helper()
	if err := c.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(limit):
		t.Fatalf("the worker did not exit within %v of %v", limit, sig)
	}
	if !c.State().Success() {
		t.Errorf("the worker exited with %v after %v; want status 0", c.State(), sig)
	}
}

// filesMidway returns the files in progress strictly between lo and hi percent, by id.
func filesMidway(s jobStatus, lo, hi float64) map[int64]float64 {
	out := map[int64]float64{}
	for _, f := range s.Files {
		if f.Status == "processing" && f.Percent > lo && f.Percent < hi {
			out[f.FileID] = f.Percent
		}
	}
	return out
}

func fileIDsOf(s jobStatus) []int64 {
	ids := make([]int64, len(s.Files))
	for i, f := range s.Files {
		ids[i] = f.FileID
	}
	return ids
}

// checkCompleted checks that a job ended completed, at 100%, with every one of ids ready.
func checkCompleted(t *testing.T, s jobStatus, ids []int64) {
	t.Helper()
	if s.Status != "completed" || s.Progress.Percent != 100 || countReady(s) != len(ids) || len(s.Files) != len(ids) {
		t.Errorf("job %s ended %s at %v%% with %d of %d files ready; want completed, 100%%, all ready (files %+v)",
			s.JobID, s.Status, s.Progress.Percent, countReady(s), len(ids), s.Files)
	}
}

// auditByFile reads a job's audit: for each file made ready, the attempts that made it.
func auditByFile(t *testing.T, store *jobs.Store, id string) map[int64][]string {
	t.Helper()
	entries, err := store.Audit(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64][]string{}
	for _, e := range entries {
		file, token, _ := strings.Cut(e, " ")
		fid, err := strconv.ParseInt(file, 10, 64)
		if err != nil || token == "" {
			t.Fatalf("unreadable audit entry %q of job %s", e, id)
		}
		out[fid] = append(out[fid], token)
	}
	return out
}

// checkAuditOnce checks that each of ids was made ready exactly once and nothing else was,
// and returns the audit by file.
func checkAuditOnce(t *testing.T, store *jobs.Store, id string, ids []int64) map[int64][]string {
	t.Helper()
	made := auditByFile(t, store, id)
	for _, fid := range ids {
		if n := len(made[fid]); n != 1 {
			t.Errorf("job %s: file %d was made ready %d times by the audit (%v), want once", id, fid, n, made[fid])
			made[fid] = append(made[fid], "") // so callers may read made[fid][0]
		}
	}
	for fid := range made {
		if !slices.Contains(ids, fid) {
			t.Errorf("job %s: the audit names file %d, which is not part of the job", id, fid)
		}
	}
	return made
}

// onlyToken returns the one attempt named in an audit taken while only one attempt had run.
func onlyToken(t *testing.T, made map[int64][]string) string {
	t.Helper()
	tokens := map[string]bool{}
	for _, ts := range made {
		for _, tok := range ts {
			tokens[tok] = true
		}
	}
	if len(tokens) != 1 {
		t.Fatalf("the audit names %d attempts before the fault (%v); want exactly one", len(tokens), made)
	}
	for tok := range tokens {
		return tok
	}
	return ""
}

func getJob(t *testing.T, store *jobs.Store, id string) *jobs.Job {
	t.Helper()
	j, err := store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// takenOver reports whether an attempt other than the frozen one has written to the job: it
// made a file ready, or restarted a file that was in progress at the freeze (which counts
// one more attempt of that file).
func takenOver(t *testing.T, store *jobs.Store, id string, atStop *jobs.Job, frozenToken string) bool {
	t.Helper()
	for _, tokens := range auditByFile(t, store, id) {
		if slices.ContainsFunc(tokens, func(tok string) bool { return tok != frozenToken }) {
			return true
		}
	}
	now := getJob(t, store, id)
	for i, f := range atStop.Files {
		if f.Status == jobs.StatusProcessing && now.Files[i].Attempt > f.Attempt {
			return true
		}
	}
	return false
}

// taskState is the state in asynq, on rdb, of the task with id (a job's first task has
// the job's id).
func taskState(t *testing.T, rdb redis.UniversalClient, id string) asynq.TaskState {
	t.Helper()
	info, err := asynq.NewInspectorFromRedisClient(rdb).GetTaskInfo(tasks.Queue, id)
	if err != nil {
		t.Fatalf("task of job %s: %v", id, err)
	}
	return info.State
}

// checkNoHalfJobs checks that every job in Redis that was never acknowledged (its POST was
// refused or cut off by the outage) either finishes like any job or does not exist: the
// contract says that no half job remains.
func checkNoHalfJobs(t *testing.T, store *jobs.Store, rs *redistest.Server, acked []postAck) {
	t.Helper()
	known := map[string]bool{}
	for _, a := range acked {
		known[a.id] = true
	}
	keys, err := rs.Client().Keys(context.Background(), jobs.RecordsPattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	var others []string
	for _, k := range keys {
		id := k[strings.LastIndexByte(k, ':')+1:]
		if !known[id] {
			others = append(others, id)
		}
	}
	open := func() []string {
		var out []string
		for _, id := range others {
			if j, err := store.Get(context.Background(), id); err == nil && !j.Status.Terminal() {
				out = append(out, fmt.Sprintf("%s (%s, task %s)", id, j.Status, taskStateOrGone(rs, id)))
			}
		}
		return out
	}
	// A POST whose reply was lost may have left a whole job behind, which runs like any
	// other; give it the time a recovered task takes.
	deadline := time.Now().Add(2 * time.Minute)
	for len(open()) > 0 && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
	}
	if left := open(); len(left) > 0 {
		t.Errorf("jobs never acknowledged are left unfinished in Redis: %v", left)
	}
}

func taskStateOrGone(rs *redistest.Server, id string) string {
	return taskStateOrGoneOn(rs.Client(), id)
}

// taskStateOrGoneOn is the state of task id in asynq on rdb, or "gone".
func taskStateOrGoneOn(rdb redis.UniversalClient, id string) string {
	info, err := asynq.NewInspectorFromRedisClient(rdb).GetTaskInfo(tasks.Queue, id)
	if err != nil {
		return "gone"
	}
	return info.State.String()
}

// poster posts jobs in the background, as clients do, and records which were acknowledged.
type poster struct {
	base     string
	interval time.Duration
	quit     chan struct{}
	done     chan struct{}
	once     sync.Once

	mu   sync.Mutex
	acks []postAck // guarded by mu; appended by the posting goroutine
}

// postAck is one 202: the job and when its answer arrived.
type postAck struct {
	id string
	at time.Time
}

func startPosting(base string, interval time.Duration) *poster {
	p := &poster{base: base, interval: interval, quit: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	return p
}

func (p *poster) loop() {
	defer close(p.done)
	hc := &http.Client{Timeout: 10 * time.Second}
	for n := int64(0); ; n++ {
		select {
		case <-p.quit:
			return
		case <-time.After(p.interval):
		}
		base := 700000 + 21*n // three distinct ids, all available (divisible by 7)
		body, _ := json.Marshal(map[string]any{"file_ids": []int64{base, base + 7, base + 14}})
		resp, err := hc.Post(p.base+"/v1/download/initiate", "application/json", strings.NewReader(string(body)))
		if err != nil {
			continue // the outage; a client would retry
		}
		var out struct {
			JobID string `json:"job_id"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			p.mu.Lock()
			p.acks = append(p.acks, postAck{out.JobID, time.Now()})
			p.mu.Unlock()
		}
	}
}

// acked returns the acknowledged jobs so far, oldest first.
func (p *poster) acked() []postAck {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.acks)
}

// stop ends the posting and waits for it; it may be called more than once.
func (p *poster) stop() {
	p.once.Do(func() { close(p.quit) })
	<-p.done
}
