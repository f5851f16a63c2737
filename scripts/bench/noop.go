package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// cmdNoopWorker is the child process that runs asynq with a handler that does nothing: the
// baseline of the worker path.
const cmdNoopWorker = "noop-worker"

// noopQueue is the queue of the no-op tasks.
const noopQueue = "noop"

// noopDone is what the no-op worker prints once it has run its tasks.
type noopDone struct {
	Type  string `json:"type"`
	First int64  `json:"first"` // when the first task started, Unix ns
	Last  int64  `json:"last"`  // when the n-th task returned, Unix ns
}

// noopWorkerMain runs an asynq server on the no-op queue with the concurrency of a
// longhaul worker, and prints when n tasks have run.
func noopWorkerMain(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(cmdNoopWorker, flag.ContinueOnError)
	addr := fs.String("redis", "", "Redis host:port")
	concurrency := fs.Int("concurrency", 20, "tasks at once")
	n := fs.Int64("n", 0, "tasks to wait for")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: *addr, PoolSize: 64})
	defer rdb.Close()
	var (
		first, count atomic.Int64
		once         sync.Once
		finished     = make(chan noopDone, 1)
	)
	handler := asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		first.CompareAndSwap(0, time.Now().UnixNano())
		if count.Add(1) == *n {
			once.Do(func() { finished <- noopDone{Type: "done", First: first.Load(), Last: time.Now().UnixNano()} })
		}
		return nil
	})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: *concurrency,
		Queues:      map[string]int{noopQueue: 1},
		LogLevel:    asynq.WarnLevel,
		Logger:      slogAsynq{slog.New(slog.NewTextHandler(os.Stderr, nil))},
	})
	if err := srv.Start(handler); err != nil {
		return err
	}
	defer srv.Shutdown()
	select {
	case d := <-finished:
		return json.NewEncoder(stdout).Encode(d)
	case <-ctx.Done():
		return fmt.Errorf("stopped after %d of %d tasks", count.Load(), *n)
	}
}

// slogAsynq gives asynq's logging interface to a slog.Logger.
type slogAsynq struct{ log *slog.Logger }

func (l slogAsynq) Debug(args ...any) { l.log.Debug(fmt.Sprint(args...)) }
func (l slogAsynq) Info(args ...any)  { l.log.Info(fmt.Sprint(args...)) }
func (l slogAsynq) Warn(args ...any)  { l.log.Warn(fmt.Sprint(args...)) }
func (l slogAsynq) Error(args ...any) { l.log.Error(fmt.Sprint(args...)) }
func (l slogAsynq) Fatal(args ...any) { l.log.Error(fmt.Sprint(args...)); os.Exit(1) }
