package worker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/origin"
	"github.com/longhaul-dev/longhaul/requestid"
	"github.com/longhaul-dev/longhaul/tasks"
	"golang.org/x/sync/errgroup"
)

// ErrStopping is what an attempt returns when its worker shuts down: the job is
// checkpointed and handed back to the queue.
var ErrStopping = errors.New("worker is shutting down")

// ErrOverShare is what an attempt returns when the job's principal runs as many jobs as it
// may: the task goes back to the queue, behind the jobs of others.
var ErrOverShare = errors.New("the job's principal runs as many jobs as it may")

// Handler runs one attempt at a download job per task.
type Handler struct {
	store JobStore
	files FileStore
	queue Queue
	cfg   Config
	log   *slog.Logger

	// stopping is closed by Worker.Shutdown; every wait of an attempt watches it.
	stopping chan struct{}
}

// NewHandler returns a Handler. Its zero Config fields take the defaults of Config.
func NewHandler(store JobStore, files FileStore, q Queue, cfg Config, log *slog.Logger) *Handler {
	cfg = cfg.WithDefaults()
	return &Handler{store: store, files: files, queue: q, cfg: cfg, log: log, stopping: make(chan struct{})}
}

// ProcessTask runs one attempt at the job a task names.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseDownloadPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	ctx = requestid.With(ctx, p.RequestID)
	task, _ := asynq.GetTaskID(ctx)
	if task == "" {
		task = p.JobID
	}
	a := &attempt{h: h, jobID: p.JobID, task: task, token: newToken(), log: h.log.With("job", p.JobID)}
	release, err := h.takeShare(ctx, p)
	if err != nil {
		return err
	}
	defer release()
	return a.outcome(ctx, a.run(ctx))
}

// takeShare takes a place among the running jobs of the job's principal, and returns what
// gives it back, or ErrOverShare.
func (h *Handler) takeShare(ctx context.Context, p tasks.DownloadPayload) (release func(), err error) {
	if h.cfg.Running == nil || p.Principal == "" {
		return func() {}, nil
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Hour)
	}
	held, err := h.cfg.Running.StartRunning(ctx, p.Principal, p.JobID, deadline)
	if err != nil {
		return nil, fmt.Errorf("take a running place: %w", err)
	}
	if !held {
		return nil, ErrOverShare
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := h.cfg.Running.StopRunning(ctx, p.Principal, p.JobID); err != nil {
			h.log.WarnContext(ctx, "running place not given back; it lapses at the job's deadline", "job", p.JobID, "err", err)
		}
	}, nil
}

// attempt is one run of a job by one worker. Its token fences it: once another attempt
// claims the job, every write of this one is refused.
type attempt struct {
	h     *Handler
	jobID string
	task  string // the asynq task it runs for: the job's, or a rescue's
	token string
	log   *slog.Logger

	// createdAt is when the job was created, once the attempt has claimed it.
	createdAt time.Time
	// job is the job as the attempt claimed it; nil until then.
	job *jobs.Job
	// began holds when this attempt began each file it prepares (file id → time.Time),
	// for the time it took.
	began sync.Map
}

// HeartbeatInterval is how often a running attempt shows a sign of life, beside its
// progress writes: the watchdog takes a job whose attempt shows none for a few of these to
// wait for a worker.
const HeartbeatInterval = 2 * time.Second

func newToken() string { return rand.Text()[:16] }

