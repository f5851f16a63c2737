package worker

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/origin"
	"github.com/longhaul-dev/longhaul/storage"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/redis/go-redis/v9"
)

// TestHandBackOnTheLastRetryEndsTheJob: asynq archives a task that errs on its last
// retry, a hand-back at shutdown included; the job must end rather than stay processing.
func TestHandBackOnTheLastRetryEndsTheJob(t *testing.T) {
	slow := origin.Simulated{TimeMin: 10 * time.Second, TimeMax: 10 * time.Second, SizeMax: 4096}
	s := newSetup(t, Config{Origin: slow})
	id := s.newJob(t, 7)
	task, _ := tasks.NewDownloadTask(tasks.DownloadPayload{JobID: id}, 1, tasks.Options{})
	if _, err := asynq.NewClientFromRedisClient(s.rdb).Enqueue(task, asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	w := New(s.rdb, s.store, s.files, Config{Origin: slow, ShutdownTimeout: 5 * time.Second}, discard)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		job, err := s.store.Get(ctx, id)
		if err == nil && job.Files[0].Percent > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job did not start within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.Shutdown()
	job, err := s.store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != jobs.StatusFailed || job.Error == nil || job.Error.Code != jobs.ErrorCodeAttempts {
		t.Errorf("job after a hand-back on its last retry = %s with %+v, want failed with %s",
			job.Status, job.Error, jobs.ErrorCodeAttempts)
	}
}

// TestAttemptRidesOutARedisRestart: a Redis that goes away for a moment costs the job
// neither a retry nor a minute of asynq's recovery: the attempt retries its writes.
func TestAttemptRidesOutARedisRestart(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendOnly: true})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	store := jobs.NewStore(rdb, jobs.Options{})
	files, _ := storage.NewDir(t.TempDir())
	src := origin.Simulated{TimeMin: 2 * time.Second, TimeMax: 2 * time.Second, SizeMax: 4096}
	s := setup{h: NewHandler(store, files, NewQueue(rdb), Config{Origin: src}, discard), store: store, files: files, rdb: rdb}
	id := s.newJob(t, 7, 14)
	// AOF is synced every second: wait for the job's record to be on disk.
	if err := rdb.Do(context.Background(), "BGREWRITEAOF").Err(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.process(context.Background(), t, id) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if job, err := store.Get(context.Background(), id); err == nil && job.Files[0].Percent > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job did not start within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rs.Kill()
	time.Sleep(time.Second) // Redis stays away for a second
	rs.Restart()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("attempt returned %v, want it to ride out the restart", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("attempt still running a minute after Redis came back")
	}
	if job, _ := store.Get(context.Background(), id); job.Status != jobs.StatusCompleted {
		t.Errorf("job = %s, want completed", job.Status)
	}
}
