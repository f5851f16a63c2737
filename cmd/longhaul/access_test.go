package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/auth"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
)

// runOnce runs a command of longhaul that ends by itself, and returns what it printed.
func runOnce(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = run(ctx, append([]string{"longhaul"}, args...), func(k string) string { return env[k] }, &out, &errs)
	return out.String(), errs.String(), err
}

func TestKeysCommand(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	env := map[string]string{"REDIS_URL": rs.URL()}
	secret, stderr, err := runOnce(t, env, "keys", "create", "--name", "ci", "--role", "client")
	secret = strings.TrimSpace(secret)
	if err != nil || !strings.HasPrefix(secret, "lh_") || strings.Contains(secret, "\n") {
		t.Fatalf("keys create = %q, %q, %v; want the key alone on stdout", secret, stderr, err)
	}
	key, err := auth.NewKeys(rs.Client()).Lookup(context.Background(), secret)
	if err != nil || key.Name != "ci" || key.Role != auth.RoleClient || !strings.Contains(stderr, key.ID) {
		t.Fatalf("the printed key is %+v, %v; stderr %q", key, err, stderr)
	}
	list, _, err := runOnce(t, env, "keys", "list")
	if err != nil || !strings.Contains(list, key.ID) || !strings.Contains(list, "ci") || !strings.Contains(list, "client") ||
		strings.Contains(list, secret[len("lh_"+key.ID+"_"):]) {
		t.Errorf("keys list = %q, %v; want id, name and role, never the key", list, err)
	}
	if _, _, err := runOnce(t, env, "keys", "revoke", key.ID); err != nil {
		t.Fatal(err)
	}
	if list, _, _ := runOnce(t, env, "keys", "list"); strings.Contains(list, key.ID) {
		t.Errorf("a revoked key is still listed: %q", list)
	}
	for _, args := range [][]string{
		{"keys", "create", "--name", "x", "--role", "root"},
		{"keys", "revoke"},
		{"keys", "rotate"},
	} {
		if _, _, err := runOnce(t, env, args...); !errors.Is(err, errUsage) {
			t.Errorf("%v = %v, want a usage error", args, err)
		}
	}
	if _, _, err := runOnce(t, env, "keys", "revoke", "nosuchid"); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Errorf("revoking an unknown key = %v", err)
	}
	if _, _, err := runOnce(t, map[string]string{}, "keys", "list"); err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Errorf("keys without REDIS_URL = %v, want a message naming REDIS_URL", err)
	}
}

// meOf asks a server what auth it runs with.
func meOf(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/v1/me")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestAuthIsOffOnlyWhereSafeOrSaidSo(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	cases := []struct {
		name, mode string
		env        map[string]string
		status     int
	}{
		{"serve on the embedded Redis", "serve", map[string]string{"REDIS_URL": ""}, 200},
		{"api, unset", "api", map[string]string{"LONGHAUL_AUTH": ""}, 401},
		{"serve on a real Redis, unset", "serve", map[string]string{"LONGHAUL_AUTH": ""}, 401},
		{"api, none said explicitly", "api", map[string]string{"LONGHAUL_AUTH": "none"}, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := fastEnv(t, rs.URL())
			for k, v := range c.env {
				env[k] = v
			}
			status, body := meOf(t, startRun(t, c.mode, env))
			if status != c.status {
				t.Errorf("/v1/me = %d %s, want %d", status, body, c.status)
			}
			if status == 200 && body != `{"auth":"none"}` {
				t.Errorf("/v1/me = %s", body)
			}
		})
	}
}

func TestKeysNeedARedisTheyCanBeMadeIn(t *testing.T) {
	env := fastEnv(t, "", "LONGHAUL_AUTH", "keys")
	if _, _, err := runOnce(t, env, "serve"); err == nil || !strings.Contains(err.Error(), "needs REDIS_URL") {
		t.Errorf("serve with keys on the embedded Redis = %v, want a refusal naming REDIS_URL", err)
	}
}

