package worker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/origin"
	"github.com/longhaul-dev/longhaul/tasks"
	"golang.org/x/sync/errgroup"
)

// ErrStopping is what an attempt returns when its worker shuts down: the job is
// checkpointed and handed back to the queue.
var ErrStopping = errors.New("worker is shutting down")

// Handler runs one attempt at a download job per task.
type Handler struct {
	store JobStore
	files FileStore
	cfg   Config
	log   *slog.Logger

	// stopping is closed by Worker.Shutdown; every wait of an attempt watches it.
	stopping chan struct{}
}

// NewHandler returns a Handler. Its zero Config fields take the defaults of Config.
func NewHandler(store JobStore, files FileStore, cfg Config, log *slog.Logger) *Handler {
	cfg = cfg.WithDefaults()
	return &Handler{store: store, files: files, cfg: cfg, log: log, stopping: make(chan struct{})}
}

// ProcessTask runs one attempt at the job a task names.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseDownloadPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	a := &attempt{h: h, jobID: p.JobID, token: newToken(), log: h.log.With("job", p.JobID)}
	return a.outcome(ctx, a.run(ctx))
}

// attempt is one run of a job by one worker. Its token fences it: once another attempt
// claims the job, every write of this one is refused.
type attempt struct {
	h     *Handler
	jobID string
	token string
	log   *slog.Logger
}

func newToken() string { return rand.Text()[:16] }

func (a *attempt) run(ctx context.Context) error {
	var job *jobs.Job
	err := a.persist(ctx, func() (err error) {
		job, err = a.h.store.Claim(ctx, a.jobID, a.token)
		return err
	})
	if err != nil {
		return err
	}
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
	a.log.InfoContext(ctx, "job finished", "status", status)
	return nil
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
		return nil
	case errors.Is(err, jobs.ErrFenced):
		a.log.WarnContext(ctx, "attempt lost the job to a newer one; stopping", "attempt", a.token)
		return nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		a.fail(ctx, jobs.Error{Code: jobs.ErrorCodeTimeout, Message: "the job ran out of time"})
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

// fail ends the job as failed, also when ctx is already done: the reason has to be written
// down even after the time has run out.
func (a *attempt) fail(ctx context.Context, jobErr jobs.Error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.h.store.Fail(ctx, a.jobID, a.token, jobErr); err != nil {
		a.log.ErrorContext(ctx, "could not mark job failed", "reason", jobErr.Code, "err", err)
		return
	}
	a.log.WarnContext(ctx, "job failed", "reason", jobErr.Code)
}

// prepare takes one file from its checkpoint to a terminal state.
func (a *attempt) prepare(ctx context.Context, f jobs.File) error {
	src := a.h.cfg.Origin
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
