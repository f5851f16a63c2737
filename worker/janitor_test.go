package worker

import (
	"context"
	"errors"

	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/storage"
	"github.com/longhaul-dev/longhaul/tasks"
)

func TestJanitorRemovesOnlyFilesOfExpiredJobs(t *testing.T) {
	s := newSetup(t, Config{Origin: quick})
	ctx := context.Background()
	live := s.newJob(t, 7)
	expired := jobs.NewID() // files stored, record gone
	for _, id := range []string{live, expired} {
		if _, err := s.files.Write(id, 7, "a", strings.NewReader("data")); err != nil {
			t.Fatal(err)
		}
	}
	j := NewJanitor(s.store, s.files, Archive{asynq.NewInspectorFromRedisClient(s.rdb)}, discard)

	if n, err := j.Sweep(ctx, time.Now()); err != nil || n != 0 {
		t.Errorf("sweep right after writing removed %d (%v), want 0: the folders are fresh", n, err)
	}
	n, err := j.Sweep(ctx, time.Now().Add(2*janitorGrace))
	if err != nil || n != 1 {
		t.Fatalf("sweep removed %d (%v), want 1", n, err)
	}
	if _, err := s.files.Size(expired, 7); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("file of the expired job: %v, want removed", err)
	}
	if _, err := s.files.Size(live, 7); err != nil {
		t.Errorf("file of the live job: %v, want kept", err)
	}
}

func TestJanitorEndsJobsWhoseTaskWasArchived(t *testing.T) {
	s := newSetup(t, Config{Origin: quick})
	ctx := context.Background()
	stranded, finished := s.newJob(t, 7, 14), s.newJob(t, 21)
	if _, err := s.store.Claim(ctx, stranded, "dead"); err != nil {
		t.Fatal(err)
	}
	if err := s.store.UpdateFile(ctx, stranded, "dead", jobs.File{ID: 7, Status: jobs.StatusReady, Percent: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Cancel(ctx, finished); err != nil {
		t.Fatal(err)
	}
	client, ins := asynq.NewClientFromRedisClient(s.rdb), asynq.NewInspectorFromRedisClient(s.rdb)
	for _, id := range []string{stranded, finished} {
		task, _ := tasks.NewDownloadTask(id, 2, tasks.Options{})
		if _, err := client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
		if err := ins.ArchiveTask(tasks.Queue, id); err != nil {
			t.Fatal(err)
		}
	}
	j := NewJanitor(s.store, s.files, Archive{ins}, discard)
	if n, err := j.EndAbandoned(ctx); err != nil || n != 1 {
		t.Fatalf("EndAbandoned = %d, %v; want the one unfinished job ended", n, err)
	}
	job, _ := s.store.Get(ctx, stranded)
	if job.Status != jobs.StatusFailed || job.Error.Code != jobs.ErrorCodeAttempts ||
		job.Files[0].Status != jobs.StatusReady || job.Files[1].Status != jobs.StatusFailed {
		t.Errorf("stranded job = %s %+v, files %+v", job.Status, job.Error, job.Files)
	}
	if job, _ := s.store.Get(ctx, finished); job.Status != jobs.StatusCanceled {
		t.Errorf("a finished job changed to %s", job.Status)
	}
}
