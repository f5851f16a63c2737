// Package worker runs download jobs: an Asynq server whose one handler prepares the files
// of a job, checkpointing every file in the job store and publishing progress as it goes.
package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/origin"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/longhaul-dev/longhaul/webhook"
	"github.com/redis/go-redis/v9"
)

// JobStore is what an attempt needs of the job store.
type JobStore interface {
	ClaimFor(ctx context.Context, id, taskID, token string) (*jobs.Job, error)
	Heartbeat(ctx context.Context, id, token string) error
	UpdateFile(ctx context.Context, id, token string, f jobs.File) error
	Complete(ctx context.Context, id, token string) (jobs.Status, error)
	Fail(ctx context.Context, id, token string, jobErr jobs.Error) error
	CancelBecause(ctx context.Context, id string, reason jobs.Error) (*jobs.Job, error)
	Get(ctx context.Context, id string) (*jobs.Job, error)
}

// Queue is what the worker needs of asynq's queue beside its server: to look tasks up, to
// queue a job's task (again), and to take a task out.
type Queue interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
	ListActiveTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	DeleteTask(queue, id string) error
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// FileStore is where the worker puts the files it produces.
type FileStore interface {
	Write(jobID string, fileID int64, token string, content io.Reader) (int64, error)
	Size(jobID string, fileID int64) (int64, error)
}

// NewQueue is the worker's Queue on rdb: asynq's inspector and client.
func NewQueue(rdb redis.UniversalClient) Queue {
	return queue{asynq.NewInspectorFromRedisClient(rdb), asynq.NewClientFromRedisClient(rdb)}
}

type queue struct {
	*asynq.Inspector
	*asynq.Client
}

var (
	_ JobStore           = (*jobs.Store)(nil)
	_ asynq.Handler      = (*Handler)(nil)
	_ asynq.ErrorHandler = (*Worker)(nil)
)

// Defaults of Config, also the defaults of the settings that configure them.
const (
	// ConcurrencyDefault: jobs mostly wait, so asynq's default of one per CPU would leave
	// the machine idle.
	ConcurrencyDefault = 20
	// FileRetriesDefault is how many transient errors one file tolerates.
	FileRetriesDefault = 3
	// ShutdownTimeoutDefault: jobs checkpoint at every progress step and hand back at the
	// next one, so a few seconds are enough.
	ShutdownTimeoutDefault = 10 * time.Second
	// SweepIntervalDefault is how often the janitor sweeps.
	SweepIntervalDefault = time.Minute
)

// Config configures a Worker.
type Config struct {
	// Concurrency is how many jobs run at once. If zero, ConcurrencyDefault is used.
	Concurrency int
	// FileConcurrency is how many files of one job are prepared at once. If zero,
	// tasks.FileConcurrencyDefault is used.
	FileConcurrency int
	// FileRetries is how many transient errors one file tolerates before it ends failed;
	// zero tolerates none.
	FileRetries int
	// ShutdownTimeout is how long a stopping worker waits for its jobs to hand back. If
	// zero, ShutdownTimeoutDefault is used.
	ShutdownTimeout time.Duration
	// SweepInterval is how often the janitor sweeps. If zero, SweepIntervalDefault is used.
	SweepInterval time.Duration
	// Origin is where files come from.
	Origin origin.Simulated
	// Running holds each principal to its share of running jobs. If nil, nobody is held.
	Running RunningLimit
	// Tasks derive the limits of the tasks the worker queues (a rescue's, a lost enqueue's).
	Tasks tasks.Options
	// Observer is told how files and jobs end, for metrics. If nil, nobody is.
	Observer Observer
	// Webhooks queues and delivers the webhooks of jobs' callbacks.
	Webhooks WebhookConfig
}

// Defaults of WebhookConfig.
const (
	// WebhookConcurrencyDefault: a delivery mostly waits for its receiver.
	WebhookConcurrencyDefault = 10
)

