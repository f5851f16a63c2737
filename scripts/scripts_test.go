// Package scripts_test runs demo.sh and poll.sh against a real `longhaul serve`, built from
// this module, with fast simulated files and its embedded Redis.
package scripts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/internal/proctest"
)

// Output lines of poll.sh.
var (
	summaryLine = regexp.MustCompile(`^(dl_[0-9A-Z]{26}) (queued|processing|completed|failed|canceled) ([0-9]+(?:\.[0-9])?)% \(([0-9]+)/([0-9]+) files: ([0-9]+) ready, ([0-9]+) unavailable, ([0-9]+) failed\)$`)
	fileLine    = regexp.MustCompile(`^  ([0-9]+) (ready|unavailable|failed|canceled)(?: ([0-9]+) bytes (http://\S+))?(?:: (.+))?$`)
	errorLine   = regexp.MustCompile(`^  error [a-z_]+: .+$`)
	startedLine = regexp.MustCompile(`^started (dl_[0-9A-Z]{26}) with ([0-9]+) file\(s\): (http://\S+)/jobs/(dl_[0-9A-Z]{26})$`)
)

// fastFiles makes every simulated file take 100-300 ms.
var fastFiles = []string{"LONGHAUL_FILE_TIME_MIN=100ms", "LONGHAUL_FILE_TIME_MAX=300ms"}

