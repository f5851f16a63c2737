package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/internal/proctest"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
)

// TestWorkerKilledMidFile kills a worker process with SIGKILL while it prepares files, on a
// Redis with AOF, and starts another. The status says at once that the job waits for a
// worker, since when and by when; the job resumes from its checkpoints within 45 s of the
// kill (asynq alone takes one to two minutes), completes, and the audit kept in Redis shows
// that no file was made ready twice.
func TestWorkerKilledMidFile(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for asynq's lease to expire (30 s)")
	}
	t.Parallel() // it mostly waits, as its twin on S3 does beside it
	rs := redistest.Start(t, redistest.Options{AppendOnly: true})
	env := fastEnv(t, rs.URL(), "LONGHAUL_FILE_TIME_MIN", "1s", "LONGHAUL_FILE_TIME_MAX", "1500ms",
		"LONGHAUL_FILE_CONCURRENCY", "2")
	base := startRun(t, "api", env)
	first := startChild(t, "worker", env)

	c := client{t, base}
	ids := []int64{70000, 70007, 70014, 70021, 70028, 70035}
	code, body := c.post(ids...)
	if code != http.StatusAccepted {
		t.Fatalf("initiate = %d %v", code, body)
	}
	p := &poller{client: c, id: body["job_id"].(string)}
	proctest.WaitUntil(t, time.Minute, "one file ready and another part-way", func() bool {
		ready, midway := 0, 0
		for _, f := range p.poll().Files {
			if f.Status == "ready" {
				ready++
			} else if f.Status == "processing" && f.Percent > 0 {
				midway++
			}
		}
		return ready > 0 && midway > 0
	})
	first.Kill()
	killed := time.Now()
	atKill := p.poll()
	readyBefore := countReady(atKill)
	startChild(t, "worker", env)

	// The new worker's watchdog says the job waits, then hands it to a rescue task once
	// the dead worker's lease has expired (30 s).
	var waiting jobStatus
	proctest.WaitUntil(t, 20*time.Second, "the status to say the job waits for a worker", func() bool {
		waiting = p.poll()
		return waiting.Waiting != nil
	})
	if w := waiting.Waiting; w.Reason != "worker_lost" || w.Since.After(killed) || w.ResumeBy.Before(w.Since.Add(30*time.Second)) ||
		w.ResumeBy.After(killed.Add(45*time.Second)) {
		t.Errorf("waiting = %+v for a worker killed at %v, want worker_lost since before the kill, resuming by 45 s after it",
			w, killed.Format(time.RFC3339))
	}
	proctest.WaitUntil(t, 45*time.Second-time.Since(killed), "the job to resume", func() bool {
		s := p.poll()
		return s.Waiting == nil && (s.Seq > waiting.Seq+1 || s.terminal())
	})
	t.Logf("the job resumed %v after its worker was killed (waiting since %s, expected by %s)",
		time.Since(killed).Round(100*time.Millisecond), waiting.Waiting.Since.Format("15:04:05.000"),
		waiting.Waiting.ResumeBy.Format("15:04:05"))
	final := p.untilDone(2 * time.Minute)
	if final.Status != "completed" || countReady(final) != len(ids) {
		t.Fatalf("job ended %s with %d files ready, want completed with %d", final.Status, countReady(final), len(ids))
	}
	audit, err := jobs.NewStore(rs.Client(), jobs.Options{}).Audit(context.Background(), p.id)
	if err != nil {
		t.Fatal(err)
	}
	made := map[string]int{}
	attempts := map[string]bool{}
	for _, entry := range audit {
		file, attempt, _ := strings.Cut(entry, " ")
		made[file]++
		attempts[attempt] = true
	}
	for _, id := range ids {
		if n := made[jsonNumber(id)]; n != 1 {
			t.Errorf("file %d was made ready %d times, want once (audit %v)", id, n, audit)
		}
	}
	if readyBefore < len(ids) && len(attempts) < 2 {
		t.Errorf("audit names %d attempt(s); the files left at the kill should be another attempt's", len(attempts))
	}
}

func countReady(s jobStatus) int {
	n := 0
	for _, f := range s.Files {
		if f.Status == "ready" {
			n++
		}
	}
	return n
}

func jsonNumber(id int64) string {
	b, _ := json.Marshal(id)
	return string(b)
}

// TestRedisOutage takes Redis away under a running server: requests are refused with 503
// and nothing is half-written; when Redis is back, the server recovers by itself.
func TestRedisOutage(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendOnly: true})
	base := startRun(t, "serve", fastEnv(t, rs.URL()))
	c := client{t, base}
	code, body := c.post(70000, 70001)
	if code != http.StatusAccepted {
		t.Fatalf("initiate = %d %v", code, body)
	}
	before := &poller{client: c, id: body["job_id"].(string)}
	before.untilDone(time.Minute)
	// AOF with everysec makes what was acknowledged a second ago durable.
	time.Sleep(1500 * time.Millisecond)
	keys := jobKeys(t, rs)

	rs.Kill()
	code, body = c.post(70007)
	errBody, _ := body["error"].(map[string]any)
	if code != http.StatusServiceUnavailable || errBody["code"] != "unavailable" {
		t.Errorf("initiate without Redis = %d %v, want 503 unavailable", code, body)
	}
	resp, err := http.Post(base+"/v1/download/initiate", "application/json", strings.NewReader(`{"file_ids":[7]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if got := statusCode(t, base+"/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz without Redis = %d, want 503", got)
	}
	if got := statusCode(t, base+"/v1/download/status/"+before.id); got != http.StatusServiceUnavailable {
		t.Errorf("status without Redis = %d, want 503", got)
	}

	rs.Restart()
	proctest.WaitUntil(t, time.Minute, "/readyz to recover", func() bool { return statusCode(t, base+"/readyz") == 200 })
	if got := jobKeys(t, rs); got != keys {
		t.Errorf("Redis holds %d job and task keys after the outage, %d before: refused requests wrote something", got, keys)
	}
	if s := before.poll(); s.Status != "completed" {
		t.Errorf("job finished before the outage is %s after it", s.Status)
	}
	code, body = c.post(70007)
	if code != http.StatusAccepted {
		t.Fatalf("initiate after recovery = %d %v", code, body)
	}
	after := &poller{client: c, id: body["job_id"].(string)}
	if s := after.untilDone(2 * time.Minute); s.Status != "completed" {
		t.Errorf("job started after recovery ended %s", s.Status)
	}
}

// jobKeys counts the keys of jobs and their tasks (asynq's statistics and heartbeats
// change on their own and are left out).
func jobKeys(t *testing.T, rs *redistest.Server) int {
	t.Helper()
	n := 0
	for _, pattern := range []string{"longhaul:*", "asynq:{downloads}:t:*"} {
		keys, err := rs.Client().Keys(context.Background(), pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		n += len(keys)
	}
	return n
}

func statusCode(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRefusesARedisThatEvicts: eviction silently loses jobs and leases, so longhaul will
// not start on such a Redis unless the operator opts out.
func TestRefusesARedisThatEvicts(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	if err := rs.Client().ConfigSet(context.Background(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	env := fastEnv(t, rs.URL())
	err := run(t.Context(), []string{"longhaul", "worker"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "noeviction") || !strings.Contains(err.Error(), "LONGHAUL_ALLOW_EVICTION") {
		t.Errorf("run on an evicting Redis = %v, want a refusal that says how to fix it", err)
	}
	env["LONGHAUL_ALLOW_EVICTION"] = "true"
	startRun(t, "api", env)
}
