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
// files of jobs whose record has expired, so that the storage directory does not grow
// without bound (Redis expires the records themselves), and it ends the jobs whose task
// asynq archived without an attempt finishing them (a worker that died on its last retry),
// so that no job stays processing for good.
type Janitor struct {
	store   JanitorStore
	files   StoredJobs
	archive ArchivedTasks
	log     *slog.Logger
}

// JanitorStore is what the janitor needs of the job store.
type JanitorStore interface {
	Exists(ctx context.Context, id string) (bool, error)
	Abandon(ctx context.Context, id string, jobErr jobs.Error) error
}

// ArchivedTasks lists the ids of the download tasks asynq gave up on.
type ArchivedTasks interface {
	ArchivedJobs() ([]string, error)
}

// Archive lists archived download tasks through an asynq inspector.
type Archive struct{ Inspector *asynq.Inspector }

// ArchivedJobs returns the job ids of the archived download tasks, most recent first.
func (a Archive) ArchivedJobs() ([]string, error) {
	archived, err := a.Inspector.ListArchivedTasks(tasks.Queue, asynq.PageSize(500))
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list archived tasks: %w", err)
	}
	ids := make([]string, len(archived))
	for i, t := range archived {
		ids[i] = t.ID
	}
	return ids, nil
}

// StoredJobs lists and removes the files of jobs.
type StoredJobs interface {
	Jobs() (map[string]time.Time, error)
	RemoveJob(jobID string) error
}

var (
	_ JanitorStore  = (*jobs.Store)(nil)
	_ StoredJobs    = (*storage.Dir)(nil)
	_ ArchivedTasks = Archive{}
)

// janitorGrace leaves a job's folder alone for a while after it last changed, so that a
// folder is never taken from under a job that is being created.
const janitorGrace = time.Minute

// NewJanitor returns a Janitor of files against the records in store.
func NewJanitor(store JanitorStore, files StoredJobs, archive ArchivedTasks, log *slog.Logger) *Janitor {
	return &Janitor{store: store, files: files, archive: archive, log: log}
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
			if n, err := j.EndAbandoned(ctx); err != nil {
				j.log.WarnContext(ctx, "check of archived tasks failed", "err", err)
			} else if n > 0 {
				j.log.WarnContext(ctx, "ended jobs whose task was given up", "jobs", n)
			}
		case <-ctx.Done():
			return
		}
	}
}

// EndAbandoned ends as failed every unfinished job whose task is archived. It returns how
// many it ended.
func (j *Janitor) EndAbandoned(ctx context.Context) (int, error) {
	ids, err := j.archive.ArchivedJobs()
	if err != nil {
		return 0, err
	}
	ended := 0
	for _, id := range ids {
		err := j.store.Abandon(ctx, id, jobs.Error{Code: jobs.ErrorCodeAttempts,
			Message: "the job's task was given up after its last retry"})
		switch {
		case err == nil:
			ended++
		case errors.Is(err, jobs.ErrFinished), errors.Is(err, jobs.ErrNotFound):
		default:
			return ended, err
		}
	}
	return ended, nil
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
		if !jobs.ValidID(id) || now.Sub(changed) < janitorGrace {
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
