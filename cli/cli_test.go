// The command line is tested as people and scripts use it: the real binary, against a
// real `longhaul serve`, through a pipe (JSON lines) and in a real terminal (tmux).
package cli_test

import (
	"bufio"
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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/internal/servetest"
)

// env is what the tests share: the binary, a fast server, and a slow one whose jobs last
// long enough to watch and interrupt.
type env struct {
	bin  string
	fast string // files take 200-600 ms
	slow string // files take 1-3 s
}

// testEnv is set by TestMain before any test runs, and only read after.
var testEnv env

func TestMain(m *testing.M) {
	slow := []string{"LONGHAUL_FILE_TIME_MIN=1s", "LONGHAUL_FILE_TIME_MAX=3s", "LONGHAUL_FILE_SIZE_MAX=64KiB"}
	os.Exit(servetest.Main(m, func(bin string, urls []string) {
		testEnv = env{bin: bin, fast: urls[0], slow: urls[1]}
	}, servetest.FastFiles(), slow))
}

// result is how one run of the command line ended.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// command is the binary with args, its environment cleared of the caller's longhaul settings.
func command(ctx context.Context, server string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, testEnv.bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LONGHAUL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "LONGHAUL_URL="+server)
	return cmd
}

// run runs the command line through pipes, as a script does.
func run(t *testing.T, server string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := command(ctx, server, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run longhaul %v: %v", args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// line is one JSON line of the command line, with the fields the tests read.
type line struct {
	Type     string `json:"type"`
	JobID    string `json:"job_id"`
	Status   string `json:"status"`
	Reattach string `json:"reattach"`
	ExitCode int    `json:"exit_code"`
	Files    []struct {
		FileID int64  `json:"file_id"`
		Status string `json:"status"`
		Size   int64  `json:"size"`
		Path   string `json:"path"`
	} `json:"files"`
	Job *struct {
		Status string `json:"status"`
	} `json:"job"`
}

// lines reads the JSON lines of out; a line that is not JSON fails the test.
func lines(t *testing.T, out string) []line {
	t.Helper()
	var all []line
	for _, text := range strings.Split(strings.TrimSpace(out), "\n") {
		var l line
		if err := json.Unmarshal([]byte(text), &l); err != nil || l.Type == "" {
			t.Fatalf("not a JSON line with a type: %q (%v)", text, err)
		}
		all = append(all, l)
	}
	return all
}

func last(ls []line) line {
	if len(ls) == 0 {
		return line{}
	}
	return ls[len(ls)-1]
}

// manyIDs is n available file ids, comma-separated.
func manyIDs(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint(7 * (i + 1))
	}
	return strings.Join(ids, ",")
}

// deadServer is an address where nothing listens.
func deadServer(t *testing.T) string {
	t.Helper()
	port, err := devbin.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

func TestExitCodes(t *testing.T) {
	dead := deadServer(t)
	finished := lines(t, run(t, testEnv.fast, "get", "70000", "-o", t.TempDir()).stdout)
	finishedID := finished[0].JobID
	cases := []struct {
		name   string
		server string
		args   []string
		code   int
		final  string // the type of the last JSON line
	}{
		{"every file ready", testEnv.fast, []string{"get", "70000,70007,70014,70021"}, 0, "summary"},
		{"every file unavailable: the job fails", testEnv.fast, []string{"get", "70001,70002,70003,70004"}, 3, "summary"},
		{"some unavailable", testEnv.fast, []string{"get", "70000,70001,70007,70008"}, 1, "summary"},
		{"watch of a finished job", testEnv.fast, []string{"watch", finishedID}, 0, "summary"},
		{"status of a finished job", testEnv.fast, []string{"status", finishedID}, 0, ""},
		{"bad file id", testEnv.fast, []string{"get", "70000,zero"}, 2, ""},
		{"ids and --job", testEnv.fast, []string{"get", "70000", "--job", finishedID}, 2, ""},
		{"unknown flag", testEnv.fast, []string{"get", "--frobnicate", "70000"}, 2, ""},
		{"not a job id", testEnv.fast, []string{"status", "70000"}, 2, ""},
		{"more ids than the server takes", testEnv.fast, []string{"get", manyIDs(1001)}, 2, "error"},
		{"unknown job", testEnv.fast, []string{"status", "dl_00000000000000000000000000"}, 5, "error"},
		{"cancel a finished job", testEnv.fast, []string{"cancel", finishedID}, 5, "error"},
		{"nothing listening: get", dead, []string{"get", "70000"}, 4, "error"},
		{"nothing listening: status", dead, []string{"status", finishedID}, 4, "error"},
		{"nothing listening: cancel", dead, []string{"cancel", finishedID}, 4, "error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args[0] == "get" {
				args = append(args, "-o", t.TempDir())
			}
			r := run(t, tc.server, args...)
			if r.code != tc.code {
				t.Fatalf("longhaul %v: want exit %d\n%s", args, tc.code, r)
			}
			if tc.code == 2 && !strings.Contains(r.stderr, "--help") {
				t.Errorf("a usage error does not point to the help:\n%s", r)
			}
			if tc.final == "" {
				return
			}
			got := last(lines(t, r.stdout))
			if got.Type != tc.final || got.ExitCode != tc.code {
				t.Errorf("last line is %s with exit_code %d, want %s with %d\n%s", got.Type, got.ExitCode,
					tc.final, tc.code, r)
			}
		})
	}
}

func TestGetSavesEveryReadyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "made-for-it")
	r := run(t, testEnv.fast, "get", "70000,70001,70007", "-o", dir)
	if r.code != 1 {
		t.Fatalf("want exit 1 (one file unavailable)\n%s", r)
	}
	ls := lines(t, r.stdout)
	if ls[0].Type != "started" || !strings.HasPrefix(ls[0].JobID, "dl_") {
		t.Fatalf("first line %+v, want the started job", ls[0])
	}
	saved := 0
	for _, f := range last(ls).Files {
		path := filepath.Join(dir, fmt.Sprintf("%d.bin", f.FileID))
		got, err := os.ReadFile(path)
		switch {
		case f.Status != "ready":
			if err == nil {
				t.Errorf("file %d is %s, but %s exists", f.FileID, f.Status, path)
			}
		case err != nil || f.Path != path:
			t.Errorf("ready file %d: summary path %q, read %s: %v", f.FileID, f.Path, path, err)
		default:
			saved++
			if want := serverBytes(t, testEnv.fast, ls[0].JobID, f.FileID); !bytes.Equal(got, want) {
				t.Errorf("saved %d bytes of file %d, the server has %d", len(got), f.FileID, len(want))
			}
		}
	}
	if saved != 2 {
		t.Errorf("saved %d files, want 70000 and 70007", saved)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("the directory holds %d entries, want the two files and no part file", len(entries))
	}
}

func serverBytes(t *testing.T, server, id string, fileID int64) []byte {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/v1/download/%s/files/%d", server, id, fileID))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestHelp(t *testing.T) {
	commands := []string{"serve", "api", "worker", "get", "status", "watch", "cancel", "version"}
	for _, flag := range []string{"--help", "-h", "help"} {
		t.Run(flag, func(t *testing.T) {
			r := run(t, testEnv.fast, flag)
			if r.code != 0 {
				t.Fatalf("want exit 0\n%s", r)
			}
			for _, c := range commands {
				if !strings.Contains(r.stdout, "longhaul "+c+" ") {
					t.Errorf("the help does not list %s\n%s", c, r.stdout)
				}
			}
			if !strings.Contains(r.stdout, "Exit codes:") {
				t.Errorf("the help has no exit codes\n%s", r.stdout)
			}
		})
	}
	for _, c := range []string{"get", "status", "watch", "cancel", "version"} {
		t.Run(c+" --help", func(t *testing.T) {
			r := run(t, testEnv.fast, c, "--help")
			if r.code != 0 || !strings.Contains(r.stdout, "Usage: longhaul "+c) ||
				!strings.Contains(r.stdout, "Example:\n  longhaul "+c) {
				t.Errorf("want exit 0, the usage and an example\n%s", r)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Run("set at build time", func(t *testing.T) {
		root, err := devbin.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(t.TempDir(), "longhaul")
		flags := "-X github.com/longhaul-dev/longhaul/cli.version=v9.8.7 -X github.com/longhaul-dev/longhaul/cli.commit=0123abc"
		if err := devbin.Build(t.Context(), root, bin, "-ldflags", flags); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "version").Output()
		if err != nil || !strings.HasPrefix(string(out), "longhaul v9.8.7 (commit 0123abc, go") {
			t.Errorf("version printed %q (%v), want v9.8.7 and commit 0123abc", out, err)
		}
	})

	t.Run("without them", func(t *testing.T) {
		r := run(t, testEnv.fast, "version")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "longhaul ") || !strings.Contains(r.stdout, "(commit ") {
			t.Errorf("want a version and a commit\n%s", r)
		}
	})

	t.Run("make build passes the commit", func(t *testing.T) {
		root, err := devbin.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
		if err != nil {
			t.Skipf("not a git checkout: %v", err)
		}
		cmd := exec.Command("make", "-n", "build")
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("make -n build: %v", err)
		}
		want := "cli.commit=" + strings.TrimSpace(string(head))
		if !strings.Contains(string(out), want) {
			t.Errorf("make build does not pass %s:\n%s", want, out)
		}
	})
}

// started runs the command line in the background and returns once its first JSON lines
// show the job's files being prepared.
type started struct {
	cmd    *exec.Cmd
	mu     sync.Mutex // guards out, written by the reading goroutine
	out    bytes.Buffer
	read   chan struct{} // closed when stdout ends
	jobID  string
	stderr bytes.Buffer
}

func startCLI(t *testing.T, server string, args ...string) *started {
	t.Helper()
	s := &started{cmd: command(t.Context(), server, args...), read: make(chan struct{})}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	preparing := make(chan string, 1)
	go func() {
		defer close(s.read)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.out.Write(append(sc.Bytes(), '\n'))
			s.mu.Unlock()
			var l struct {
				Type   string `json:"type"`
				JobID  string `json:"job_id"`
				Status string `json:"status"`
			}
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Type == "file" && l.Status == "processing" {
				select {
				case preparing <- l.JobID:
				default:
				}
			}
		}
	}()
	select {
	case s.jobID = <-preparing:
		return s
	case <-s.read:
		s.cmd.Wait()
		t.Fatalf("longhaul %v ended before any file was prepared\n%s\n%s", args, s.output(), &s.stderr)
	case <-time.After(time.Minute):
		t.Fatalf("longhaul %v showed no file being prepared within a minute\n%s", args, s.output())
	}
	return nil
}