func (a *attempt) run(ctx context.Context) error {
	var job *jobs.Job
	err := a.persist(ctx, func() (err error) {
		job, err = a.h.store.ClaimFor(ctx, a.jobID, a.task, a.token)
		return err
	})
	if err != nil {
		return err
	}
	a.createdAt, a.job = job.CreatedAt, job
	defer a.beat(ctx)()
	a.log.InfoContext(ctx, "job attempt started", "attempt", a.token, "files", len(job.Files),
		"done", job.Progress.FilesDone)
	g, files := errgroup.WithContext(ctx)
	g.SetLimit(a.h.cfg.FileConcurrency)
	for _, f := range job.Files {
		if f.Status.Terminal() {
			continue
		}
		g.Go(func() error { return a.prepare(files, f) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var status jobs.Status
	err = a.persist(ctx, func() (err error) {
		status, err = a.h.store.Complete(ctx, a.jobID, a.token)
		return err
	})
	if err != nil {
		return err
	}
	a.h.cfg.Observer.JobFinished(status, a.createdAt)
	a.log.InfoContext(ctx, "job finished", "status", status)
	return a.announceEnd(ctx)
}

// announceEnd queues the deliveries of the job's end to its callback, if it has one. When
// it fails, the error makes asynq retry the task, whose next attempt finds the job finished
// and announces again; the deliveries' task ids keep that from delivering twice.
func (a *attempt) announceEnd(ctx context.Context) error {
	if a.h.cfg.Webhooks.Announcer == nil || (a.job != nil && a.job.Callback == nil) {
		return nil
	}
	job, err := a.h.store.Get(ctx, a.jobID)
	if errors.Is(err, jobs.ErrNotFound) {
		return nil
	}
	if err == nil {
		err = a.h.cfg.Webhooks.Announcer.Finished(ctx, job)
	}
	if err != nil {
		return fmt.Errorf("announce the end of job %s: %w", a.jobID, err)
	}
	return nil
}

// announceEndNow is announceEnd for a job ended on the way out of an attempt (failed, or
// canceled by an operator), also when ctx is done; a failure is only logged, as the
// attempt's own error is what asynq hears.
func (a *attempt) announceEndNow(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.announceEnd(ctx); err != nil {
		a.log.ErrorContext(ctx, "the job's end was not queued for its callback", "err", err)
	}
}

// outcome turns what ended an attempt into what asynq should do with the task.
func (a *attempt) outcome(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jobs.ErrNotFound):
		a.log.WarnContext(ctx, "job record is gone; dropping its task")
		return nil
	case errors.Is(err, jobs.ErrFinished):
		a.log.InfoContext(ctx, "job ended elsewhere (canceled or finished); attempt stops")
		// Whoever ended it may have died before its callback was told (this may be the
		// retry of a task whose attempt did): announcing again is harmless.
		return a.announceEnd(ctx)
	case errors.Is(err, jobs.ErrFenced):
		a.log.WarnContext(ctx, "attempt lost the job to a newer one; stopping", "attempt", a.token)
		return nil
	case errors.Is(err, jobs.ErrSuperseded):
		a.log.InfoContext(ctx, "a rescue took the job over from this task; it ends", "task", a.task)
		return nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		a.fail(ctx, jobs.Error{Code: jobs.ErrorCodeTimeout, Message: "the job ran out of time"})
		return err
	case errors.Is(ctx.Err(), context.Canceled) && !a.h.isStopping():
		a.canceledByOperator(ctx)
		return err
	}
	// asynq archives a task that errs on its last retry, whatever the error: a hand-back
	// at shutdown included. The job then ends here rather than stay processing for good.
	retried, _ := asynq.GetRetryCount(ctx)
	if maxRetry, ok := asynq.GetMaxRetry(ctx); ok && retried >= maxRetry {
		a.fail(ctx, jobs.Error{Code: jobs.ErrorCodeAttempts,
			Message: fmt.Sprintf("the job was interrupted %d times and gave up", retried+1)})
	}
	return err
}

// beat shows the attempt's signs of life in the record until the attempt ends, in its own
// goroutine; the function it returns stops it and waits.
func (a *attempt) beat(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(HeartbeatInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				// A failure is the next write's to report: this attempt lost the job, or
				// Redis is away, which its writes ride out.
				a.h.store.Heartbeat(ctx, a.jobID, a.token)
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// canceledByOperator ends the job canceled when asynq canceled its task because an
// operator asked for it (the dashboard's Cancel), rather than let asynq run it again. asynq
// cancels a task's context in two more cases, which must not end the job: its worker
// shutting down (isStopping), and a lease it could not extend (a worker frozen or cut off
// from Redis, whose job the watchdog hands to another). It tells them apart by what it does
// next: an operator's cancel moves the task on to retry (or archive) at once, while a lost
// lease leaves it active, orphaned, for the recoverer.
func (a *attempt) canceledByOperator(ctx context.Context) {
	if a.h.queue == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var info *asynq.TaskInfo
	for try := 0; try < 20; try++ {
		var err error
		info, err = a.h.queue.GetTaskInfo(tasks.Queue, a.task)
		if err != nil || info.State != asynq.TaskStateActive {
			break
		}
		if info.IsOrphaned || a.wait(ctx, 100*time.Millisecond) != nil {
			return
		}
	}
	if info == nil || info.State == asynq.TaskStateActive || !strings.Contains(info.LastErr, context.Canceled.Error()) {
		return
	}
	_, err := a.h.store.CancelBecause(ctx, a.jobID, jobs.Error{Code: jobs.ErrorCodeTaskCanceled,
		Message: "an operator canceled the job's task from the dashboard"})
	if err != nil && !errors.Is(err, jobs.ErrFinished) {
		a.log.ErrorContext(ctx, "could not end the job whose task an operator canceled", "err", err)
		return
	}
	// Its retry would only find the job finished.
	a.h.queue.DeleteTask(tasks.Queue, a.task)
	a.log.WarnContext(ctx, "job canceled: an operator canceled its task")
	a.announceEndNow(ctx)
}

func (h *Handler) isStopping() bool {
	select {
	case <-h.stopping:
		return true
	default:
		return false
	}
}

// fail ends the job as failed, also when ctx is already done: the reason has to be written
// down even after the time has run out.
func (a *attempt) fail(ctx context.Context, jobErr jobs.Error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.h.store.Fail(ctx, a.jobID, a.token, jobErr); err != nil {
		a.log.ErrorContext(ctx, "could not mark job failed", "reason", jobErr.Code, "err", err)
		return
	}
	a.h.cfg.Observer.JobFinished(jobs.StatusFailed, a.createdAt)
	a.log.WarnContext(ctx, "job failed", "reason", jobErr.Code)
	a.announceEndNow(ctx)
}

// prepare takes one file from its checkpoint to a terminal state.
func (a *attempt) prepare(ctx context.Context, f jobs.File) error {
	src := a.h.cfg.Origin
	a.began.Store(f.ID, time.Now())
	// A file stored by an attempt that died before it could say so is ready as it is.
	if size, err := a.h.files.Size(a.jobID, f.ID); err == nil {
		return a.ready(ctx, f, size)
	}
	f.Status, f.Attempt = jobs.StatusProcessing, f.Attempt+1
	total := src.PrepTime()
	if !src.Available(f.ID) {
		if err := a.wait(ctx, total/10); err != nil {
			return err
		}
		return a.update(ctx, jobs.File{ID: f.ID, Status: jobs.StatusUnavailable, Percent: 100,
			Error: fmt.Sprintf("file %d is not available", f.ID)})
	}
	if err := a.update(ctx, f); err != nil {
		return err
	}
	// The file resumes from its checkpoint: only what was left of it is still to do.
	start := f.Percent
	remaining := time.Duration(float64(total) * (100 - start) / 100)
	step := min(max(total/20, 10*time.Millisecond), 500*time.Millisecond)
	failures := 0
	for done := time.Duration(0); done < remaining; {
		if err := a.wait(ctx, min(step, remaining-done)); err != nil {
			return err
		}
		if src.StepFails() {
			failures++
			if failures > a.h.cfg.FileRetries {
				return a.update(ctx, jobs.File{ID: f.ID, Status: jobs.StatusFailed, Percent: 100, Attempt: f.Attempt,
					Error: fmt.Sprintf("%v preparing file %d; gave up after %d tries", origin.ErrTransient, f.ID, failures)})
			}
			if err := a.wait(ctx, backoff(failures)); err != nil {
				return err
			}
			f.Attempt++
			if err := a.update(ctx, f); err != nil {
				return err
			}
			continue
		}
		done += min(step, remaining-done)
		f.Percent = min(jobs.RoundPercent(start+(100-start)*float64(done)/float64(remaining)), 99.9)
		if done < remaining {
			if err := a.update(ctx, f); err != nil {
				return err
			}
		}
	}
	size, err := a.h.files.Write(a.jobID, f.ID, a.token, src.Content(f.ID))
	if err != nil {
		return err
	}
	return a.ready(ctx, f, size)
}

func (a *attempt) ready(ctx context.Context, f jobs.File, size int64) error {
	return a.update(ctx, jobs.File{ID: f.ID, Status: jobs.StatusReady, Percent: 100, Attempt: f.Attempt,
		Size: size})
}

// update checkpoints a file. A percent that would go backwards, or a file already
// terminal (a retried write that had gone through), is skipped, not an error: the record
// already holds a later state.
func (a *attempt) update(ctx context.Context, f jobs.File) error {
	err := a.persist(ctx, func() error { return a.h.store.UpdateFile(ctx, a.jobID, a.token, f) })
	if errors.Is(err, jobs.ErrBackwards) || errors.Is(err, jobs.ErrFileFinished) {
		return nil
	}
	if err == nil && f.Status.Terminal() {
		a.fileFinished(f.ID, f.Status)
	}
	if err == nil && f.Status == jobs.StatusReady {
		// A delivery not queued now is queued with the job's end (Announcer.Finished).
		if aerr := a.h.cfg.Webhooks.Announcer.FileReady(ctx, a.job, f.ID); aerr != nil {
			a.log.WarnContext(ctx, "a ready file was not queued for the callback yet", "file", f.ID, "err", aerr)
		}
	}
	return err
}

// storeRetryWindow is how long an attempt retries a store call through a Redis outage.
const storeRetryWindow = 15 * time.Second

// persist retries a store call through a short Redis outage (a restart, a failover): an
// error returned to asynq then would cost the job a retry, and, when asynq cannot reach
// Redis either, the one to two minutes its recoverer takes to notice.
func (a *attempt) persist(ctx context.Context, call func() error) error {
	deadline := time.Now().Add(storeRetryWindow)
	for delay := 100 * time.Millisecond; ; delay = min(delay*2, time.Second) {
		err := call()
		if err == nil || jobs.Refused(err) || time.Now().After(deadline) {
			return err
		}
		if werr := a.wait(ctx, delay); werr != nil {
			return errors.Join(err, werr)
		}
	}
}

// wait sleeps for d unless the attempt's time is up or its worker is stopping.
func (a *attempt) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-a.h.stopping:
		return ErrStopping
	}
}

// backoff is the pause before the n-th retry of a file: 100 ms doubling up to 5 s, with
// jitter so that retries of many files do not line up.
func backoff(n int) time.Duration {
	d := min(100*time.Millisecond<<min(n-1, 6), 5*time.Second)
	return d/2 + time.Duration(float64(d/2)*mathrand.Float64())
}