// WebhookConfig configures a worker's part in webhooks: it announces (queues) the
// deliveries of the jobs it runs, and, with a Deliverer, makes them, in an asynq server of
// its own whose slots no job shares.
type WebhookConfig struct {
	// Announcer queues deliveries. If nil, none are queued: jobs are told to no callback.
	Announcer *webhook.Announcer
	// Deliverer makes deliveries. If nil, this worker makes none (it has no secret to sign
	// them with); they wait in their queue for a worker that does.
	Deliverer asynq.Handler
	// Concurrency is how many deliveries are made at once. If zero,
	// WebhookConcurrencyDefault is used.
	Concurrency int
	// Options are the limits of delivery tasks; their back-off is the retries'.
	Options tasks.WebhookOptions
}

// RunningLimit holds each principal (who created a job) to its share of running jobs, so
// that one principal's burst leaves workers to the others.
type RunningLimit interface {
	// StartRunning takes a place for job id until deadline, or reports false when the
	// principal runs as many jobs as it may.
	StartRunning(ctx context.Context, principal, id string, deadline time.Time) (bool, error)
	// StopRunning gives the place back.
	StopRunning(ctx context.Context, principal, id string) error
}

// WithDefaults returns c with every zero field that has a default set to it.
func (c Config) WithDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = ConcurrencyDefault
	}
	if c.FileConcurrency <= 0 {
		c.FileConcurrency = tasks.FileConcurrencyDefault
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = ShutdownTimeoutDefault
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = SweepIntervalDefault
	}
	if c.Observer == nil {
		c.Observer = unobserved{}
	}
	if c.Webhooks.Concurrency <= 0 {
		c.Webhooks.Concurrency = WebhookConcurrencyDefault
	}
	return c
}

// Worker is an Asynq server that runs download jobs, the watchdog that resumes the jobs of
// lost workers, and the janitor that keeps what they leave behind in order.
type Worker struct {
	srv      *asynq.Server
	hooks    *asynq.Server // delivers webhooks; nil when this worker makes no deliveries
	h        *Handler
	janitor  *Janitor
	watchdog *Watchdog
	cfg      Config
	log      *slog.Logger

	// sweep ends the janitor's loop, which wg awaits.
	sweep context.CancelFunc
	wg    sync.WaitGroup
}

// Store is what a worker needs of the job store: what its attempts write, and what its
// janitor and watchdog check.
type Store interface {
	JobStore
	JanitorStore
	WatchdogStore
}

// Files is what a worker needs of the file storage.
type Files interface {
	FileStore
	StoredJobs
}

// New returns a Worker that takes tasks from rdb.
func New(rdb redis.UniversalClient, store Store, files Files, cfg Config, log *slog.Logger) *Worker {
	cfg = cfg.WithDefaults()
	q := NewQueue(rdb)
	w := &Worker{h: NewHandler(store, files, q, cfg, log), cfg: cfg, log: log,
		janitor: NewJanitor(reportedAbandon{store, cfg.Observer, cfg.Webhooks.Announcer, log.With("component", "janitor")},
			files, q, cfg.Tasks, log.With("component", "janitor")),
		watchdog: NewWatchdog(store, q, cfg.Tasks, log.With("component", "watchdog"))}
	w.srv = asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: cfg.Concurrency,
		Queues:      map[string]int{tasks.Queue: 1},
		// An idle worker looks at its queue every TaskCheckInterval: asynq's default of 1 s
		// made a job posted to an idle worker start up to a second late (docs/benchmarks.md).
		TaskCheckInterval: 100 * time.Millisecond,
		RetryDelayFunc:    retryDelay,
		// A hand-back and a principal over its share are not the job's failures: they cost
		// no retry.
		IsFailure:       func(err error) bool { return !errors.Is(err, ErrStopping) && !errors.Is(err, ErrOverShare) },
		ErrorHandler:    w,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Logger:          asynqLogger{log.With("component", "asynq")},
		LogLevel:        asynq.WarnLevel,
	})
	if cfg.Webhooks.Deliverer != nil {
		w.hooks = newWebhookServer(rdb, cfg.Webhooks, cfg.ShutdownTimeout, log)
	}
	return w
}