func TestScripts(t *testing.T) {
	bash := lookPath(t, "bash")
	lookPath(t, "curl")
	root, bin := buildLonghaul(t)
	sh := func(t *testing.T, baseURL, script string, args ...string) result {
		t.Helper()
		return runScript(t, bash, filepath.Join(root, "scripts", script), baseURL, args...)
	}
	base := startServer(t, bin, fastFiles...)

	t.Run("demo all", func(t *testing.T) {
		r := sh(t, base, "demo.sh", "all")
		if r.code != 0 {
			t.Fatalf("demo.sh all exited %d, want 0\n%s", r.code, r)
		}
		runs := parsePoll(t, r.stdout, false)
		want := map[string]string{ // the final lines of the three scenarios, after the job id
			"70000,70007,70014,70021": "completed 100% (4/4 files: 4 ready, 0 unavailable, 0 failed)",
			"70001,70002,70003,70004": "failed 100% (4/4 files: 0 ready, 4 unavailable, 0 failed)",
			"70000,70001,70007,70008": "completed 100% (4/4 files: 2 ready, 2 unavailable, 0 failed)",
		}
		if len(runs) != len(want) {
			t.Fatalf("demo followed %d jobs, want %d\n%s", len(runs), len(want), r)
		}
		for _, run := range runs {
			final, ok := want[run.fileIDs()]
			if !ok {
				t.Errorf("job %s has files %s, not one of the scenarios", run.id, run.fileIDs())
				continue
			}
			if got := strings.TrimPrefix(run.final(), run.id+" "); got != final {
				t.Errorf("job %s (%s) ended %q, want %q", run.id, run.fileIDs(), got, final)
			}
			for _, f := range run.files {
				wantStatus := "unavailable"
				if f.id%7 == 0 {
					wantStatus = "ready"
				}
				if f.status != wantStatus {
					t.Errorf("file %d is %s, want %s", f.id, f.status, wantStatus)
				}
				if f.status == "ready" {
					checkDownload(t, f)
				}
			}
		}
		if !strings.Contains(r.stdout, "3 of 3 scenario(s) ended as expected") {
			t.Errorf("demo.sh does not report its result\n%s", r)
		}
	})

	t.Run("poll start failed job", func(t *testing.T) {
		r := sh(t, base, "poll.sh", "--start", "70001")
		if r.code != 1 {
			t.Fatalf("poll.sh --start 70001 exited %d, want 1 (job failed)\n%s", r.code, r)
		}
		runs := parsePoll(t, r.stdout, true)
		m := startedLine.FindStringSubmatch(firstLine(r.stdout))
		if m == nil || m[3] != base || m[1] != m[4] || m[2] != "1" {
			t.Errorf("first line = %q, want the started job, its file count and its page on %s", firstLine(r.stdout), base)
		}
		if len(runs) != 1 || (m != nil && runs[0].id != m[1]) {
			t.Fatalf("poll.sh followed %d jobs, want the one it started\n%s", len(runs), r)
		}
		if got, want := runs[0].final(), runs[0].id+" failed 100% (1/1 files: 0 ready, 1 unavailable, 0 failed)"; got != want {
			t.Errorf("final line = %q, want %q", got, want)
		}
		if f := runs[0].files; len(f) != 1 || f[0].id != 70001 || f[0].status != "unavailable" || f[0].err == "" {
			t.Errorf("files = %+v, want 70001 unavailable with its reason", f)
		}
	})

	t.Run("poll unknown job", func(t *testing.T) {
		const id = "dl_00000000000000000000000000"
		r := sh(t, base, "poll.sh", id)
		if r.code != 2 {
			t.Fatalf("poll.sh %s exited %d, want 2\n%s", id, r.code, r)
		}
		code, message := apiError(t, base+"/v1/download/status/"+id)
		if code != "not_found" {
			t.Fatalf("the API answers %q for an unknown job, want not_found", code)
		}
		if !strings.Contains(r.stderr, code) || !strings.Contains(r.stderr, message) {
			t.Errorf("stderr = %q, want the contract's error %s: %s", r.stderr, code, message)
		}
		if r.stdout != "" {
			t.Errorf("stdout = %q, want nothing", r.stdout)
		}
	})

	t.Run("poll usage", func(t *testing.T) {
		for _, args := range [][]string{{}, {"--bogus"}, {"--start", "70000,seven"}, {"dl_1", "dl_2"}} {
			r := sh(t, base, "poll.sh", args...)
			if r.code != 2 || !strings.Contains(r.stderr, "Usage:") {
				t.Errorf("poll.sh %q exited %d, want 2 with the usage\n%s", args, r.code, r)
			}
		}
	})

	t.Run("poll canceled job", func(t *testing.T) {
		// Files that take a minute: the job is still running when it is canceled.
		slow := startServer(t, bin, "LONGHAUL_FILE_TIME_MIN=1m", "LONGHAUL_FILE_TIME_MAX=1m")
		p := startScript(t, bash, filepath.Join(root, "scripts", "poll.sh"), slow,
			regexp.MustCompile(`(?m)^started (dl_[0-9A-Z]{26}) `), "--start", "70000,70007")
		var id string
		select {
		case id = <-p.stdout.found:
		case <-time.After(30 * time.Second):
			t.Fatalf("poll.sh did not start a job within 30s\n%s", p.stderr)
		}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodDelete, slow+"/v1/download/"+id, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("DELETE %s answered %d, want 202", id, resp.StatusCode)
		}
		r := p.wait(t)
		if r.code != 1 {
			t.Fatalf("poll.sh exited %d for a canceled job, want 1\n%s", r.code, r)
		}
		runs := parsePoll(t, r.stdout, true)
		if len(runs) != 1 || !strings.HasPrefix(runs[0].final(), id+" canceled 100% (2/2 files: 0 ready") {
			t.Fatalf("poll.sh did not end on the canceled job %s\n%s", id, r)
		}
		for _, f := range runs[0].files {
			if f.status != "canceled" {
				t.Errorf("file %d is %s, want canceled", f.id, f.status)
			}
		}
	})

	t.Run("demo reports a wrong ending", func(t *testing.T) {
		// Every preparation step fails and no file is retried: the available files fail.
		failing := startServer(t, bin, append(fastFiles, "LONGHAUL_FILE_FAILURE_RATE=1", "LONGHAUL_FILE_RETRIES=0")...)
		r := sh(t, failing, "demo.sh", "available")
		if r.code != 1 {
			t.Fatalf("demo.sh available exited %d against a server whose files all fail, want 1\n%s", r.code, r)
		}
		if !strings.Contains(r.stderr, `expected "completed 100% (4/4 files: 4 ready, 0 unavailable, 0 failed)"`) {
			t.Errorf("stderr does not say what was expected\n%s", r)
		}
		if runs := parsePoll(t, r.stdout, false); len(runs) != 1 || !strings.Contains(runs[0].final(), " failed 100% ") {
			t.Errorf("the job did not end failed\n%s", r)
		}
	})

	t.Run("demo usage", func(t *testing.T) {
		if r := sh(t, base, "demo.sh", "everything"); r.code != 2 || !strings.Contains(r.stderr, "Usage:") {
			t.Errorf("demo.sh everything exited %d, want 2 with the usage\n%s", r.code, r)
		}
	})
}

