// Package worker runs download jobs: an Asynq server whose one handler prepares the files
// of a job, checkpointing every file in the job store and publishing progress as it goes.
package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/origin"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/redis/go-redis/v9"
)

// JobStore is what the worker needs of the job store.
type JobStore interface {
	Claim(ctx context.Context, id, token string) (*jobs.Job, error)
	UpdateFile(ctx context.Context, id, token string, f jobs.File) error
	Complete(ctx context.Context, id, token string) (jobs.Status, error)
	Fail(ctx context.Context, id, token string, jobErr jobs.Error) error
}

// FileStore is where the worker puts the files it produces.
type FileStore interface {
	Write(jobID string, fileID int64, token string, content io.Reader) (int64, error)
	Size(jobID string, fileID int64) (int64, error)
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
	return c
}

// Worker is an Asynq server that runs download jobs, and the janitor that keeps what they
// leave behind in order.
type Worker struct {
	srv     *asynq.Server
	h       *Handler
	janitor *Janitor
	cfg     Config
	log     *slog.Logger

	// sweep ends the janitor's loop, which wg awaits.
	sweep context.CancelFunc
	wg    sync.WaitGroup
}

// Store is what a worker needs of the job store: what its attempts write, and what its
// janitor checks.
type Store interface {
	JobStore
	JanitorStore
}

// Files is what a worker needs of the file storage.
type Files interface {
	FileStore
	StoredJobs
}

// New returns a Worker that takes tasks from rdb.
func New(rdb redis.UniversalClient, store Store, files Files, cfg Config, log *slog.Logger) *Worker {
	cfg = cfg.WithDefaults()
	w := &Worker{h: NewHandler(store, files, cfg, log), cfg: cfg, log: log,
		janitor: NewJanitor(store, files, Archive{asynq.NewInspectorFromRedisClient(rdb)}, log.With("component", "janitor"))}
	w.srv = asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: cfg.Concurrency,
		Queues:      map[string]int{tasks.Queue: 1},
		// An idle worker looks at its queue every TaskCheckInterval: asynq's default of 1 s
		// made a job posted to an idle worker start up to a second late (docs/benchmarks.md).
		TaskCheckInterval: 100 * time.Millisecond,
		RetryDelayFunc:    retryDelay,
		IsFailure:         func(err error) bool { return !errors.Is(err, ErrStopping) },
		ErrorHandler:      w,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		Logger:            asynqLogger{log.With("component", "asynq")},
		LogLevel:          asynq.WarnLevel,
	})
	return w
}

// Start starts taking tasks.
func (w *Worker) Start() error {
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeDownload, w.h)
	if err := w.srv.Start(mux); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	// Redis expires finished jobs; the janitor removes their files, and ends the jobs
	// whose task asynq gave up on.
	ctx, stop := context.WithCancel(context.Background())
	w.sweep = stop
	w.wg.Go(func() { w.janitor.Run(ctx, w.cfg.SweepInterval) })
	return nil
}

// Shutdown stops the janitor and taking tasks, and hands the running jobs back at their
// next checkpoint, so that another worker resumes them at once.
func (w *Worker) Shutdown() {
	w.sweep()
	w.wg.Wait()
	w.srv.Stop()
	close(w.h.stopping)
	w.srv.Shutdown()
}

// HandleError logs a failed attempt once, at the boundary.
func (w *Worker) HandleError(ctx context.Context, t *asynq.Task, err error) {
	retried, _ := asynq.GetRetryCount(ctx)
	id, _ := asynq.GetTaskID(ctx)
	if errors.Is(err, ErrStopping) {
		w.log.InfoContext(ctx, "job handed back for another worker", "job", id)
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
	return min(time.Second<<min(n, 6), time.Minute)
}