func (s *started) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// interrupt sends SIGINT, as Ctrl-C does, and waits for the exit code.
func (s *started) interrupt(t *testing.T) int {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-s.read
	s.cmd.Wait()
	return s.cmd.ProcessState.ExitCode()
}

func TestCtrlC(t *testing.T) {
	ids := "70000,70007,70014,70021,70028,70035,70042,70049"
	t.Run("detaches, and the job goes on", func(t *testing.T) {
		s := startCLI(t, testEnv.slow, "get", ids, "-o", t.TempDir())
		if code := s.interrupt(t); code != 130 {
			t.Fatalf("exit %d after Ctrl-C, want 130\n%s", code, s.output())
		}
		end := last(lines(t, s.output()))
		if end.Type != "detached" || end.Reattach != "longhaul get --job "+s.jobID+" -o "+s.cmd.Args[len(s.cmd.Args)-1] {
			t.Errorf("last line %+v, want detached with the command that attaches again", end)
		}
		var job struct {
			Status string `json:"status"`
		}
		if r := run(t, testEnv.slow, "status", s.jobID); json.Unmarshal([]byte(r.stdout), &job) != nil ||
			(job.Status != "queued" && job.Status != "processing") {
			t.Errorf("right after detaching, the job is %q, want it still running\n%s", job.Status, r)
		}
		r := run(t, testEnv.slow, "watch", s.jobID)
		if r.code != 0 || last(lines(t, r.stdout)).Status != "completed" {
			t.Errorf("the detached job did not go on to complete\n%s", r)
		}
	})

	t.Run("with --cancel, cancels", func(t *testing.T) {
		s := startCLI(t, testEnv.slow, "get", ids, "--cancel", "-o", t.TempDir())
		if code := s.interrupt(t); code != 3 {
			t.Fatalf("exit %d after Ctrl-C, want 3 (canceled)\n%s", code, s.output())
		}
		if end := last(lines(t, s.output())); end.Type != "summary" || end.Status != "canceled" {
			t.Errorf("last line %+v, want a summary of the canceled job", end)
		}
		var job struct {
			Status string `json:"status"`
		}
		r := run(t, testEnv.slow, "status", s.jobID)
		if err := json.Unmarshal([]byte(r.stdout), &job); err != nil || job.Status != "canceled" || r.code != 3 {
			t.Errorf("after Ctrl-C with --cancel the job is %q (exit %d), want canceled (3)\n%s", job.Status, r.code, r)
		}
	})
}
