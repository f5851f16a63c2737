package devbin

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
)

// playLonghaul makes the test binary play `longhaul api` in the child processes that
// TestStartLonghaul starts: it prints the settings it was given, listens on LONGHAUL_ADDR,
// prints the listening line and answers /healthz.
const playLonghaul = "DEVBIN_TEST_PLAY_LONGHAUL"

func TestMain(m *testing.M) {
	if os.Getenv(playLonghaul) != "" {
		fakeLonghaul()
		return
	}
	os.Exit(m.Run())
}

func fakeLonghaul() {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LONGHAUL_") || strings.HasPrefix(kv, "REDIS_") {
			fmt.Println("setting", kv)
		}
	}
	l, err := net.Listen("tcp", os.Getenv("LONGHAUL_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("longhaul listening on http://%s\n", l.Addr())
	http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
}

// start runs sh -c script with its log in a temporary directory, and kills it at the end.
func start(t *testing.T, script string, onLine func(string)) *Process {
	t.Helper()
	p, err := Start(Spec{Args: []string{"sh", "-c", script}, Log: filepath.Join(t.TempDir(), "sh.log"), OnLine: onLine})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

// lines collects the lines a process prints.
type lines struct {
	mu  sync.Mutex
	got []string
}

func (l *lines) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, line)
}

func (l *lines) has(line string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.got, line)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := WaitUntil(t.Context(), 30*time.Second, what, cond); err != nil {
		t.Fatal(err)
	}
}

func TestProcessOutputGoesToLogAndOnLine(t *testing.T) {
	var seen lines
	p := start(t, "echo out; echo err >&2; printf 'no newline'", seen.add)
	<-p.Done()
	for _, want := range []string{"out", "err", "no newline"} {
		if !seen.has(want) {
			t.Errorf("OnLine did not see %q; it saw %q", want, seen.got)
		}
		if !strings.Contains(p.Log(), want) {
			t.Errorf("the log lacks %q:\n%s", want, p.Log())
		}
	}
	if got := p.Tail(1); got != "no newline" {
		t.Errorf("Tail(1) = %q, want the last line", got)
	}
}

func TestExitedByItself(t *testing.T) {
	p := start(t, "echo giving up; exit 3", nil)
	<-p.Done()
	if !p.ExitedByItself() {
		t.Error("a process that exited on its own is not reported as such")
	}
	if code := p.State().ExitCode(); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if err := p.ExitError(); err == nil || !strings.Contains(err.Error(), "giving up") {
		t.Errorf("ExitError = %v, want the end of its log", err)
	}
}

func TestSignals(t *testing.T) {
	t.Run("stop within the grace period", func(t *testing.T) {
		p := start(t, "exec sleep 60", nil)
		if err := p.Stop(time.Minute); err != nil {
			t.Fatal(err)
		}
		if !p.Exited() || p.ExitedByItself() {
			t.Errorf("after Stop: exited %v, by itself %v; want exited because we asked", p.Exited(), p.ExitedByItself())
		}
	})
	t.Run("killed when it ignores SIGTERM", func(t *testing.T) {
		var seen lines
		p := start(t, "trap '' TERM; echo ready; exec sleep 60", seen.add)
		waitFor(t, "the trap to be set", func() bool { return seen.has("ready") })
		if err := p.Stop(100 * time.Millisecond); err == nil {
			t.Error("Stop of a process that ignores SIGTERM reported no error")
		}
		if !p.Exited() || p.State().Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("after Stop: exited %v (%v), want killed with SIGKILL", p.Exited(), p.State())
		}
	})
	t.Run("pausing does not make an exit expected", func(t *testing.T) {
		p := start(t, "exec sleep 60", nil)
		for _, sig := range []syscall.Signal{syscall.SIGSTOP, syscall.SIGCONT} {
			if err := p.Signal(sig); err != nil {
				t.Fatal(err)
			}
		}
		syscall.Kill(p.PID(), syscall.SIGKILL) // a crash, not a signal of the kit's
		<-p.Done()
		if !p.ExitedByItself() {
			t.Error("a process killed from outside after SIGSTOP and SIGCONT is not reported as exited by itself")
		}
	})
}

