package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/internal/proctest"
)

// childMarker, set in a child process's environment, makes the test binary play longhaul
// with the arguments it was given: the process-level tests start workers that way
// (startChild), to signal them the way production does.
const childMarker = "LONGHAUL_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childMarker) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		ownsProcessLog = true // as main does
		err := run(ctx, append([]string{"longhaul"}, os.Args[1:]...), os.Getenv, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fastEnv is the environment of a test server on the Redis at redisURL: short file times,
// small files.
func fastEnv(t *testing.T, redisURL string, extra ...string) map[string]string {
	return fastEnvOn(t, map[string]string{"REDIS_URL": redisURL}, extra...)
}

// fastEnvOn is fastEnv on the Redis deployment that target names: REDIS_URL, or the
// settings of a Sentinel group or a Cluster (see sentinelTarget and clusterTarget).
func fastEnvOn(t *testing.T, target map[string]string, extra ...string) map[string]string {
	env := map[string]string{
		"LONGHAUL_ADDR":          "127.0.0.1:0",
		"LONGHAUL_STORAGE_DIR":   t.TempDir(),
		"LONGHAUL_FILE_TIME_MIN": "200ms",
		"LONGHAUL_FILE_TIME_MAX": "600ms",
		"LONGHAUL_FILE_SIZE_MAX": "64KiB",
		"LONGHAUL_LOG_LEVEL":     "warn",
	}
	maps.Copy(env, target)
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	env = devbin.Unguarded(env)
	return env
}

// startRun runs longhaul in this process, as `longhaul mode`, and returns its base URL.
// The server is shut down, and awaited, when the test ends.
func startRun(t *testing.T, mode string, env map[string]string) string {
	t.Helper()
	return startRunLogging(t, mode, env, logWriter{t})
}

// startRunLogging is startRun with the process's log going to stderr.
func startRunLogging(t *testing.T, mode string, env map[string]string, stderr io.Writer) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, found := listenWriter()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"longhaul", mode}, func(k string) string { return env[k] }, out, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run ended with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("run did not shut down within 30s")
		}
	})
	select {
	case addr := <-found:
		proctest.WaitUntil(t, time.Minute, "/healthz", func() bool { return devbin.Healthy(addr) })
		return addr
	case err := <-done:
		t.Fatalf("run failed to start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("run printed no address within 30s")
	}
	return ""
}

// listenWriter is the standard output of a run in this process: it sends the address of
// the "listening on" line on found.
func listenWriter() (out io.Writer, found <-chan string) {
	urls := make(chan string, 1)
	return devbin.NewLineWriter(io.Discard, func(line string) {
		if url, ok := devbin.ListenURL(line); ok {
			select {
			case urls <- url:
			default:
			}
		}
	}), urls
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startChild runs `longhaul mode` in a child process (this test binary, playing longhaul),
// killed when the test ends.
func startChild(t *testing.T, mode string, env map[string]string) *devbin.Longhaul {
	t.Helper()
	settings := map[string]string{childMarker: "1"}
	for k, v := range env {
		settings[k] = v
	}
	return proctest.StartLonghaul(t, devbin.LonghaulSpec{Bin: os.Args[0], Mode: mode, Settings: settings})
}

// client is a REST client of one server, as scripts use it.
type client struct {
	t    *testing.T
	base string
}

func (c client) post(ids ...int64) (int, map[string]any) {
	c.t.Helper()
	return c.postWith("", ids...)
}

// postWith starts a job with an Idempotency-Key, if one is given.
func (c client) postWith(idempotencyKey string, ids ...int64) (int, map[string]any) {
	c.t.Helper()
	body, _ := json.Marshal(map[string]any{"file_ids": ids})
	req, _ := http.NewRequest("POST", c.base+"/v1/download/initiate", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// jobStatus is the status body, as far as the tests read it.
type jobStatus struct {
	JobID    string `json:"job_id"`
	Status   string `json:"status"`
	Seq      int64  `json:"seq"`
	Epoch    string `json:"epoch"`
	Progress struct {
		Percent float64 `json:"percent"`
	} `json:"progress"`
	Files   []fileStatus `json:"files"`
	Waiting *struct {
		Reason   string    `json:"reason"`
		Since    time.Time `json:"since"`
		ResumeBy time.Time `json:"resume_by"`
	} `json:"waiting"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// fileStatus is one file of the status body.
type fileStatus struct {
	FileID      int64   `json:"file_id"`
	Status      string  `json:"status"`
	Percent     float64 `json:"percent"`
	Size        int64   `json:"size"`
	DownloadURL string  `json:"download_url"`
}

func (s jobStatus) terminal() bool {
	return s.Status == "completed" || s.Status == "failed" || s.Status == "canceled"
}

// poller follows a job through the status endpoint with If-None-Match, and checks that no
// percent ever goes backwards.
type poller struct {
	client
	id         string
	etag       string
	last       jobStatus
	notChanged int
	filePct    map[int64]float64
	// retryUnavailable takes a 503 with Retry-After as a client following the contract
	// does, as no news, where a failover is expected; unavailable counts them.
	retryUnavailable bool
	unavailable      int
}

func (p *poller) poll() jobStatus {
	p.t.Helper()
	req, _ := http.NewRequest("GET", p.base+"/v1/download/status/"+p.id, nil)
	if p.etag != "" {
		req.Header.Set("If-None-Match", p.etag)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("poll: %v", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		p.notChanged++
		return p.last
	case http.StatusOK:
	case http.StatusServiceUnavailable:
		if !p.retryUnavailable || resp.Header.Get("Retry-After") == "" {
			p.t.Fatalf("poll: status 503 with Retry-After %q", resp.Header.Get("Retry-After"))
		}
		p.unavailable++
		return p.last
	default:
		p.t.Fatalf("poll: status %d", resp.StatusCode)
	}
	var s jobStatus
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		p.t.Fatal(err)
	}
	if s.Progress.Percent < p.last.Progress.Percent {
		p.t.Errorf("job percent went back from %v to %v", p.last.Progress.Percent, s.Progress.Percent)
	}
	if p.filePct == nil {
		p.filePct = map[int64]float64{}
	}
	for _, f := range s.Files {
		if f.Percent < p.filePct[f.FileID] {
			p.t.Errorf("file %d went back from %v%% to %v%%", f.FileID, p.filePct[f.FileID], f.Percent)
		}
		p.filePct[f.FileID] = f.Percent
	}
	p.etag, p.last = resp.Header.Get("ETag"), s
	return s
}

// untilDone polls until the job is terminal.
func (p *poller) untilDone(limit time.Duration) jobStatus {
	p.t.Helper()
	proctest.WaitUntil(p.t, limit, fmt.Sprintf("job %s to finish", p.id), func() bool { return p.poll().terminal() })
	return p.last
}