func TestAPIRefusesARedisThatRefusesItsCredentials(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	if err := rs.Client().ConfigSet(context.Background(), "requirepass", "s3cret").Err(); err != nil {
		t.Fatal(err)
	}
	_, _, err := runOnce(t, fastEnv(t, rs.URL()), "api")
	if err == nil || !strings.Contains(err.Error(), "refuses longhaul's credentials") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("api on a Redis that wants a password = %v, want a refusal that says what to fix", err)
	}
	env := fastEnv(t, strings.Replace(rs.URL(), "redis://", "redis://:wrong@", 1))
	if _, _, err := runOnce(t, env, "api"); err == nil || strings.Contains(err.Error(), "wrong") {
		t.Errorf("a wrong password = %v, want a refusal without the password in it", err)
	}
	env = fastEnv(t, strings.Replace(rs.URL(), "redis://", "redis://:s3cret@", 1))
	if status, _ := meOf(t, startRun(t, "api", env)); status != 200 {
		t.Errorf("with the right password /v1/me = %d", status)
	}
}

// TestAFloodingKeyLeavesWorkersToOthers: one key fills the queue with long jobs; another
// key's one-file job must still start at once, because a key runs at most its share of
// jobs at a time (LONGHAUL_KEY_MAX_RUNNING) and the jobs over its share go back behind the
// others' in the queue.
func TestAFloodingKeyLeavesWorkersToOthers(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	keys := auth.NewKeys(rs.Client())
	_, flooder, _ := keys.Create(context.Background(), "flood", auth.RoleClient)
	_, other, _ := keys.Create(context.Background(), "other", auth.RoleClient)
	env := fastEnv(t, rs.URL(), "LONGHAUL_AUTH", "keys", "LONGHAUL_KEY_MAX_RUNNING", "4",
		"LONGHAUL_WORKER_CONCURRENCY", "8", "LONGHAUL_FILE_TIME_MIN", "1m", "LONGHAUL_FILE_TIME_MAX", "1m")
	base := startRun(t, "serve", env)
	post := func(key string) string {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/v1/download/initiate", strings.NewReader(`{"file_ids":[7,14,21,28]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			JobID string `json:"job_id"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 202 {
			t.Fatalf("initiate = %d, %v", resp.StatusCode, err)
		}
		return body.JobID
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var flood []string
	for range 60 {
		wg.Go(func() {
			id := post(flooder)
			mu.Lock()
			flood = append(flood, id)
			mu.Unlock()
		})
	}
	wg.Wait()
	store := jobs.NewStore(rs.Client(), jobs.Options{})
	started := time.Now()
	id := post(other)
	var waited time.Duration
	for {
		job, err := store.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if job.Status == jobs.StatusProcessing {
			waited = time.Since(started)
			break
		}
		if time.Since(started) > 15*time.Second {
			t.Fatalf("the other key's job is still %s 15s after it was posted behind 60 long jobs", job.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	running, err := store.Unfinished(context.Background(), flood)
	if err != nil {
		t.Fatal(err)
	}
	processing := 0
	for _, id := range running {
		if job, err := store.Get(context.Background(), id); err == nil && job.Status == jobs.StatusProcessing {
			processing++
		}
	}
	if processing > 4 {
		t.Errorf("%d jobs of the flooding key run at once, above its share of 4", processing)
	}
	t.Logf("behind 60 queued jobs of one key (%d of them running, 4 at most), another key's job started after %v",
		processing, waited.Round(time.Millisecond))
}

// dashboardCall sends a request to asynqmon's own API under /monitoring/api, as its page
// does, with the admin key as the basic-auth password when given.
func dashboardCall(t *testing.T, base, method, path, key string, header ...string) int {
	t.Helper()
	req, _ := http.NewRequest(method, base+"/monitoring/api"+path, nil)
	if key != "" {
		req.SetBasicAuth("ops", key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("401 without a basic-auth challenge, so a browser shows no login: %v", resp.Header)
	}
	return resp.StatusCode
}

func TestDashboardIsLocked(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	keys := auth.NewKeys(rs.Client())
	_, admin, _ := keys.Create(context.Background(), "ops", auth.RoleAdmin)
	_, client, _ := keys.Create(context.Background(), "ci", auth.RoleClient)
	ins := asynq.NewInspectorFromRedisClient(rs.Client())
	queued := func(t *testing.T, base, key string) string {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/v1/download/initiate", strings.NewReader(`{"file_ids":[7]}`))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			JobID string `json:"job_id"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		return body.JobID
	}
	paused := func(t *testing.T) bool {
		t.Helper()
		info, err := ins.GetQueueInfo(tasks.Queue)
		return err == nil && info.Paused
	}

	t.Run("with keys", func(t *testing.T) {
		// No worker runs, so the tasks stay pending for the dashboard to act on.
		base := startRun(t, "api", fastEnv(t, rs.URL(), "LONGHAUL_AUTH", "keys"))
		id := queued(t, base, client)
		for _, c := range []struct {
			name, key string
			want      int
		}{{"no key", "", 401}, {"a made-up key", "lh_made_up", 401}, {"a client key", client, 403}, {"an admin key", admin, 200}} {
			if got := dashboardCall(t, base, "GET", "/queues", c.key); got != c.want {
				t.Errorf("the queue list with %s = %d, want %d", c.name, got, c.want)
			}
		}
		// A forged form post from another site carries the browser's basic-auth
		// credentials too; the browser says where it comes from.
		if got := dashboardCall(t, base, "POST", "/queues/downloads:pause", admin, "Sec-Fetch-Site", "cross-site"); got != 403 || paused(t) {
			t.Errorf("a cross-site pause = %d (paused %v), want 403 and a running queue", got, paused(t))
		}
		if got := dashboardCall(t, base, "POST", "/queues/downloads:pause", admin, "Origin", "https://evil.example.com"); got != 403 || paused(t) {
			t.Errorf("a pause from a foreign Origin = %d (paused %v), want 403", got, paused(t))
		}
		if got := dashboardCall(t, base, "DELETE", "/queues/downloads/pending_tasks/"+id, client); got != 403 {
			t.Errorf("a client key deleting a task = %d, want 403", got)
		}
		if got := dashboardCall(t, base, "POST", "/queues/downloads:pause", admin, "Sec-Fetch-Site", "same-origin"); got != 204 || !paused(t) {
			t.Errorf("the admin's own pause = %d (paused %v), want 204", got, paused(t))
		}
		ins.UnpauseQueue(tasks.Queue)
	})

	t.Run("read-only", func(t *testing.T) {
		base := startRun(t, "api", fastEnv(t, rs.URL(), "LONGHAUL_AUTH", "keys", "LONGHAUL_DASHBOARD", "readonly"))
		id := queued(t, base, client)
		if got := dashboardCall(t, base, "DELETE", "/queues/downloads/pending_tasks/"+id, admin); got != 405 {
			t.Errorf("deleting a task in read-only mode = %d, want 405", got)
		}
		if _, err := ins.GetTaskInfo(tasks.Queue, id); err != nil {
			t.Errorf("the task is gone after a refused delete: %v", err)
		}
		if got := dashboardCall(t, base, "GET", "/queues", admin); got != 200 {
			t.Errorf("reading in read-only mode = %d, want 200", got)
		}
	})

	t.Run("without keys it is read-only unless said otherwise", func(t *testing.T) {
		base := startRun(t, "api", fastEnv(t, rs.URL()))
		if got := dashboardCall(t, base, "POST", "/queues/downloads:pause", ""); got != 405 || paused(t) {
			t.Errorf("a pause without keys = %d (paused %v), want 405", got, paused(t))
		}
	})

	t.Run("off", func(t *testing.T) {
		base := startRun(t, "api", fastEnv(t, rs.URL(), "LONGHAUL_DASHBOARD", "off"))
		if got := dashboardCall(t, base, "GET", "/queues", ""); got != 404 {
			t.Errorf("a dashboard that is off = %d, want 404", got)
		}
	})
}

// syncBuffer is a log that the goroutines of a run may share with the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestStartUpSaysWhatIsExposed(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	cases := []struct {
		name, mode string
		env        map[string]string
		says       string
	}{
		{"keys in clear beyond loopback", "api", map[string]string{"LONGHAUL_AUTH": "keys", "LONGHAUL_ADDR": "0.0.0.0:0"},
			"would cross the network in clear"},
		{"no keys", "serve", map[string]string{"REDIS_URL": ""}, "LONGHAUL_AUTH is none"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := fastEnv(t, rs.URL())
			for k, v := range c.env {
				env[k] = v
			}
			var logs syncBuffer
			startRunLogging(t, c.mode, env, &logs)
			if !strings.Contains(logs.String(), c.says) {
				t.Errorf("start-up log does not say %q:\n%s", c.says, logs.String())
			}
		})
	}
	var logs syncBuffer
	env := fastEnv(t, rs.URL(), "LONGHAUL_AUTH", "keys", "LONGHAUL_ADDR", "0.0.0.0:0", "LONGHAUL_TRUSTED_PROXIES", "10.0.0.0/8")
	startRunLogging(t, "api", env, &logs)
	if strings.Contains(logs.String(), "in clear") {
		t.Errorf("behind a trusted proxy the start-up still warns:\n%s", logs.String())
	}
}