// jobRun is what poll.sh printed about one job.
type jobRun struct {
	id        string
	summaries []string
	files     []fileResult
}

type fileResult struct {
	id     int64
	status string
	size   int64
	url    string
	err    string
}

func (j *jobRun) final() string { return j.summaries[len(j.summaries)-1] }

func (j *jobRun) fileIDs() string {
	ids := make([]string, len(j.files))
	for i, f := range j.files {
		ids[i] = strconv.FormatInt(f.id, 10)
	}
	return strings.Join(ids, ",")
}

// parsePoll reads poll.sh's lines in out and checks that they make sense: per job, percent
// and files done never go backwards, the counts add up, the last line is a final status,
// and one line per file follows it. With strict, every line must be one of poll.sh's.
func parsePoll(t *testing.T, out string, strict bool) []*jobRun {
	t.Helper()
	var runs []*jobRun
	byID := map[string]*jobRun{}
	var cur *jobRun // the job whose file lines follow
	lastPct, lastDone := map[string]float64{}, map[string]int{}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if m := summaryLine.FindStringSubmatch(line); m != nil {
			id := m[1]
			run := byID[id]
			if run == nil {
				run = &jobRun{id: id}
				byID[id] = run
				runs = append(runs, run)
			}
			if len(run.files) > 0 {
				t.Errorf("job %s: %q after its files", id, line)
			}
			pct, _ := strconv.ParseFloat(m[3], 64)
			n := atoi(m[4:]...)
			done, total, ready, unavailable, failed := n[0], n[1], n[2], n[3], n[4]
			if pct < lastPct[id] || done < lastDone[id] {
				t.Errorf("job %s went backwards: %q after %.1f%%, %d done", id, line, lastPct[id], lastDone[id])
			}
			if done > total || ready+unavailable+failed > done || pct > 100 {
				t.Errorf("job %s: counts do not add up in %q", id, line)
			}
			lastPct[id], lastDone[id] = pct, done
			run.summaries = append(run.summaries, line)
			cur = run
			continue
		}
		if m := fileLine.FindStringSubmatch(line); m != nil && cur != nil {
			f := fileResult{id: int64(atoi(m[1])[0]), status: m[2], url: m[4], err: m[5]}
			if m[3] != "" {
				f.size = int64(atoi(m[3])[0])
			}
			if (f.status == "ready") != (f.url != "") {
				t.Errorf("job %s: %q: a download link belongs to ready files, and only to them", cur.id, line)
			}
			cur.files = append(cur.files, f)
			continue
		}
		if errorLine.MatchString(line) && cur != nil && len(cur.files) == 0 {
			continue
		}
		if strict && !startedLine.MatchString(line) {
			t.Errorf("unexpected line %q", line)
		}
		cur = nil
	}
	for _, run := range runs {
		final := summaryLine.FindStringSubmatch(run.final())
		switch final[2] {
		case "completed", "failed", "canceled":
		default:
			t.Errorf("job %s: the last line %q is not a final status", run.id, run.final())
		}
		if total := atoi(final[5])[0]; len(run.files) != total || final[3] != "100" {
			t.Errorf("job %s: %d file lines after %q, want every file at 100%%", run.id, len(run.files), run.final())
		}
	}
	return runs
}

