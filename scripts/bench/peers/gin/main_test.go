package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/redis/go-redis/v9"
)

// peer is a running gin peer and the Redis it uses.
type peer struct {
	url  string
	rdb  *redis.Client
	stop func() error // ends run and returns what it returned
}

// startPeer runs the peer on a free port of a fresh Redis, with extra settings in env.
func startPeer(t *testing.T, env map[string]string) *peer {
	t.Helper()
	rs := redistest.Start(t, redistest.Options{})
	settings := map[string]string{"REDIS_URL": rs.URL(), "ADDR": "127.0.0.1:0"}
	for k, v := range env {
		settings[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, stdout := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, func(k string) string { return settings[k] }, stdout, io.Discard)
		stdout.CloseWithError(fmt.Errorf("run returned %v", err))
		done <- err
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("the peer printed no address: %v", err)
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "gin-peer listening on ")
	if !ok {
		cancel()
		t.Fatalf("first line %q is not the listening line", line)
	}
	stopped := false
	p := &peer{url: url, rdb: rs.Client()}
	p.stop = func() error {
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() {
		if !stopped {
			p.stop()
		}
	})
	return p
}

// do sends a request and returns the status and body of its answer.
func (p *peer) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, p.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestInitiateQueuesOneTask(t *testing.T) {
	p := startPeer(t, nil)
	status, body := p.do(t, http.MethodPost, "/v1/download/initiate", `{"file_ids": [70000, 70007]}`)
	if status != http.StatusAccepted {
		t.Fatalf("initiate answered %d %s, want 202", status, body)
	}
	var resp initiateResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.JobID == "" {
		t.Fatalf("initiate answered %s, want a job_id (%v)", body, err)
	}
	info, err := asynq.NewInspectorFromRedisClient(p.rdb).GetTaskInfo("downloads", resp.JobID)
	if err != nil {
		t.Fatalf("no task %s in queue downloads: %v", resp.JobID, err)
	}
	got := []string{info.Type, string(info.Payload), info.State.String()}
	want := []string{"download", `{"file_ids":[70000,70007]}`, "pending"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("task (-want +got):\n%s", diff)
	}
}

func TestInitiateRefusesBadBodies(t *testing.T) {
	p := startPeer(t, nil)
	tooMany := strings.Repeat("7,", maxFiles) + "7"
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"not JSON", `file_ids=7`, http.StatusBadRequest},
		{"empty body", ``, http.StatusBadRequest},
		{"a list", `[70000]`, http.StatusBadRequest},
		{"null", `null`, http.StatusBadRequest},
		{"no file_ids", `{}`, http.StatusBadRequest},
		{"file_ids null", `{"file_ids": null}`, http.StatusBadRequest},
		{"no ids", `{"file_ids": []}`, http.StatusBadRequest},
		{"too many ids", `{"file_ids": [` + tooMany + `]}`, http.StatusBadRequest},
		{"zero", `{"file_ids": [70000, 0]}`, http.StatusBadRequest},
		{"negative", `{"file_ids": [-7]}`, http.StatusBadRequest},
		{"fraction", `{"file_ids": [7.5]}`, http.StatusBadRequest},
		{"string", `{"file_ids": ["7"]}`, http.StatusBadRequest},
		{"past int64", `{"file_ids": [9223372036854775808]}`, http.StatusBadRequest},
		{"over 64 KiB", `{"file_ids": [7], "pad": "` + strings.Repeat("x", maxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := p.do(t, http.MethodPost, "/v1/download/initiate", tc.body)
			if status != tc.want || !strings.Contains(body, `"error":`) {
				t.Errorf("answered %d %s, want %d with an error", status, body, tc.want)
			}
		})
	}
	// The most ids a request may have is still accepted.
	most := strings.Repeat("7,", maxFiles-1) + "7"
	if status, body := p.do(t, http.MethodPost, "/v1/download/initiate", `{"file_ids": [`+most+`]}`); status != http.StatusAccepted {
		t.Errorf("%d ids answered %d %s, want 202", maxFiles, status, body)
	}
	info, err := asynq.NewInspectorFromRedisClient(p.rdb).GetQueueInfo("downloads")
	if err != nil {
		t.Fatal(err)
	}
	if info.Pending != 1 {
		t.Errorf("%d tasks queued, want only the accepted one", info.Pending)
	}
}

func TestStatusReadsTheJobHash(t *testing.T) {
	t.Run("longhaul's record by default", func(t *testing.T) {
		p := startPeer(t, nil)
		id := jobs.NewID()
		if err := jobs.NewStore(p.rdb, jobs.Options{}).Create(context.Background(), id, []int64{70000, 70007}); err != nil {
			t.Fatal(err)
		}
		status, body := p.do(t, http.MethodGet, "/v1/download/status/"+id, "")
		var got map[string]string
		if err := json.Unmarshal([]byte(body), &got); status != http.StatusOK || err != nil {
			t.Fatalf("status answered %d %s, want 200 with an object (%v)", status, body, err)
		}
		if got["id"] != id || got["files"] != "70000,70007" {
			t.Errorf("status answered %s, want the record of job %s", body, id)
		}
	})
	t.Run("a hash under JOB_KEY_TEMPLATE", func(t *testing.T) {
		p := startPeer(t, map[string]string{"JOB_KEY_TEMPLATE": "peer:job:{id}"})
		want := map[string]string{"status": "processing", "progress": `{"percent":50}`}
		if err := p.rdb.HSet(context.Background(), "peer:job:j1", want).Err(); err != nil {
			t.Fatal(err)
		}
		status, body := p.do(t, http.MethodGet, "/v1/download/status/j1", "")
		var got map[string]string
		if err := json.Unmarshal([]byte(body), &got); status != http.StatusOK || err != nil {
			t.Fatalf("status answered %d %s, want 200 with an object (%v)", status, body, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("status body (-want +got):\n%s", diff)
		}
		if status, body := p.do(t, http.MethodGet, "/v1/download/status/j2", ""); status != http.StatusNotFound {
			t.Errorf("an unknown job answered %d %s, want 404", status, body)
		}
	})
}

func TestHealthAndShutdown(t *testing.T) {
	p := startPeer(t, nil)
	if status, body := p.do(t, http.MethodGet, "/healthz", ""); status != http.StatusOK {
		t.Fatalf("healthz answered %d %s, want 200", status, body)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("run returned %v after its context ended, want nil", err)
	}
	if resp, err := http.Get(p.url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("the peer still answers after shutting down")
	}
}

func TestSettingsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no REDIS_URL", map[string]string{}, "REDIS_URL is required"},
		{"bad REDIS_URL", map[string]string{"REDIS_URL": "localhost:6379"}, "read REDIS_URL"},
		{"template without id", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "JOB_KEY_TEMPLATE": "job"}, "has no {id}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), func(k string) string { return tc.env[k] }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run returned %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