func TestListenURL(t *testing.T) {
	for _, c := range []struct {
		line, url string
		ok        bool
	}{
		{"longhaul listening on http://127.0.0.1:41234", "http://127.0.0.1:41234", true},
		{"longhaul listening on http://localhost:3000\r", "http://localhost:3000", true},
		{`time=2026-01-01 level=INFO msg="api started" addr=127.0.0.1:41234`, "", false},
		{"longhaul listening on", "", false},
		{"other listening on http://127.0.0.1:1", "", false},
	} {
		url, ok := ListenURL(c.line)
		if url != c.url || ok != c.ok {
			t.Errorf("ListenURL(%q) = %q, %v; want %q, %v", c.line, url, ok, c.url, c.ok)
		}
	}
}

func TestServerURL(t *testing.T) {
	for _, c := range []struct {
		name, line, url string
		ok              bool
	}{
		{"gin-peer", "gin-peer listening on http://127.0.0.1:41235", "http://127.0.0.1:41235", true},
		{"node-peer", "node-peer listening on http://[::1]:40117\r", "http://[::1]:40117", true},
		{"node-peer", "gin-peer listening on http://127.0.0.1:41235", "", false},
		{"gin-peer", "gin-peer: listen on 127.0.0.1:1: address already in use", "", false},
	} {
		url, ok := ServerURL(c.name, c.line)
		if url != c.url || ok != c.ok {
			t.Errorf("ServerURL(%q, %q) = %q, %v; want %q, %v", c.name, c.line, url, ok, c.url, c.ok)
		}
	}
}

func TestStartLonghaul(t *testing.T) {
	t.Setenv("LONGHAUL_FROM_THE_SHELL", "1")
	t.Setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
	t.Setenv("REDIS_CLUSTER_ADDRS", "127.0.0.1:7000")
	t.Setenv(playLonghaul, "1")
	lh, err := StartLonghaul(t.Context(), LonghaulSpec{Bin: os.Args[0], Mode: "api",
		Settings: map[string]string{"LONGHAUL_LOG_LEVEL": "warn"}, Log: filepath.Join(t.TempDir(), "api.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer lh.Kill()
	if !Healthy(lh.URL) || !strings.HasPrefix(lh.Addr(), "127.0.0.1:") {
		t.Errorf("URL %q, Addr %q: want a loopback address that answers /healthz", lh.URL, lh.Addr())
	}
	var settings []string
	for line := range strings.Lines(lh.Log()) {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "setting "); ok {
			settings = append(settings, s)
		}
	}
	want := []string{"LONGHAUL_ADDR=127.0.0.1:0", "LONGHAUL_LOG_LEVEL=warn"}
	if diff := cmp.Diff(want, settings); diff != "" {
		t.Errorf("the process's LONGHAUL_* and REDIS_* (-want +got):\n%s", diff)
	}
}

func TestStartLonghaulReportsAnEarlyExit(t *testing.T) {
	_, err := StartLonghaul(t.Context(), LonghaulSpec{Bin: "sh", Mode: "api", Log: filepath.Join(t.TempDir(), "api.log")})
	if err == nil || !strings.Contains(err.Error(), "exited before it listened") {
		t.Errorf("StartLonghaul of a program that exits at once = %v, want an error that says so", err)
	}
}

func TestRedisRestartKeepsPortAndData(t *testing.T) {
	ctx := t.Context()
	r, err := StartRedis(ctx, RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Kill()
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	port, first := r.Port, r.Process()
	r.Kill()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("the server still answers after Kill")
	}
	if err := r.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "k").Result(); got != "v" || err != nil {
		t.Errorf("after Restart GET k = %q, %v; want the value saved before the kill", got, err)
	}
	if r.Port != port || r.Process() == first || len(r.Processes()) != 2 {
		t.Errorf("after Restart: port %d (was %d), %d processes; want the same port and a second process",
			r.Port, port, len(r.Processes()))
	}
}

func TestRedisRefusesAPortAnotherServerAnswers(t *testing.T) {
	ctx := t.Context()
	other, err := StartRedis(ctx, RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Kill()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if r, err := StartRedis(ctx, RedisOptions{Dir: t.TempDir(), Port: other.Port}); err == nil {
		r.Kill()
		t.Fatal("StartRedis on a port another redis-server holds succeeded: it took the other server's answer for its own")
	}
}
