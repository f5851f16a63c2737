package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/redis/go-redis/v9"
)

// cluster is everything a run starts: Redis, the API and the workers, and the clients that
// watch them. Only run's goroutine uses it.
type cluster struct {
	o       options
	dir     string // the work folder: logs/, redis/, files/
	out     *printer
	started time.Time

	bin    string
	redis  *redisServer
	rdb    *redis.Client
	store  *jobs.Store
	insp   *asynq.Inspector
	env    []string
	apiURL string
	http   *http.Client

	api      *proc
	workers  []*proc // the live ones
	procs    []*proc // every longhaul process ever started
	nWorkers int     // workers started so far, for their names
}

// startCluster builds longhaul if needed and starts Redis, the API and the workers.
func startCluster(ctx context.Context, o options, dir string, out *printer) (*cluster, error) {
	c := &cluster{o: o, dir: dir, out: out, started: time.Now(), http: &http.Client{Timeout: 10 * time.Second}}
	for _, sub := range []string{"logs", "redis", "files"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	var err error
	if c.bin, err = buildLonghaul(ctx, o, dir, out); err != nil {
		return nil, err
	}
	if c.redis, err = startRedis(ctx, filepath.Join(dir, "redis"), filepath.Join(dir, "logs")); err != nil {
		return nil, err
	}
	c.rdb = redis.NewClient(&redis.Options{Addr: c.redis.addr(), DialTimeout: time.Second,
		ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second, MaxRetries: 2})
	c.store = jobs.NewStore(c.rdb, jobs.Options{})
	c.insp = asynq.NewInspectorFromRedisClient(c.rdb)
	c.env = longhaulEnv(o, "redis://"+c.redis.addr()+"/0", filepath.Join(dir, "files"))

	if err := c.startAPI(ctx); err != nil {
		c.stop()
		return nil, err
	}
	for range o.workers {
		if _, err := c.startWorker(); err != nil {
			c.stop()
			return nil, err
		}
	}
	out.printf("redis %s (AOF everysec), api %s, workers %s; work folder %s",
		c.redis.addr(), c.apiURL, c.workerPIDs(), dir)
	return c, nil
}

// longhaulEnv is the environment of every longhaul process: this one's, less any longhaul
// setting, plus the run's.
func longhaulEnv(o options, redisURL, storage string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LONGHAUL_") && !strings.HasPrefix(kv, "REDIS_URL=") {
			env = append(env, kv)
		}
	}
	return append(env,
		"REDIS_URL="+redisURL,
		"LONGHAUL_ADDR=127.0.0.1:0",
		"LONGHAUL_STORAGE_DIR="+storage,
		"LONGHAUL_FILE_TIME_MIN="+o.fileTimeMin.String(),
		"LONGHAUL_FILE_TIME_MAX="+o.fileTimeMax.String(),
		"LONGHAUL_FILE_SIZE_MAX=64KiB",
		"LONGHAUL_MAX_FILES="+strconv.Itoa(max(o.files, 1000)),
		"LONGHAUL_WORKER_CONCURRENCY="+strconv.Itoa(o.workerConcurrency),
		"LONGHAUL_FILE_CONCURRENCY="+strconv.Itoa(o.fileConcurrency),
		"LONGHAUL_SHUTDOWN_TIMEOUT="+o.shutdownTimeout.String(),
		"LONGHAUL_LOG_LEVEL=warn",
		"GORACE=halt_on_error=0 exitcode=66",
	)
}

// buildLonghaul returns -bin, or builds ./cmd/longhaul of the module around the working
// directory into dir.
func buildLonghaul(ctx context.Context, o options, dir string, out *printer) (string, error) {
	if o.bin != "" {
		abs, err := filepath.Abs(o.bin)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("-bin: %w", err)
		}
		return abs, nil
	}
	root, err := devbin.ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("%w (or pass -bin)", err)
	}
	bin := filepath.Join(dir, "longhaul")
	var flags []string
	if o.race {
		flags = append(flags, "-race")
	}
	begin := time.Now()
	if err := devbin.Build(ctx, root, bin, flags...); err != nil {
		return "", err
	}
	out.printf("built longhaul in %v", time.Since(begin).Round(100*time.Millisecond))
	return bin, nil
}

