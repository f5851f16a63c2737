package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/tasks"

	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/storage"
)

// Janitor keeps what the queue and the store leave behind in order. It removes the stored
// files of jobs whose record has expired, so that the storage directory or bucket does not
// grow without bound (Redis expires the records themselves), and it makes sure that no job
// waits forever for a task that is gone: every unfinished job of some age has a task in the
// queue, or gets one, or ends.
type Janitor struct {
	store JanitorStore
	files StoredJobs
	queue Queue
	opts  tasks.Options
	log   *slog.Logger
}

// JanitorStore is what the janitor needs of the job store.
type JanitorStore interface {
	Exists(ctx context.Context, id string) (bool, error)
	Get(ctx context.Context, id string) (*jobs.Job, error)
	Abandon(ctx context.Context, id string, jobErr jobs.Error) error
	UnfinishedBefore(ctx context.Context, t time.Time, perGroup int) ([]string, error)
	ForgetUnfinished(ctx context.Context, id string) error
	MarkEnqueued(ctx context.Context, id string) error
	HandOver(ctx context.Context, id, from, to string) (bool, error)
}

// StoredJobs lists and removes the files of jobs.
type StoredJobs interface {
	Jobs() (map[string]time.Time, error)
	RemoveJob(jobID string) error
}

var (
	_ JanitorStore = (*jobs.Store)(nil)
	_ StoredJobs   = (*storage.Dir)(nil)
	_ StoredJobs   = (*storage.Bucket)(nil)
)

// folderGrace leaves a job's folder alone for a while after it last changed, so that a
// folder is never taken from under a job that is being created.
const folderGrace = time.Minute

// taskGrace leaves a job alone for a moment after it was made: the API queues its task
// right after its record.
const taskGrace = 10 * time.Second

// reconcileBatch bounds the jobs of one group that one round looks at.
const reconcileBatch = 200

// NewJanitor returns a Janitor of the jobs in store and their files, whose tasks are in q;
// the tasks it queues take their limits from opts.
func NewJanitor(store JanitorStore, files StoredJobs, q Queue, opts tasks.Options, log *slog.Logger) *Janitor {
	return &Janitor{store: store, files: files, queue: q, opts: opts.WithDefaults(), log: log}
}

// Run sweeps every interval until ctx ends.
func (j *Janitor) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if n, err := j.Sweep(ctx, time.Now()); err != nil {
				j.log.WarnContext(ctx, "storage sweep failed", "err", err)
			} else if n > 0 {
				j.log.InfoContext(ctx, "removed files of expired jobs", "jobs", n)
			}
			if err := j.Reconcile(ctx, time.Now()); err != nil {
				j.log.WarnContext(ctx, "check of jobs' tasks failed", "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// Reconcile looks at every unfinished job made before now less a short grace, and its task:
//   - a task that is queued, scheduled, running or waiting to retry: all is well;
//   - an archived task (asynq gave up on it, or an operator archived it): the job ends
//     failed;
//   - no task, and none was ever seen (its enqueue failed, as in a Redis blip between the
//     record and the task): it is queued now;
//   - no task, where one was seen (an operator deleted it, or its whole queue): the job
//     ends failed, its error saying so.
//
// It reads the jobs from the store's own index of unfinished jobs, so it works whatever was
// done to the queue, even when the queue was deleted.
func (j *Janitor) Reconcile(ctx context.Context, now time.Time) error {
	ids, err := j.store.UnfinishedBefore(ctx, now.Add(-taskGrace), reconcileBatch)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := j.reconcile(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

func (j *Janitor) reconcile(ctx context.Context, id string) error {
	job, err := j.store.Get(ctx, id)
	if errors.Is(err, jobs.ErrNotFound) {
		return j.store.ForgetUnfinished(ctx, id) // it expired unfinished
	} else if err != nil {
		return err
	}
	if job.Status.Terminal() {
		return j.store.ForgetUnfinished(ctx, id)
	}
	info, err := j.queue.GetTaskInfo(tasks.Queue, job.Task)
	switch {
	case err == nil && info.State == asynq.TaskStateCompleted:
		// The task finished but the job did not: the job's last writes were lost (a
		// failover, or a Redis crash within the AOF second). A new task runs it again from
		// what the record has; its stored files are taken as they are.
		return j.rerun(ctx, job)
	case err == nil && info.State == asynq.TaskStateArchived:
		return j.end(ctx, id, jobs.Error{Code: jobs.ErrorCodeAttempts,
			Message: "the job's task was given up (archived) after its last retry, or by an operator"})
	case err == nil:
		if !job.Enqueued {
			return j.store.MarkEnqueued(ctx, id)
		}
		return nil
	case !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound):
		return fmt.Errorf("look up the task of job %s: %w", id, err)
	case job.Enqueued:
		return j.end(ctx, id, jobs.Error{Code: jobs.ErrorCodeTaskRemoved,
			Message: "the job's task was removed from the queue (deleted, or its queue deleted, from the dashboard)"})
	}
	task, err := tasks.NewDownloadTaskWithID(job.Task, tasks.DownloadPayload{JobID: id, Principal: job.Principal},
		len(job.Files), j.opts)
	if err != nil {
		return err
	}
	if _, err := j.queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("queue the task of job %s: %w", id, err)
	}
	j.log.WarnContext(ctx, "queued the task of a job that had none (its enqueue had failed)", "job", id)
	return j.store.MarkEnqueued(ctx, id)
}

func (j *Janitor) rerun(ctx context.Context, job *jobs.Job) error {
	next := tasks.RescueID(job.ID, job.Attempts)
	if handed, err := j.store.HandOver(ctx, job.ID, job.Task, next); err != nil || !handed {
		return err
	}
	task, err := tasks.NewDownloadTaskWithID(next, tasks.DownloadPayload{JobID: job.ID, Principal: job.Principal},
		len(job.Files), j.opts)
	if err != nil {
		return err
	}
	if _, err := j.queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("queue job %s again: %w", job.ID, err)
	}
	j.log.WarnContext(ctx, "ran again a job whose task finished without it (its last writes were lost)", "job", job.ID)
	return nil
}

func (j *Janitor) end(ctx context.Context, id string, why jobs.Error) error {
	err := j.store.Abandon(ctx, id, why)
	if errors.Is(err, jobs.ErrFinished) || errors.Is(err, jobs.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	j.log.WarnContext(ctx, "ended a job whose task is gone", "job", id, "reason", why.Code)
	return nil
}

// Sweep removes the files of every job without a record whose folder has not changed
// for a while before now. It returns how many jobs' files it removed.
func (j *Janitor) Sweep(ctx context.Context, now time.Time) (int, error) {
	stored, err := j.files.Jobs()
	if err != nil {
		return 0, err
	}
	removed := 0
	for id, changed := range stored {
		if !jobs.ValidID(id) || now.Sub(changed) < folderGrace {
			continue
		}
		exists, err := j.store.Exists(ctx, id)
		if err != nil {
			return removed, err
		}
		if exists {
			continue
		}
		if err := j.files.RemoveJob(id); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}
