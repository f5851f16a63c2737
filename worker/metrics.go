package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/webhook"
)

// Observer is told how the files and jobs a worker runs end, for metrics. Its methods must be
// safe for concurrent use and must not block.
type Observer interface {
	// FileFinished: a file ended with outcome (ready, unavailable or failed) after an
	// attempt spent took on it; a file resumed from a checkpoint counts only the rest.
	FileFinished(outcome jobs.Status, took time.Duration)
	// JobFinished: a job created at createdAt (zero when unknown) ended with status.
	JobFinished(status jobs.Status, createdAt time.Time)
}

// unobserved is the Observer of a worker that nobody observes.
type unobserved struct{}

func (unobserved) FileFinished(jobs.Status, time.Duration) {}
func (unobserved) JobFinished(jobs.Status, time.Time)      {}

// fileFinished tells the observer that a file of the attempt ended with status.
func (a *attempt) fileFinished(id int64, status jobs.Status) {
	var took time.Duration
	if began, ok := a.began.LoadAndDelete(id); ok {
		took = time.Since(began.(time.Time))
	}
	a.h.cfg.Observer.FileFinished(status, took)
}

// reportedAbandon is the janitor's store, telling the observer of every job the janitor
// ends, and its callback.
type reportedAbandon struct {
	JanitorStore
	obs      Observer
	announce *webhook.Announcer
	log      *slog.Logger
}

func (s reportedAbandon) Abandon(ctx context.Context, id string, jobErr jobs.Error) error {
	err := s.JanitorStore.Abandon(ctx, id, jobErr)
	if err != nil {
		return err
	}
	s.obs.JobFinished(jobs.StatusFailed, time.Time{})
	job, err := s.Get(ctx, id)
	if err == nil {
		err = s.announce.Finished(ctx, job)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "the end of a job the janitor ended was not queued for its callback", "job", id, "err", err)
	}
	return nil
}