// startAPI starts `longhaul api` and waits until it answers /healthz.
func (c *cluster) startAPI(ctx context.Context) error {
	found := make(chan string, 1)
	p, err := c.startLonghaul("api", &lineWatcher{fn: func(line string) {
		if _, addr, ok := strings.Cut(line, "listening on "); ok {
			select {
			case found <- strings.TrimSpace(addr):
			default:
			}
		}
	}}, "api")
	if err != nil {
		return err
	}
	c.api = p
	select {
	case c.apiURL = <-found:
	case <-p.done:
		return fmt.Errorf("longhaul api exited at start (%v); see %s", p.cmd.ProcessState, p.logPath)
	case <-time.After(30 * time.Second):
		return fmt.Errorf("longhaul api printed no address within 30s; see %s", p.logPath)
	case <-ctx.Done():
		return ctx.Err()
	}
	return waitUntil(ctx, 30*time.Second, "the api's /healthz", func() bool {
		resp, err := c.http.Get(c.apiURL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// startWorker starts one more `longhaul worker`.
func (c *cluster) startWorker() (*proc, error) {
	c.nWorkers++
	p, err := c.startLonghaul(fmt.Sprintf("worker-%d", c.nWorkers), nil, "worker")
	if err != nil {
		return nil, err
	}
	c.workers = append(c.workers, p)
	return p, nil
}

func (c *cluster) startLonghaul(name string, stdout io.Writer, args ...string) (*proc, error) {
	p, err := startProc(name, c.bin, args, c.env, filepath.Join(c.dir, "logs", name+".log"), stdout)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

func (c *cluster) workerPIDs() string {
	pids := make([]string, len(c.workers))
	for i, w := range c.workers {
		pids[i] = strconv.Itoa(w.pid())
	}
	return strings.Join(pids, ", ")
}

// stop ends every process the cluster started: longhaul with SIGTERM (SIGKILL after a
// while), Redis with SIGKILL.
func (c *cluster) stop() {
	for _, p := range c.procs {
		p.signal(syscall.SIGTERM)
	}
	for _, p := range c.procs {
		if !p.waitExit(c.o.shutdownTimeout + 10*time.Second) {
			p.signal(syscall.SIGKILL)
			p.waitExit(10 * time.Second)
		}
	}
	if c.rdb != nil {
		c.rdb.Close()
	}
	if c.redis != nil {
		c.redis.kill()
	}
}

// proc is one child process with its log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited and its output is written

	mu       sync.Mutex
	signaled bool // a signal was sent on purpose, so an exit is expected; guarded by mu
}

func startProc(name, bin string, args, env []string, logPath string, stdout io.Writer) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stderr = f
	cmd.Stdout = f
	if stdout != nil {
		cmd.Stdout = io.MultiWriter(f, stdout)
	}
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// signal sends sig unless the process has exited, and marks its exit as expected.
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	p.signaled = true
	p.mu.Unlock()
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(sig)
	}
}

// waitExit waits at most limit for the process to exit.
func (p *proc) waitExit(limit time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(limit):
		return false
	}
}

// diedByItself reports whether the process exited without being signalled.
func (p *proc) diedByItself() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return !p.signaled
	default:
		return false
	}
}

// lineWatcher calls fn with every complete line written to it.
type lineWatcher struct {
	fn  func(string)
	buf bytes.Buffer
}

func (w *lineWatcher) Write(b []byte) (int, error) {
	w.buf.Write(b)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line) // an incomplete line waits for the rest
			return len(b), nil
		}
		w.fn(strings.TrimRight(line, "\r\n"))
	}
}

// redisServer is the run's own redis-server: AOF with fsync every second, as production.
type redisServer struct {
	port    int
	args    []string
	logsDir string
	p       *proc   // the current process
	all     []*proc // every process started, for the end check
}

func startRedis(ctx context.Context, dataDir, logsDir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found: `make test-deps` installs it (or apt-get install -y redis-server)")
	}
	port, err := devbin.FreePort()
	if err != nil {
		return nil, err
	}
	r := &redisServer{port: port, logsDir: logsDir, args: []string{bin, "--port", strconv.Itoa(port),
		"--bind", "127.0.0.1", "--dir", dataDir, "--save", "", "--appendonly", "yes",
		"--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
		"--logfile", filepath.Join(logsDir, "redis.log")}}
	return r, r.start(ctx)
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// start starts redis-server, on the same port and data as before if it ran already, and
// waits until it answers.
func (r *redisServer) start(ctx context.Context) error {
	name := fmt.Sprintf("redis-%d", len(r.all)+1)
	p, err := startProc(name, r.args[0], r.args[1:], os.Environ(), filepath.Join(r.logsDir, name+".out"), nil)
	if err != nil {
		return err
	}
	r.p, r.all = p, append(r.all, p)
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	return waitUntil(ctx, 30*time.Second, "redis-server to answer", func() bool {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return c.Ping(ctx).Err() == nil
	})
}

// kill stops redis-server with SIGKILL, as a crash would, and waits for it.
func (r *redisServer) kill() {
	if r.p != nil {
		r.p.signal(syscall.SIGKILL)
		r.p.waitExit(10 * time.Second)
	}
}

// waitUntil polls cond until it holds, for at most limit.
func waitUntil(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", limit, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// printer writes the run's report, each line stamped with the time since the start.
type printer struct {
	mu    sync.Mutex // orders lines written from more than one goroutine
	w     io.Writer
	start time.Time
}

func newPrinter(w io.Writer) *printer { return &printer{w: w, start: time.Now()} }

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%6.1fs  %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}
