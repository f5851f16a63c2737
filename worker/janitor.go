package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/storage"
)

// Janitor removes the stored files of jobs whose record has expired, so that the storage
// directory does not grow without bound. Redis expires the records themselves.
type Janitor struct {
	store RecordChecker
	files StoredJobs
	log   *slog.Logger
}

// RecordChecker tells whether a job still has a record.
type RecordChecker interface {
	Exists(ctx context.Context, id string) (bool, error)
}

// StoredJobs lists and removes the files of jobs.
type StoredJobs interface {
	Jobs() (map[string]time.Time, error)
	RemoveJob(jobID string) error
}

var (
	_ RecordChecker = (*jobs.Store)(nil)
	_ StoredJobs    = (*storage.Dir)(nil)
)

// janitorGrace leaves a job's folder alone for a while after it last changed, so that a
// folder is never taken from under a job that is being created.
const janitorGrace = time.Minute

// NewJanitor returns a Janitor of files against the records in store.
func NewJanitor(store RecordChecker, files StoredJobs, log *slog.Logger) *Janitor {
	return &Janitor{store: store, files: files, log: log}
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
		case <-ctx.Done():
			return
		}
	}
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
