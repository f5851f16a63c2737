package worker

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/longhaul-dev/longhaul/webhook"
)

// newHookedSetup is a setup whose handler announces deliveries to its Redis.
func newHookedSetup(t *testing.T) setup {
	t.Helper()
	s := newSetup(t, Config{Origin: quick})
	s.h.cfg.Webhooks.Announcer = webhook.NewAnnouncer(asynq.NewClientFromRedisClient(s.rdb), tasks.WebhookOptions{})
	return s
}

func (s setup) newJobWithCallback(t *testing.T, events []string, ids ...int64) string {
	t.Helper()
	id, _, err := s.store.Submit(context.Background(), jobs.Request{FileIDs: ids, CallbackURL: "https://hooks.example.com/",
		CallbackEvents: events})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// deliveries lists the task ids in the webhook queue.
func (s setup) deliveries(t *testing.T) []string {
	t.Helper()
	pending, err := asynq.NewInspectorFromRedisClient(s.rdb).ListPendingTasks(tasks.WebhookQueue)
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatal(err)
	}
	var ids []string
	for _, task := range pending {
		ids = append(ids, task.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestAJobAnnouncesItsEndOnce(t *testing.T) {
	s := newHookedSetup(t)
	id := s.newJobWithCallback(t, []string{tasks.EventFileReady}, 70000, 70007)
	if err := s.process(context.Background(), t, id); err != nil {
		t.Fatal(err)
	}
	want := []string{"msg_" + id + "_file_70000", "msg_" + id + "_file_70007", "msg_" + id + "_finished"}
	if got := s.deliveries(t); !slices.Equal(got, want) {
		t.Fatalf("deliveries queued %v, want %v", got, want)
	}
	// The retry of a task whose attempt finished the job: it finds the job finished, and
	// announces again, which queues nothing new.
	if err := s.process(context.Background(), t, id); err != nil {
		t.Fatal(err)
	}
	if got := s.deliveries(t); !slices.Equal(got, want) {
		t.Errorf("after a retry of the job's task, deliveries queued %v, want %v", got, want)
	}
}

// TestAnEndNotAnnouncedIsAnnouncedByTheRetry: the attempt that finished the job died before
// it queued the delivery; the retry of its task does it.
func TestAnEndNotAnnouncedIsAnnouncedByTheRetry(t *testing.T) {
	s := newHookedSetup(t)
	id := s.newJobWithCallback(t, nil, 70000)
	ctx := context.Background()
	if _, err := s.store.Claim(ctx, id, "lost"); err != nil {
		t.Fatal(err)
	}
	if err := s.store.UpdateFile(ctx, id, "lost", jobs.File{ID: 70000, Status: jobs.StatusReady, Percent: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Complete(ctx, id, "lost"); err != nil {
		t.Fatal(err)
	}
	if got := s.deliveries(t); len(got) != 0 {
		t.Fatalf("deliveries before the retry: %v", got)
	}
	if err := s.process(ctx, t, id); err != nil {
		t.Fatal(err)
	}
	if got, want := s.deliveries(t), []string{"msg_" + id + "_finished"}; !slices.Equal(got, want) {
		t.Errorf("deliveries after the retry %v, want %v (file events were not asked for)", got, want)
	}
}

func TestAJobWithoutCallbackAnnouncesNothing(t *testing.T) {
	s := newHookedSetup(t)
	id := s.newJob(t, 70000)
	if err := s.process(context.Background(), t, id); err != nil {
		t.Fatal(err)
	}
	if got := s.deliveries(t); len(got) != 0 {
		t.Errorf("deliveries queued for a job without callback: %v", got)
	}
}
