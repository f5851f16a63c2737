package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/redis/go-redis/v9"
)

// proc is one child process of the benchmark: redis-server, a longhaul process or a client
// process of the benchmark itself. Its output goes to a log file, shown when it fails.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error         // its exit status; set before done closes
}

// procSpec says how to start a child.
type procSpec struct {
	name string
	dir  string
	log  string   // where its stdout and stderr go
	env  []string // added to the benchmark's own environment
	// onLine, when not nil, also sees every line of its stdout.
	onLine func(string)
	// stdin, when not nil, is its standard input.
	stdin io.Reader
	args  []string
}

// startProc starts a child that dies with the benchmark (Pdeathsig), so that an
// interrupted run leaves nothing behind.
func startProc(spec procSpec) (*proc, error) {
	name, logPath, onLine, args := spec.name, spec.log, spec.onLine, spec.args
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = spec.dir
	cmd.Env = append(os.Environ(), spec.env...)
	cmd.Stdin = spec.stdin
	cmd.Stderr = logf
	cmd.Stdout = logf
	var out *os.File
	if onLine != nil {
		r, w, err := os.Pipe()
		if err != nil {
			logf.Close()
			return nil, err
		}
		cmd.Stdout, out = w, r
		defer w.Close()
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		if out != nil {
			out.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	var lines sync.WaitGroup
	if out != nil {
		lines.Go(func() {
			defer out.Close()
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 64<<10), 64<<20)
			for sc.Scan() {
				fmt.Fprintln(logf, sc.Text())
				onLine(sc.Text())
			}
		})
	}
	go func() {
		p.err = cmd.Wait()
		lines.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id.
func (p *proc) PID() int { return p.cmd.Process.Pid }

// stop ends the process with SIGTERM, then SIGKILL if it takes longer than grace.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// failure describes an unexpected exit with the end of the process's log.
func (p *proc) failure() error {
	return fmt.Errorf("%s exited (%v); end of its log %s:\n%s", p.name, p.err, p.log, tail(p.log, 20))
}

func tail(path string, lines int) string {
	b, _ := os.ReadFile(path)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// procs owns every child of one stage and stops them all, last started first.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

func (ps *procs) add(p *proc) *proc {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.list = append(ps.list, p)
	return p
}

func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop(10 * time.Second)
	}
}

// redisServer is a throwaway redis-server on a free loopback port, configured as the tests'
// (internal/redistest): no persistence, noeviction.
type redisServer struct {
	*proc
	Addr string
}

func startRedis(ctx context.Context, ps *procs, dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found: run scripts/ensure-redis.sh or apt-get install -y redis-server")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := devbin.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := startProc(procSpec{name: "redis-server", dir: dir, log: filepath.Join(dir, "redis.log"),
		args: []string{bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "",
			"--appendonly", "no", "--maxmemory-policy", "noeviction", "--maxclients", "1000"}})
	if err != nil {
		return nil, err
	}
	ps.add(p)
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("redis-server on %s did not answer in 10s:\n%s", addr, tail(p.log, 10))
		}
		select {
		case <-p.done:
			return nil, p.failure()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return &redisServer{proc: p, Addr: addr}, nil
}

// URL is the server as REDIS_URL takes it.
func (r *redisServer) URL() string { return "redis://" + r.Addr + "/0" }

// Client returns a client with the pool the longhaul processes use (64 connections).
func (r *redisServer) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.Addr, PoolSize: 64, DialTimeout: 2 * time.Second})
}

// longhaulEnv is the environment of every longhaul process of the benchmark: files take no
// time and are small, logs are warnings only.
func longhaulEnv(redisURL, storage string) []string {
	return []string{
		"REDIS_URL=" + redisURL,
		"LONGHAUL_ADDR=127.0.0.1:0",
		"LONGHAUL_STORAGE_DIR=" + storage,
		"LONGHAUL_FILE_TIME_MIN=0",
		"LONGHAUL_FILE_TIME_MAX=0",
		"LONGHAUL_FILE_SIZE_MAX=4KiB",
		"LONGHAUL_LOG_LEVEL=warn",
	}
}

// longhaul is a running `longhaul api` or `longhaul worker`.
type longhaul struct {
	*proc
	// URL is the API's base URL (api only).
	URL string
	// Pprof is the base URL of its net/http/pprof handlers, when built for profiling.
	Pprof string
}

// startLonghaul runs `longhaul mode` and, for the API, waits for the address it prints.
func (b *bench) startLonghaul(ctx context.Context, ps *procs, mode, redisURL, dir string, extraEnv ...string) (*longhaul, error) {
	env := append(longhaulEnv(redisURL, filepath.Join(dir, "files")), extraEnv...)
	if b.profiling() {
		env = append(env, pprofEnv+"=127.0.0.1:0")
	}
	want := 0
	if mode == "api" {
		want++
	}
	if b.profiling() {
		want++
	}
	found := make(chan [2]string, 2)
	onLine := func(line string) {
		if u, ok := strings.CutPrefix(line, "longhaul listening on "); ok {
			found <- [2]string{"url", u}
		}
		if u, ok := strings.CutPrefix(line, pprofBanner); ok {
			found <- [2]string{"pprof", u}
		}
	}
	log := filepath.Join(dir, fmt.Sprintf("longhaul-%s-%d.log", mode, time.Now().UnixNano()))
	p, err := startProc(procSpec{name: "longhaul " + mode, dir: b.root, log: log, env: env,
		onLine: onLine, args: []string{b.bin, mode}})
	if err != nil {
		return nil, err
	}
	ps.add(p)
	lh := &longhaul{proc: p}
	timeout := time.After(30 * time.Second)
	for ; want > 0; want-- {
		select {
		case f := <-found:
			if f[0] == "url" {
				lh.URL = f[1]
			} else {
				lh.Pprof = f[1]
			}
		case <-p.done:
			return nil, p.failure()
		case <-timeout:
			p.stop(time.Second)
			return nil, fmt.Errorf("%s printed no address in 30s:\n%s", p.name, tail(log, 10))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return lh, nil
}

// rssBytes is a process's resident set (VmRSS in /proc/PID/status).
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}

// cpuTime is the CPU time a process has used (utime + stime in /proc/PID/stat).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after its closing parenthesis do not.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

// raiseFileLimit lifts the soft open-files limit to the hard one: thousands of WebSockets
// need as many descriptors.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// cpuMeter reads the CPU time of a set of processes, to tell what each costs.
type cpuMeter struct {
	names []string
	pids  []int
}

// add meters process pid under name; several processes may share a name.
func (m *cpuMeter) add(name string, pid int) {
	m.names, m.pids = append(m.names, name), append(m.pids, pid)
}

// start reads every process's CPU time; the function it returns gives what each name used
// since.
func (m *cpuMeter) start() func() map[string]time.Duration {
	if m == nil {
		return func() map[string]time.Duration { return nil }
	}
	before := make([]time.Duration, len(m.pids))
	for i, pid := range m.pids {
		before[i], _ = cpuTime(pid)
	}
	return func() map[string]time.Duration {
		used := map[string]time.Duration{}
		for i, pid := range m.pids {
			if after, err := cpuTime(pid); err == nil {
				used[m.names[i]] += after - before[i]
			}
		}
		return used
	}
}