func atoi(ss ...string) []int {
	out := make([]int, len(ss))
	for i, s := range ss {
		out[i], _ = strconv.Atoi(s)
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// checkDownload fetches a file from the link poll.sh printed and checks its size.
func checkDownload(t *testing.T, f fileResult) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || n != f.size {
		t.Errorf("GET %s: %d with %d bytes (%v), want 200 with the %d bytes poll.sh printed",
			f.url, resp.StatusCode, n, err, f.size)
	}
}

// apiError returns the contract's error code and message that GET url answers.
func apiError(t *testing.T, url string) (code, message string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return body.Error.Code, body.Error.Message
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("the scripts need %s, which is not installed: %v", name, err)
	}
	return p
}

// buildLonghaul builds the binary of the module around the test, and returns the module's
// root and the binary.
func buildLonghaul(t *testing.T) (root, bin string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	root, err := devbin.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(t.TempDir(), "longhaul")
	if err := devbin.Build(ctx, root, bin); err != nil {
		t.Fatal(err)
	}
	return root, bin
}

// startServer runs `longhaul serve` on a free loopback port with its embedded Redis and
// the given settings (NAME=value), and returns its base URL. It is stopped with SIGTERM at
// cleanup, and must then exit cleanly.
func startServer(t *testing.T, bin string, settings ...string) string {
	t.Helper()
	env := map[string]string{
		"LONGHAUL_STORAGE_DIR":      filepath.Join(t.TempDir(), "files"),
		"LONGHAUL_SHUTDOWN_TIMEOUT": "5s",
	}
	for _, kv := range settings {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	srv := proctest.StartLonghaul(t, devbin.LonghaulSpec{Bin: bin, Mode: "serve", Settings: env})
	t.Cleanup(func() {
		if err := srv.Stop(20 * time.Second); err != nil {
			t.Errorf("longhaul serve did not stop in time: %v\n%s", err, srv.Log())
		} else if !srv.State().Success() {
			t.Errorf("longhaul serve did not stop cleanly on SIGTERM: %v\n%s", srv.State(), srv.Log())
		}
	})
	return srv.URL
}

// watcher collects a process's output and sends the first submatch of pattern, once.
type watcher struct {
	pattern *regexp.Regexp
	found   chan string

	mu   sync.Mutex // guards buf and sent, written by exec's copying goroutine
	buf  bytes.Buffer
	sent bool
}

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.pattern != nil && !w.sent {
		if m := w.pattern.FindSubmatch(w.buf.Bytes()); m != nil {
			w.sent = true
			w.found <- string(m[1])
		}
	}
	return len(p), nil
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// result is how a script ended.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("--- stdout\n%s--- stderr\n%s", r.stdout, r.stderr)
}

// script is a script running in the background.
type script struct {
	cmd            *exec.Cmd
	cancel         context.CancelFunc
	stdout, stderr *watcher
	waited         func() error // cmd.Wait, once
}

// startScript starts a script with bash and BASE_URL; it is killed if it runs for more
// than two minutes or outlives the test. Its stdout sends the first submatch of watch, if
// given, on s.stdout.found.
func startScript(t *testing.T, bash, path, baseURL string, watch *regexp.Regexp, args ...string) *script {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, bash, append([]string{path}, args...)...)
	cmd.Env = append(os.Environ(), "BASE_URL="+baseURL)
	cmd.WaitDelay = 5 * time.Second // curl or sleep may outlive a killed bash
	s := &script{cmd: cmd, cancel: cancel, stdout: &watcher{pattern: watch, found: make(chan string, 1)},
		stderr: &watcher{}, waited: sync.OnceValue(cmd.Wait)}
	cmd.Stdout, cmd.Stderr = s.stdout, s.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); s.waited() })
	return s
}

// wait waits for the script to end, at most the two minutes it was given.
func (s *script) wait(t *testing.T) result {
	t.Helper()
	defer s.cancel()
	err := s.waited()
	r := result{stdout: s.stdout.String(), stderr: s.stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.Exited():
		r.code = exit.ExitCode()
	default:
		t.Fatalf("%s did not finish: %v\n%s", filepath.Base(s.cmd.Args[1]), err, r)
	}
	return r
}

func runScript(t *testing.T, bash, path, baseURL string, args ...string) result {
	t.Helper()
	return startScript(t, bash, path, baseURL, nil, args...).wait(t)
}
