package worker

import (
	"context"
	"errors"

	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/internal/proctest"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/storage"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/minio/minio-go/v7"
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
	j := NewJanitor(s.store, s.files, NewQueue(s.rdb), tasks.Options{}, discard)

	if n, err := j.Sweep(ctx, time.Now()); err != nil || n != 0 {
		t.Errorf("sweep right after writing removed %d (%v), want 0: the folders are fresh", n, err)
	}
	n, err := j.Sweep(ctx, time.Now().Add(2*folderGrace))
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

// TestNoJobWaitsForATaskThatIsGone: every unfinished job of some age has a task in the
// queue, gets one when its enqueue was lost, or ends when an operator removed it.
func TestNoJobWaitsForATaskThatIsGone(t *testing.T) {
	s := newSetup(t, Config{Origin: quick})
	ctx := context.Background()
	client, ins := asynq.NewClientFromRedisClient(s.rdb), asynq.NewInspectorFromRedisClient(s.rdb)
	queued := func(id string) {
		t.Helper()
		task, _ := tasks.NewDownloadTask(tasks.DownloadPayload{JobID: id}, 2, tasks.Options{})
		if _, err := client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
	j := NewJanitor(s.store, s.files, NewQueue(s.rdb), tasks.Options{}, discard)
	later := time.Now().Add(2 * folderGrace)

	healthy, lost, deleted, archived, stranded, finished := s.newJob(t, 7), s.newJob(t, 7), s.newJob(t, 7), s.newJob(t, 7, 14), s.newJob(t, 7), s.newJob(t, 21)
	for _, id := range []string{healthy, deleted, archived, stranded, finished} {
		queued(id)
	}
	// The janitor's first round sees their tasks: from then on a missing one was removed.
	if err := j.Reconcile(ctx, later); err != nil {
		t.Fatal(err)
	}
	if err := ins.DeleteTask(tasks.Queue, deleted); err != nil {
		t.Fatal(err)
	}
	if err := ins.ArchiveTask(tasks.Queue, archived); err != nil {
		t.Fatal(err)
	}
	// A worker died on its last retry; asynq archived its task.
	if _, err := s.store.Claim(ctx, stranded, "dead"); err != nil {
		t.Fatal(err)
	}
	if err := ins.ArchiveTask(tasks.Queue, stranded); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Cancel(ctx, finished); err != nil {
		t.Fatal(err)
	}
	if err := j.Reconcile(ctx, later); err != nil {
		t.Fatal(err)
	}

	want := map[string]struct {
		status jobs.Status
		code   string
	}{
		healthy:  {jobs.StatusQueued, ""},
		lost:     {jobs.StatusQueued, ""},
		deleted:  {jobs.StatusFailed, jobs.ErrorCodeTaskRemoved},
		archived: {jobs.StatusFailed, jobs.ErrorCodeAttempts},
		stranded: {jobs.StatusFailed, jobs.ErrorCodeAttempts},
		finished: {jobs.StatusCanceled, ""},
	}
	for id, w := range want {
		job, err := s.store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		code := ""
		if job.Error != nil {
			code = job.Error.Code
		}
		if job.Status != w.status || code != w.code {
			t.Errorf("job %s is %s (%q), want %s (%q)", id, job.Status, code, w.status, w.code)
		}
	}
	if _, err := ins.GetTaskInfo(tasks.Queue, lost); err != nil {
		t.Errorf("the job whose enqueue was lost has no task after a round: %v", err)
	}
	// Deleting the whole queue hides nothing from the janitor.
	gone := s.newJob(t, 7)
	queued(gone)
	j.Reconcile(ctx, later)
	if err := ins.DeleteQueue(tasks.Queue, true); err != nil {
		t.Fatal(err)
	}
	if err := j.Reconcile(ctx, later); err != nil {
		t.Fatal(err)
	}
	if job, _ := s.store.Get(ctx, gone); job.Status != jobs.StatusFailed {
		t.Errorf("a job of a deleted queue is %s, want failed", job.Status)
	}
}

// TestAJobWhoseTaskFinishedWithoutItRunsAgain: asynq says the task completed, the record
// says the job did not: its last writes were lost (a failover). It runs again.
func TestAJobWhoseTaskFinishedWithoutItRunsAgain(t *testing.T) {
	s := newSetup(t, Config{Origin: quick})
	ctx := context.Background()
	ins := asynq.NewInspectorFromRedisClient(s.rdb)
	forgotten := s.newJob(t, 7)
	task, _ := tasks.NewDownloadTask(tasks.DownloadPayload{JobID: forgotten}, 1, tasks.Options{Retention: time.Hour})
	if _, err := asynq.NewClientFromRedisClient(s.rdb).Enqueue(task); err != nil {
		t.Fatal(err)
	}
	// A stand-in worker completes the task without touching the job, as a worker whose
	// writes to the job were lost would seem to have.
	srv := asynq.NewServerFromRedisClient(s.rdb, asynq.Config{Concurrency: 1, Queues: map[string]int{tasks.Queue: 1},
		TaskCheckInterval: 50 * time.Millisecond, LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for info, _ := ins.GetTaskInfo(tasks.Queue, forgotten); info == nil || info.State != asynq.TaskStateCompleted; info, _ = ins.GetTaskInfo(tasks.Queue, forgotten) {
		if time.Now().After(deadline) {
			t.Fatal("the stand-in task did not complete")
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.Shutdown()
	j := NewJanitor(s.store, s.files, NewQueue(s.rdb), tasks.Options{}, discard)
	if err := j.Reconcile(ctx, time.Now().Add(2*folderGrace)); err != nil {
		t.Fatal(err)
	}
	job, _ := s.store.Get(ctx, forgotten)
	if job.Task == forgotten {
		t.Fatalf("the job was not run again: its task is still %s", job.Task)
	}
	if info, err := ins.GetTaskInfo(tasks.Queue, job.Task); err != nil || info.State != asynq.TaskStatePending {
		t.Errorf("its new task %s: %+v, %v; want it queued", job.Task, info, err)
	}
}

// TestRetentionRemovesAJobsObjectsFromABucket runs a job to completion on bucket storage
// with a short retention. Its objects stay while its record lives; once the record has
// expired, the janitor removes them, and the upload a killed worker left behind with them,
// while the files of a job still running stay.
func TestRetentionRemovesAJobsObjectsFromABucket(t *testing.T) {
	s3 := proctest.StartS3(t, devbin.S3Options{}, "files")
	bucket, err := storage.NewBucket(t.Context(), s3.BucketConfig("files"))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redistest.Start(t, redistest.Options{}).Client()
	store := jobs.NewStore(rdb, jobs.Options{Retention: 2 * time.Second})
	s := setup{h: NewHandler(store, bucket, NewQueue(rdb), Config{Origin: quick}, discard), store: store, rdb: rdb}
	ctx := context.Background()
	finished, running := s.newJob(t, 7, 14), s.newJob(t, 21)
	if err := s.process(ctx, t, finished); err != nil {
		t.Fatal(err)
	}
	if job, _ := store.Get(ctx, finished); job.Status != jobs.StatusCompleted {
		t.Fatalf("job = %s, want completed", job.Status)
	}
	if _, err := bucket.Write(running, 21, "a", strings.NewReader("data")); err != nil {
		t.Fatal(err)
	}
	client, err := s3.Client()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (minio.Core{Client: client}).NewMultipartUpload(ctx, "files", finished+"/28", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	j := NewJanitor(store, bucket, NewQueue(rdb), tasks.Options{}, discard)
	later := func() time.Time { return time.Now().Add(2 * folderGrace) } // past the grace of fresh objects

	if n, err := j.Sweep(ctx, later()); err != nil || n != 0 {
		t.Errorf("sweep while the job's record lives removed %d (%v), want 0", n, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for exists, _ := store.Exists(ctx, finished); exists; exists, _ = store.Exists(ctx, finished) {
		if time.Now().After(deadline) {
			t.Fatal("the finished job's record did not expire within 30s of a 2s retention")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n, err := j.Sweep(ctx, later()); err != nil || n != 1 {
		t.Fatalf("sweep after the record expired removed %d (%v), want 1", n, err)
	}
	var left []string
	for obj := range client.ListObjects(ctx, "files", minio.ListObjectsOptions{Recursive: true}) {
		left = append(left, obj.Key)
	}
	if diff := cmp.Diff([]string{running + "/21"}, left); diff != "" {
		t.Errorf("objects after the sweep (-want +got):\n%s", diff)
	}
	for up := range client.ListIncompleteUploads(ctx, "files", "", true) {
		t.Errorf("upload of %s left unfinished after the sweep (%v)", up.Key, up.Err)
	}
}