// newWebhookServer is the asynq server of deliveries: its own slots, so a slow receiver
// holds up no job, and the deliveries' own back-off.
func newWebhookServer(rdb redis.UniversalClient, cfg WebhookConfig, shutdownTimeout time.Duration, log *slog.Logger) *asynq.Server {
	return asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:       cfg.Concurrency,
		Queues:            map[string]int{tasks.WebhookQueue: 1},
		TaskCheckInterval: 100 * time.Millisecond,
		// Retries come due at seconds' precision; asynq's default looks every 5 s.
		DelayedTaskCheckInterval: time.Second,
		RetryDelayFunc:           func(n int, _ error, _ *asynq.Task) time.Duration { return cfg.Options.RetryDelay(n + 1) },
		ShutdownTimeout:          shutdownTimeout,
		Logger:                   asynqLogger{log.With("component", "webhooks")},
		LogLevel:                 asynq.WarnLevel,
	})
}

// Start starts taking tasks.
func (w *Worker) Start() error {
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeDownload, w.h)
	if err := w.srv.Start(mux); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	if w.hooks != nil {
		hooks := asynq.NewServeMux()
		hooks.Handle(tasks.TypeWebhook, w.cfg.Webhooks.Deliverer)
		if err := w.hooks.Start(hooks); err != nil {
			w.srv.Shutdown()
			return fmt.Errorf("start webhook deliveries: %w", err)
		}
	}
	// Redis expires finished jobs; the janitor removes their files, and ends or requeues
	// the jobs whose task is gone. The watchdog resumes the jobs of lost workers.
	ctx, stop := context.WithCancel(context.Background())
	w.sweep = stop
	w.wg.Go(func() { w.janitor.Run(ctx, w.cfg.SweepInterval) })
	w.watchdog.Start()
	return nil
}

// Shutdown stops the janitor, the watchdog and taking tasks, and hands the running jobs back
// at their next checkpoint, so that another worker resumes them at once.
func (w *Worker) Shutdown() {
	w.sweep()
	w.wg.Wait()
	w.watchdog.Stop()
	w.srv.Stop()
	close(w.h.stopping)
	w.srv.Shutdown()
	// Deliveries stop last: the jobs' last ends, announced as they handed back, can still
	// go out.
	if w.hooks != nil {
		w.hooks.Shutdown()
	}
}

// HandleError logs a failed attempt once, at the boundary.
func (w *Worker) HandleError(ctx context.Context, t *asynq.Task, err error) {
	ctx = withRequestOf(ctx, t)
	retried, _ := asynq.GetRetryCount(ctx)
	id, _ := asynq.GetTaskID(ctx)
	if errors.Is(err, ErrStopping) {
		w.log.InfoContext(ctx, "job handed back for another worker", "job", id)
		return
	}
	if errors.Is(err, ErrOverShare) {
		w.log.DebugContext(ctx, "job waits: its principal runs as many jobs as it may", "job", id)
		return
	}
	w.log.WarnContext(ctx, "job attempt failed", "job", id, "retried", retried, "err", err)
}

// retryDelay answers a lost lease (a worker that crashed or froze) and a hand-back at
// shutdown with a short delay, so that the user's job resumes quickly; other errors back
// off exponentially up to a minute.
func retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if errors.Is(err, asynq.ErrLeaseExpired) || errors.Is(err, ErrStopping) {
		return time.Second
	}
	if errors.Is(err, ErrOverShare) {
		// Back to the end of the queue for a moment, so that others' jobs go first; the
		// jitter keeps a principal's many jobs from coming back at once.
		return time.Second + mathrand.N(time.Second)
	}
	return min(time.Second<<min(n, 6), time.Minute)
}
