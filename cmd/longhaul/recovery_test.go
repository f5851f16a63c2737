package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/internal/proctest"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
)

// TestATaskDeletedFromTheDashboardEndsItsJob: an operator deletes a queued job's task with
// asynqmon's own API; within one janitor round the job ends failed, and says why, instead
// of staying queued for its whole retention.
func TestATaskDeletedFromTheDashboardEndsItsJob(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	env := fastEnv(t, rs.URL(), "LONGHAUL_DASHBOARD", "on", "LONGHAUL_SWEEP_INTERVAL", "1s")
	base := startRun(t, "api", env)
	dashboard := func(method, path string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+"/monitoring/api/queues/downloads"+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("asynqmon's %s %s = %d, want 204", method, path, resp.StatusCode)
		}
	}
	c := client{t, base}
	code, body := c.post(70000)
	if code != http.StatusAccepted {
		t.Fatalf("initiate = %d %v", code, body)
	}
	id := body["job_id"].(string)
	// The queue paused, the worker's janitor sees the task but no one takes it.
	dashboard("POST", ":pause")
	startChild(t, "worker", env)
	store := jobs.NewStore(rs.Client(), jobs.Options{})
	proctest.WaitUntil(t, 30*time.Second, "the janitor to see the job's task", func() bool {
		j, err := store.Get(context.Background(), id)
		return err == nil && j.Enqueued
	})
	dashboard("DELETE", "/pending_tasks/"+id)
	deleted := time.Now()
	p := &poller{client: c, id: id}
	final := p.untilDone(30 * time.Second)
	if final.Status != "failed" || final.Error == nil || final.Error.Code != jobs.ErrorCodeTaskRemoved {
		t.Errorf("job ended %s with %+v, want failed with %s", final.Status, final.Error, jobs.ErrorCodeTaskRemoved)
	}
	t.Logf("the job ended %v after its task was deleted, with a janitor round every second", time.Since(deleted).Round(100*time.Millisecond))
}

// TestAJobWhoseEnqueueWasRefusedStillRuns: Redis takes a job's record but refuses its task
// (an ACL denies the API asynq's keys, as a blip between the two would, and denies DEL so
// the API cannot take the record back). The client hears 503. One such job is queued by a
// worker's janitor; another by the client's retry with the same Idempotency-Key once Redis
// takes writes again; both complete.
func TestAJobWhoseEnqueueWasRefusedStillRuns(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	admin := rs.Client()
	ctx := context.Background()
	deny := func() {
		t.Helper()
		err := admin.Do(ctx, "ACL", "SETUSER", "api", "reset", "on", ">pw", "~longhaul:*", "~rate:*", "&*", "+@all", "-del").Err()
		if err != nil {
			t.Fatal(err)
		}
	}
	deny()
	apiURL := strings.Replace(rs.URL(), "redis://", "redis://api:pw@", 1)
	env := fastEnv(t, apiURL, "LONGHAUL_SWEEP_INTERVAL", "1s")
	base := startRun(t, "api", env)
	c := client{t, base}
	store := jobs.NewStore(admin, jobs.Options{})
	seen := map[string]bool{}
	refused := func(key string) string {
		t.Helper()
		code, body := c.postWith(key, 70000, 70007)
		if code != http.StatusServiceUnavailable {
			t.Fatalf("initiate with the enqueue denied = %d %v, want 503", code, body)
		}
		ids, err := store.UnfinishedBefore(ctx, time.Now().Add(time.Second), 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			if j, err := store.Get(ctx, id); err == nil && j.Status == jobs.StatusQueued {
				if _, err := asynq.NewInspectorFromRedisClient(admin).GetTaskInfo(tasks.Queue, id); err != nil {
					return id // queued, without a task: what the blip leaves
				}
			}
		}
		t.Fatal("the refused request left no job without a task; the test would prove nothing")
		return ""
	}
	byJanitor := refused("")
	byRetry := refused("order-7")
	if err := admin.Do(ctx, "ACL", "SETUSER", "api", "~*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	code, body := c.postWith("order-7", 70000, 70007)
	if code != http.StatusOK || body["job_id"] != byRetry {
		t.Fatalf("the retry with the same key = %d %v, want 200 with job %s", code, body, byRetry)
	}
	if _, err := asynq.NewInspectorFromRedisClient(admin).GetTaskInfo(tasks.Queue, byRetry); err != nil {
		t.Errorf("the retry did not queue the job's task: %v", err)
	}
	startChild(t, "worker", fastEnv(t, rs.URL(), "LONGHAUL_SWEEP_INTERVAL", "1s", "LONGHAUL_STORAGE_DIR", env["LONGHAUL_STORAGE_DIR"]))
	for _, id := range []string{byRetry, byJanitor} {
		p := &poller{client: c, id: id}
		if final := p.untilDone(time.Minute); final.Status != "completed" {
			t.Errorf("job %s ended %s, want completed", id, final.Status)
		}
	}
}

// TestCancelingARunningTaskInTheDashboardCancelsTheJob: asynqmon's Cancel on an active task
// cancels its context; the job ends canceled, saying why, rather than costing a retry and
// running again.
func TestCancelingARunningTaskInTheDashboardCancelsTheJob(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	env := fastEnv(t, rs.URL(), "LONGHAUL_DASHBOARD", "on", "LONGHAUL_FILE_TIME_MIN", "30s", "LONGHAUL_FILE_TIME_MAX", "30s")
	base := startRun(t, "serve", env)
	c := client{t, base}
	code, body := c.post(70000, 70007)
	if code != http.StatusAccepted {
		t.Fatalf("initiate = %d %v", code, body)
	}
	id := body["job_id"].(string)
	p := &poller{client: c, id: id}
	proctest.WaitUntil(t, 30*time.Second, "the job to run", func() bool { return p.poll().Status == "processing" })
	req, _ := http.NewRequest("POST", base+"/monitoring/api/queues/downloads/active_tasks/"+id+":cancel", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("asynqmon's cancel = %d, want 204", resp.StatusCode)
	}
	final := p.untilDone(30 * time.Second)
	if final.Status != "canceled" || final.Error == nil || final.Error.Code != jobs.ErrorCodeTaskCanceled {
		t.Errorf("job ended %s with %+v, want canceled with %s", final.Status, final.Error, jobs.ErrorCodeTaskCanceled)
	}
	ins := asynq.NewInspectorFromRedisClient(rs.Client())
	proctest.WaitUntil(t, 10*time.Second, "the canceled job's task to leave the queue, not to run again", func() bool {
		_, err := ins.GetTaskInfo(tasks.Queue, id)
		return err != nil
	})
}
