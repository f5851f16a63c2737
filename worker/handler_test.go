package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
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

type setup struct {
	h     *Handler
	store *jobs.Store
	files *storage.Dir
	rdb   *redis.Client
}

func newSetup(t *testing.T, cfg Config) setup {
	t.Helper()
	rdb := redistest.Start(t, redistest.Options{}).Client()
	store := jobs.NewStore(rdb, jobs.Options{})
	files, err := storage.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return setup{h: NewHandler(store, files, NewQueue(rdb), cfg, discard), store: store, files: files, rdb: rdb}
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func (s setup) newJob(t *testing.T, ids ...int64) string {
	t.Helper()
	id := jobs.NewID()
	if err := s.store.Create(context.Background(), id, ids); err != nil {
		t.Fatal(err)
	}
	return id
}

func (s setup) process(ctx context.Context, t *testing.T, id string) error {
	t.Helper()
	task, err := tasks.NewDownloadTask(tasks.DownloadPayload{JobID: id}, 1, tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s.h.ProcessTask(ctx, asynq.NewTask(task.Type(), task.Payload()))
}

// events collects the events of a job from now on.
func (s setup) events(t *testing.T, id string) <-chan map[string]any {
	t.Helper()
	ps := s.rdb.Subscribe(context.Background(), jobs.Channel(id))
	t.Cleanup(func() { ps.Close() })
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := make(chan map[string]any, 10000)
	go func() {
		for msg := range ps.Channel() {
			var ev map[string]any
			json.Unmarshal([]byte(msg.Payload), &ev)
			out <- ev
		}
	}()
	return out
}

func drain(ch <-chan map[string]any) []map[string]any {
	var evs []map[string]any
	for {
		select {
		case ev := <-ch:
			evs = append(evs, ev)
		case <-time.After(200 * time.Millisecond):
			return evs
		}
	}
}

var quick = origin.Simulated{TimeMin: 20 * time.Millisecond, TimeMax: 60 * time.Millisecond, SizeMax: 4096}

func TestJobRunsToCompletionWithRealFiles(t *testing.T) {
	s := newSetup(t, Config{Origin: quick})
	id := s.newJob(t, 7, 8, 14)
	evs := s.events(t, id)
	if err := s.process(context.Background(), t, id); err != nil {
		t.Fatal(err)
	}
	job, err := s.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != jobs.StatusCompleted || job.Progress.FilesReady != 2 || job.Progress.FilesUnavailable != 1 {
		t.Fatalf("job = %s with progress %+v", job.Status, job.Progress)
	}
	for _, f := range job.Files {
		if f.Status != jobs.StatusReady {
			continue
		}
		stored, err := s.files.Open(id, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(stored)
		stored.Close()
		want, _ := io.ReadAll(quick.Content(f.ID))
		if !bytes.Equal(got, want) || int64(len(got)) != f.Size || f.Size < 512 {
			t.Errorf("file %d: stored %d bytes, record says %d, content matches %v", f.ID, len(got), f.Size, bytes.Equal(got, want))
		}
	}
	// Every step is an event with the next seq, and no file's percent goes backwards.
	seq, percent := 0.0, map[float64]float64{}
	for _, ev := range drain(evs) {
		if ev["seq"] != seq+1 && seq != 0 {
			t.Errorf("seq %v after %v", ev["seq"], seq)
		}
		seq = ev["seq"].(float64)
		if ev["type"] == "file" {
			fid, p := ev["file_id"].(float64), ev["percent"].(float64)
			if p < percent[fid] {
				t.Errorf("file %v went back from %v to %v", fid, percent[fid], p)
			}
			percent[fid] = p
		}
	}
	if seq != float64(job.Seq) {
		t.Errorf("last event seq %v, record seq %d", seq, job.Seq)
	}
}

func TestTransientErrorsOutlastingRetriesFailTheFile(t *testing.T) {
	src := quick
	src.FailureRate = 1
	s := newSetup(t, Config{Origin: src, FileRetries: 2})
	id := s.newJob(t, 7)
	if err := s.process(context.Background(), t, id); err != nil {
		t.Fatal(err)
	}
	job, _ := s.store.Get(context.Background(), id)
	f := job.Files[0]
	if f.Status != jobs.StatusFailed || !strings.Contains(f.Error, "gave up after 3 tries") || f.Percent != 100 {
		t.Errorf("file = %+v, want failed after 3 tries at 100%%", f)
	}
	if job.Status != jobs.StatusFailed || job.Error == nil || job.Error.Code != jobs.ErrorCodeNoFiles {
		t.Errorf("job = %s, error %+v; want failed with no_files", job.Status, job.Error)
	}
}

func TestTransientErrorsWithinRetriesAreOvercome(t *testing.T) {
	src := quick
	src.FailureRate = 0.2
	s := newSetup(t, Config{Origin: src, FileRetries: 100})
	id := s.newJob(t, 7, 14, 21)
	if err := s.process(context.Background(), t, id); err != nil {
		t.Fatal(err)
	}
	job, _ := s.store.Get(context.Background(), id)
	if job.Status != jobs.StatusCompleted || job.Progress.FilesReady != 3 {
		t.Errorf("job = %s with %+v", job.Status, job.Progress)
	}
}

func TestNewAttemptResumesFromCheckpoints(t *testing.T) {
	s := newSetup(t, Config{Origin: quick})
	ctx := context.Background()
	id := s.newJob(t, 7, 14, 21)
	// An attempt that died: file 7 was 60% done, file 14 was stored but not yet recorded
	// ready, file 21 was ready.
	if _, err := s.store.Claim(ctx, id, "dead"); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.store.UpdateFile(ctx, id, "dead", jobs.File{ID: 7, Status: jobs.StatusProcessing, Percent: 60, Attempt: 1}))
	must(s.store.UpdateFile(ctx, id, "dead", jobs.File{ID: 21, Status: jobs.StatusReady, Percent: 100}))
	if _, err := s.files.Write(id, 14, "dead", quick.Content(14)); err != nil {
		t.Fatal(err)
	}
	evs := s.events(t, id)

	must(s.process(ctx, t, id))
	byFile := map[float64][]map[string]any{}
	for _, ev := range drain(evs) {
		if ev["type"] == "file" {
			byFile[ev["file_id"].(float64)] = append(byFile[ev["file_id"].(float64)], ev)
		}
	}
	if first := byFile[7][0]; first["percent"].(float64) < 60 || first["attempt"] != 2.0 {
		t.Errorf("file 7 resumed with %v, want at 60%% or more, as attempt 2", first)
	}
	if len(byFile[14]) != 1 || byFile[14][0]["status"] != "ready" {
		t.Errorf("file 14 (stored by the dead attempt) got events %v, want one: ready", byFile[14])
	}
	if len(byFile[21]) != 0 {
		t.Errorf("file 21 (ready before) got events %v", byFile[21])
	}
	audit, _ := s.store.Audit(ctx, id)
	if len(audit) != 3 || audit[0] != "21 dead" {
		t.Errorf("audit %v, want 21 by the dead attempt, then 7 and 14 by the new one", audit)
	}
}

func TestCancelStopsTheAttemptAtItsNextStep(t *testing.T) {
	slow := origin.Simulated{TimeMin: 10 * time.Second, TimeMax: 10 * time.Second, SizeMax: 4096}
	s := newSetup(t, Config{Origin: slow})
	ctx := context.Background()
	id := s.newJob(t, 7, 14)
	evs := s.events(t, id)
	done := make(chan error, 1)
	go func() { done <- s.process(ctx, t, id) }()
	for ev := range evs {
		if ev["type"] == "file" && ev["percent"].(float64) > 0 {
			break
		}
	}
	if _, err := s.store.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("canceled attempt returned %v, want nil (nothing to retry)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("attempt still running 5s after the cancel")
	}
	after := false
	for _, ev := range drain(evs) {
		if after {
			t.Errorf("event after the canceled one: %v", ev)
		}
		after = after || (ev["type"] == "job" && ev["status"] == "canceled")
	}
	if !after {
		t.Error("no canceled event")
	}
}

func TestShutdownHandsTheJobBack(t *testing.T) {
	slow := origin.Simulated{TimeMin: 10 * time.Second, TimeMax: 10 * time.Second, SizeMax: 4096}
	s := newSetup(t, Config{Origin: slow})
	id := s.newJob(t, 7)
	evs := s.events(t, id)
	done := make(chan error, 1)
	go func() { done <- s.process(context.Background(), t, id) }()
	for ev := range evs {
		if ev["type"] == "file" && ev["percent"].(float64) > 0 {
			break
		}
	}
	close(s.h.stopping)
	select {
	case err := <-done:
		if !errors.Is(err, ErrStopping) {
			t.Errorf("attempt returned %v, want ErrStopping so asynq retries it soon", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("attempt still running 5s after shutdown began")
	}
	job, _ := s.store.Get(context.Background(), id)
	if job.Status != jobs.StatusProcessing || job.Files[0].Percent == 0 {
		t.Errorf("job after hand-back = %s, file at %v%%; want processing with its checkpoint", job.Status, job.Files[0].Percent)
	}
	if d := retryDelay(0, ErrStopping, nil); d > time.Second {
		t.Errorf("a handed-back job waits %v before its retry", d)
	}
}

func TestJobPastItsTimeoutFailsAndKeepsReadyFiles(t *testing.T) {
	slow := origin.Simulated{TimeMin: 10 * time.Second, TimeMax: 10 * time.Second, SizeMax: 4096}
	s := newSetup(t, Config{Origin: slow, FileConcurrency: 1})
	id := s.newJob(t, 7, 14)
	// File 7 was stored by an earlier attempt, so it turns ready at once; 14 takes 10 s.
	if _, err := s.files.Write(id, 7, "earlier", slow.Content(7)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.process(ctx, t, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("attempt returned %v, want the deadline", err)
	}
	job, _ := s.store.Get(context.Background(), id)
	if job.Status != jobs.StatusFailed || job.Error == nil || job.Error.Code != jobs.ErrorCodeTimeout {
		t.Fatalf("job = %s with error %+v, want failed with timeout", job.Status, job.Error)
	}
	if job.Files[0].Status != jobs.StatusReady || job.Files[1].Status != jobs.StatusFailed || job.Files[1].Error == "" {
		t.Errorf("files = %+v, want 7 still ready and 14 failed with the reason", job.Files)
	}
}
