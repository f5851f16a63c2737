package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/redis/go-redis/v9"
)

type setup struct {
	store *jobs.Store
	rdb   *redis.Client
	ctx   context.Context
}

func newSetup(t *testing.T) setup {
	t.Helper()
	rdb := redistest.Start(t, redistest.Options{}).Client()
	return setup{store: jobs.NewStore(rdb, jobs.Options{Retention: time.Hour}), rdb: rdb, ctx: context.Background()}
}

// listen subscribes to a job's channel and returns a function that waits for the next event.
func (s setup) listen(t *testing.T, id string) func() map[string]any {
	t.Helper()
	ps := s.rdb.Subscribe(s.ctx, jobs.Channel(id))
	t.Cleanup(func() { ps.Close() })
	if _, err := ps.Receive(s.ctx); err != nil {
		t.Fatal(err)
	}
	return func() map[string]any {
		t.Helper()
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		defer cancel()
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("no event: %v", err)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(msg.Payload), &ev); err != nil {
			t.Fatalf("event is not JSON: %q", msg.Payload)
		}
		return ev
	}
}

func TestJobLifecycle(t *testing.T) {
	s := newSetup(t)
	id := jobs.NewID()
	if err := s.store.Create(s.ctx, id, []int64{70000, 70001}); err != nil {
		t.Fatal(err)
	}
	next := s.listen(t, id)

	job, err := s.store.Claim(s.ctx, id, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != jobs.StatusProcessing || job.Seq != 1 {
		t.Fatalf("after claim: status %s seq %d, want processing 1", job.Status, job.Seq)
	}
	want := map[string]any{"type": "job", "seq": 1.0, "epoch": job.Epoch, "job_id": id, "status": "processing", "error": nil, "waiting": nil,
		"progress": map[string]any{"percent": 0.0, "files_total": 2.0, "files_done": 0.0, "files_ready": 0.0,
			"files_unavailable": 0.0, "files_failed": 0.0}}
	if diff := cmp.Diff(want, next()); diff != "" {
		t.Errorf("processing event (-want +got):\n%s", diff)
	}

	steps := []jobs.File{
		{ID: 70000, Status: jobs.StatusProcessing, Percent: 37.5, Attempt: 1},
		{ID: 70000, Status: jobs.StatusReady, Percent: 100, Size: 10},
		{ID: 70001, Status: jobs.StatusUnavailable, Percent: 100, Error: "file 70001 is not available"},
	}
	for i, f := range steps {
		if err := s.store.UpdateFile(s.ctx, id, "a1", f); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		ev := next()
		if ev["seq"] != float64(i+2) || ev["type"] != "file" || ev["file_id"] != float64(f.ID) || ev["status"] != string(f.Status) {
			t.Errorf("event %d = %v", i, ev)
		}
	}
	if st, err := s.store.Complete(s.ctx, id, "a1"); err != nil || st != jobs.StatusCompleted {
		t.Fatalf("complete = %s, %v; want completed", st, err)
	}
	if ev := next(); ev["status"] != "completed" || ev["seq"] != 5.0 {
		t.Errorf("final event = %v", ev)
	}

	job, err = s.store.Get(s.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	wantProgress := jobs.Progress{Percent: 100, FilesTotal: 2, FilesDone: 2, FilesReady: 1, FilesUnavailable: 1}
	if diff := cmp.Diff(wantProgress, job.Progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(steps[1:], job.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if job.FinishedAt == nil || job.Error != nil {
		t.Errorf("finished_at %v, error %v", job.FinishedAt, job.Error)
	}
	if ttl := s.rdb.TTL(s.ctx, jobs.RecordKey(id)).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("finished job expires in %v, want the retention of 1h", ttl)
	}
	if _, err := s.store.Cancel(s.ctx, id); !errors.Is(err, jobs.ErrFinished) {
		t.Errorf("cancel of a finished job = %v, want ErrFinished", err)
	}
}

func TestUpdatesThatMustBeRefused(t *testing.T) {
	s := newSetup(t)
	id := jobs.NewID()
	if err := s.store.Create(s.ctx, id, []int64{7, 14}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Claim(s.ctx, id, "old"); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.store.UpdateFile(s.ctx, id, "old", jobs.File{ID: 7, Status: jobs.StatusProcessing, Percent: 50}))
	must(s.store.UpdateFile(s.ctx, id, "old", jobs.File{ID: 14, Status: jobs.StatusReady, Percent: 100}))
	if _, err := s.store.Claim(s.ctx, id, "new"); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		token string
		file  jobs.File
		want  error
	}{
		{"an attempt that lost the job", "old", jobs.File{ID: 7, Status: jobs.StatusProcessing, Percent: 60}, jobs.ErrFenced},
		{"a percent going backwards", "new", jobs.File{ID: 7, Status: jobs.StatusProcessing, Percent: 40}, jobs.ErrBackwards},
		{"a ready file made ready again", "new", jobs.File{ID: 14, Status: jobs.StatusReady, Percent: 100}, jobs.ErrFileFinished},
		{"a file of another job", "new", jobs.File{ID: 21, Status: jobs.StatusReady, Percent: 100}, jobs.ErrNotAFile},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := s.store.UpdateFile(s.ctx, id, c.token, c.file); !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
	if _, err := s.store.Complete(s.ctx, id, "new"); !errors.Is(err, jobs.ErrUnfinished) {
		t.Errorf("complete with a file open = %v, want ErrUnfinished", err)
	}

	job, err := s.store.Cancel(s.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]jobs.Status{}
	for _, f := range job.Files {
		got[f.ID] = f.Status
	}
	if diff := cmp.Diff(map[int64]jobs.Status{7: jobs.StatusCanceled, 14: jobs.StatusReady}, got); diff != "" {
		t.Errorf("files after cancel (-want +got):\n%s", diff)
	}
	if job.Status != jobs.StatusCanceled || job.Progress.Percent != 100 {
		t.Errorf("job after cancel: %s at %v%%", job.Status, job.Progress.Percent)
	}
	if err := s.store.UpdateFile(s.ctx, id, "new", jobs.File{ID: 7, Status: jobs.StatusProcessing, Percent: 90}); !errors.Is(err, jobs.ErrFinished) {
		t.Errorf("progress after cancel = %v, want ErrFinished", err)
	}
	audit, err := s.store.Audit(s.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"14 old"}, audit); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}

func TestFailEndsOpenFilesWithTheError(t *testing.T) {
	s := newSetup(t)
	id := jobs.NewID()
	if err := s.store.Create(s.ctx, id, []int64{7, 14}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Claim(s.ctx, id, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.store.UpdateFile(s.ctx, id, "a", jobs.File{ID: 7, Status: jobs.StatusReady, Percent: 100}); err != nil {
		t.Fatal(err)
	}
	timeout := jobs.Error{Code: jobs.ErrorCodeTimeout, Message: `job ran past its "timeout" of 1m0s`}
	if err := s.store.Fail(s.ctx, id, "a", timeout); err != nil {
		t.Fatal(err)
	}
	job, err := s.store.Get(s.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := []jobs.File{{ID: 7, Status: jobs.StatusReady, Percent: 100},
		{ID: 14, Status: jobs.StatusFailed, Percent: 100, Error: timeout.Message}}
	if diff := cmp.Diff(want, job.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if job.Status != jobs.StatusFailed || job.Error == nil || *job.Error != timeout {
		t.Errorf("job = %s with error %+v", job.Status, job.Error)
	}
}

func TestGetUnknownJob(t *testing.T) {
	s := newSetup(t)
	if _, err := s.store.Get(s.ctx, jobs.NewID()); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("got %v, want ErrNotFound", err)
	}
	if _, err := s.store.Claim(s.ctx, jobs.NewID(), "a"); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("claim: got %v, want ErrNotFound", err)
	}
}

func TestCancelRacingCompletionEndsOnce(t *testing.T) {
	s := newSetup(t)
	for range 20 {
		id := jobs.NewID()
		if err := s.store.Create(s.ctx, id, []int64{7}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.store.Claim(s.ctx, id, "a"); err != nil {
			t.Fatal(err)
		}
		if err := s.store.UpdateFile(s.ctx, id, "a", jobs.File{ID: 7, Status: jobs.StatusReady, Percent: 100}); err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 2)
		go func() { _, err := s.store.Cancel(s.ctx, id); errs <- err }()
		go func() { _, err := s.store.Complete(s.ctx, id, "a"); errs <- err }()
		won := 0
		for range 2 {
			if err := <-errs; err == nil {
				won++
			} else if !errors.Is(err, jobs.ErrFinished) {
				t.Fatal(err)
			}
		}
		job, _ := s.store.Get(s.ctx, id)
		if won != 1 || (job.Status != jobs.StatusCanceled && job.Status != jobs.StatusCompleted) {
			t.Fatalf("%d of cancel and complete succeeded, job %s; want exactly one", won, job.Status)
		}
	}
}
