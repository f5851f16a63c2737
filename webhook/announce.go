package webhook

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
)

// Enqueuer puts a task in the queue.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

var _ Enqueuer = (*asynq.Client)(nil)

// Announcer queues the deliveries a job's callback asks for. Every delivery has a task id
// of its own (tasks.WebhookPayload.MessageID), so announcing one twice, as a retried job
// handler or a second process that saw the job end does, queues it once.
type Announcer struct {
	queue Enqueuer
	opts  tasks.WebhookOptions
}

// NewAnnouncer returns an Announcer that queues on q with the limits of opts.
func NewAnnouncer(q Enqueuer, opts tasks.WebhookOptions) *Announcer {
	return &Announcer{queue: q, opts: opts.WithDefaults()}
}

// Finished queues the delivery of a finished job's end, and, when it asked for file
// events, of each of its ready files: one announced as it became ready is not queued again,
// and one whose announcement was lost (its worker died) is delivered now. A job without a
// callback, or nil a, queues nothing.
func (a *Announcer) Finished(ctx context.Context, job *jobs.Job) error {
	if a == nil || job.Callback == nil {
		return nil
	}
	var errs []error
	for _, f := range job.Files {
		if f.Status == jobs.StatusReady {
			errs = append(errs, a.FileReady(ctx, job, f.ID))
		}
	}
	errs = append(errs, a.enqueue(ctx, tasks.WebhookPayload{JobID: job.ID, Event: tasks.EventJobFinished}))
	return errors.Join(errs...)
}

// FileReady queues the delivery of file fileID of job, which became ready, when the job
// asked for file events.
func (a *Announcer) FileReady(ctx context.Context, job *jobs.Job, fileID int64) error {
	if a == nil || job.Callback == nil || !slices.Contains(job.Callback.Events, tasks.EventFileReady) {
		return nil
	}
	return a.enqueue(ctx, tasks.WebhookPayload{JobID: job.ID, Event: tasks.EventFileReady, FileID: fileID})
}

func (a *Announcer) enqueue(ctx context.Context, p tasks.WebhookPayload) error {
	task, err := tasks.NewWebhookTask(p, a.opts)
	if err != nil {
		return err
	}
	if _, err := a.queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("queue webhook %s: %w", p.MessageID(), err)
	}
	return nil
}
