package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
)

// The watchdog is how a job whose worker died resumes quickly, and says so while it waits.
//
// asynq hands a task back only once its 30 s lease has expired by another 30 s and its
// recoverer, a fixed one-minute timer, has seen it: one to two minutes, which none of its
// settings shortens. What its public API does offer is IsOrphaned on an active task (its
// lease has expired) and a free choice of task ids. So the watchdog, every few seconds:
//
//   - says a running job waits for a worker once its attempt has shown no sign of life for
//     a few heartbeats (a job event, so live clients see it at once), with when it is
//     expected to resume;
//   - once the task's lease has expired, hands the job to a rescue task (the job record
//     names the task that may claim it: only an attempt of the rescue can, so the old task,
//     when asynq's recoverer retries it a minute later, ends at once) and queues it. A
//     worker takes it within its 100 ms poll, and the new attempt resumes from the
//     checkpoints: about 30-35 s after the crash instead of 60-120 s.
//
// Several watchdogs (one per process) may look at one job: marking it waiting and handing
// it over are scripts that do it once, and two rescuers of one loss name the same task id.

// WatchdogStore is what the watchdog needs of the job store.
type WatchdogStore interface {
	Get(ctx context.Context, id string) (*jobs.Job, error)
	MarkWaiting(ctx context.Context, id string, w jobs.Waiting) (bool, error)
	HandOver(ctx context.Context, id, from, to string) (bool, error)
	Abandon(ctx context.Context, id string, jobErr jobs.Error) error
}

// Defaults of the watchdog.
const (
	// WatchIntervalDefault is how often the watchdog looks at the running jobs.
	WatchIntervalDefault = 3 * time.Second
	// leaseDuration is asynq's lease of an active task (rdb.LeaseDuration), renewed every
	// 5 s while its worker lives. It is not configurable in asynq.
	leaseDuration = 30 * time.Second
	// silentBeats is how many heartbeats an attempt may miss before its job waits.
	silentBeats = 3
)

var _ WatchdogStore = (*jobs.Store)(nil)

// Watchdog resumes the jobs of lost workers.
type Watchdog struct {
	store    WatchdogStore
	queue    Queue
	opts     tasks.Options
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger

	// stop ends the loop Start runs, which wg awaits.
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// NewWatchdog returns a watchdog of the jobs in store, whose tasks are in q; rescue tasks
// take their limits from opts.
func NewWatchdog(store WatchdogStore, q Queue, opts tasks.Options, log *slog.Logger) *Watchdog {
	return &Watchdog{store: store, queue: q, opts: opts.WithDefaults(), interval: WatchIntervalDefault,
		now: time.Now, log: log}
}

// Start looks at the running jobs every interval, in the background, until Stop.
func (w *Watchdog) Start() {
	ctx, stop := context.WithCancel(context.Background())
	w.stop = stop
	w.wg.Go(func() {
		t := time.NewTicker(w.interval)
		defer t.Stop()
		for {
			if err := w.Round(ctx); err != nil && ctx.Err() == nil {
				w.log.WarnContext(ctx, "watchdog round failed", "err", err)
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	})
}

// Stop ends the loop and waits for it.
func (w *Watchdog) Stop() {
	if w.stop != nil {
		w.stop()
		w.wg.Wait()
	}
}

// Round looks once at every active download task and its job.
func (w *Watchdog) Round(ctx context.Context) error {
	for page := 1; ; page++ {
		active, err := w.queue.ListActiveTasks(tasks.Queue, asynq.PageSize(500), asynq.Page(page))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return nil
		} else if err != nil {
			return fmt.Errorf("list active tasks: %w", err)
		}
		for _, t := range active {
			if err := w.look(ctx, t); err != nil {
				return err
			}
		}
		if len(active) < 500 {
			return nil
		}
	}
}

func (w *Watchdog) look(ctx context.Context, t *asynq.TaskInfo) error {
	p, err := tasks.ParseDownloadPayload(t.Payload)
	if err != nil {
		return nil // not a task of ours to watch
	}
	job, err := w.store.Get(ctx, p.JobID)
	if errors.Is(err, jobs.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if job.Status != jobs.StatusProcessing {
		return nil
	}
	now := w.now()
	if job.Waiting == nil && !job.HeartbeatAt.IsZero() && now.Sub(job.HeartbeatAt) > silentBeats*HeartbeatInterval {
		// The lease was last renewed no later than the last sign of life; it ends at most
		// leaseDuration after, and the rescue follows within a round.
		waiting := jobs.Waiting{Reason: jobs.WaitingWorkerLost, Since: job.HeartbeatAt,
			ResumeBy: job.HeartbeatAt.Add(leaseDuration + HeartbeatInterval + 2*w.interval).Truncate(time.Second)}
		if marked, err := w.store.MarkWaiting(ctx, job.ID, waiting); err != nil {
			return err
		} else if marked {
			w.log.WarnContext(ctx, "job's worker shows no sign of life; it waits for another", "job", job.ID,
				"since", job.HeartbeatAt, "resume_by", waiting.ResumeBy)
		}
	}
	if t.IsOrphaned {
		return w.rescue(ctx, job, t.ID)
	}
	return nil
}

// rescue hands the job of a task whose lease expired to a new task and queues it; or, when
// the job was handed over already, makes sure its task is queued.
func (w *Watchdog) rescue(ctx context.Context, job *jobs.Job, lost string) error {
	if job.Task != lost {
		return w.ensureQueued(ctx, job, job.Task)
	}
	if job.Attempts > w.opts.MaxRetry {
		err := w.store.Abandon(ctx, job.ID, jobs.Error{Code: jobs.ErrorCodeAttempts,
			Message: fmt.Sprintf("the job's worker was lost %d times and it gave up", job.Attempts)})
		if err != nil && !errors.Is(err, jobs.ErrFinished) {
			return err
		}
		return nil
	}
	next := tasks.RescueID(job.ID, job.Attempts)
	handed, err := w.store.HandOver(ctx, job.ID, lost, next)
	if errors.Is(err, jobs.ErrFinished) || errors.Is(err, jobs.ErrNotFound) {
		return nil
	} else if err != nil || !handed {
		return err
	}
	w.log.WarnContext(ctx, "job's worker was lost; a rescue task resumes it from its checkpoints", "job", job.ID,
		"lost_task", lost, "task", next)
	return w.ensureQueued(ctx, job, next)
}

// ensureQueued queues task taskID of job unless it exists: the queueing of a rescue may
// have failed right after its hand-over.
func (w *Watchdog) ensureQueued(ctx context.Context, job *jobs.Job, taskID string) error {
	if _, err := w.queue.GetTaskInfo(tasks.Queue, taskID); err == nil {
		return nil
	} else if !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
		return err
	}
	task, err := tasks.NewDownloadTaskWithID(taskID, tasks.DownloadPayload{JobID: job.ID, Principal: job.Principal},
		len(job.Files), w.opts)
	if err != nil {
		return err
	}
	if _, err := w.queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("queue rescue task %s: %w", taskID, err)
	}
	return nil
}
