// Package proxytest proves that longhaul's live progress survives the networks it meets in
// production: a real nginx in front of it (started by the tests on loopback and configured
// from deploy/nginx.conf), several API and worker processes on one Redis, a proxy that
// breaks WebSocket upgrades, and clients that stop reading.
//
// The tests run the longhaul binary as separate processes, so that they can kill them and
// read their memory from /proc. The binary is built once per run from this module, or taken
// from LONGHAUL_BIN. nginx comes from PATH, /usr/sbin or NGINX; without it the tests that
// need it skip and say how to install it (scripts/ensure-nginx.sh, which `make test` runs).
package proxytest

import (
	"bufio"
	"context"
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
	"syscall"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
)

// binary is the longhaul binary shared by every test of the run; TestMain removes it.
var binary lazyBinary

func TestMain(m *testing.M) {
	code := m.Run()
	binary.remove()
	os.Exit(code)
}

// lazyBinary builds longhaul the first time a test asks for it.
type lazyBinary struct {
	once sync.Once
	dir  string // the temporary directory of a build of ours; empty for LONGHAUL_BIN
	path string
	err  error
}

// get returns the path of the longhaul binary, building it on first use.
func (b *lazyBinary) get(t *testing.T) string {
	t.Helper()
	b.once.Do(b.build)
	if b.err != nil {
		t.Fatalf("longhaul binary: %v", b.err)
	}
	return b.path
}

func (b *lazyBinary) build() {
	if p := os.Getenv("LONGHAUL_BIN"); p != "" {
		b.path, b.err = filepath.Abs(p)
		return
	}
	root, err := devbin.ModuleRoot()
	if err != nil {
		b.err = err
		return
	}
	if b.dir, b.err = os.MkdirTemp("", "proxytest-bin-"); b.err != nil {
		return
	}
	b.path = filepath.Join(b.dir, "longhaul")
	b.err = devbin.Build(context.Background(), root, b.path)
}

func (b *lazyBinary) remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// settings are the environment of the longhaul processes of one test, beside REDIS_URL.
type settings map[string]string

// fastSettings make files quick and small, and keep the logs to warnings.
func fastSettings(t *testing.T) settings {
	return settings{
		"LONGHAUL_STORAGE_DIR":   t.TempDir(),
		"LONGHAUL_FILE_TIME_MIN": "200ms",
		"LONGHAUL_FILE_TIME_MAX": "600ms",
		"LONGHAUL_FILE_SIZE_MAX": "64KiB",
		"LONGHAUL_LOG_LEVEL":     "warn",
	}
}

// with returns a copy of s with the given name, value pairs set.
func (s settings) with(kv ...string) settings {
	out := settings{}
	for k, v := range s {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// environ is the process environment: this one's, less any longhaul setting it may carry,
// plus s.
func (s settings) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LONGHAUL_") && !strings.HasPrefix(kv, "REDIS_URL=") {
			env = append(env, kv)
		}
	}
	for k, v := range s {
		env = append(env, k+"="+v)
	}
	return env
}

// process is one child process of a test: longhaul or nginx. It is killed when the test
// ends, and its log is shown when the test failed.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has exited
}

// startProcess starts args as a child with stderr (and stdout, unless stdout is given)
// appended to logPath, or to a new file if it is empty. The child is killed with SIGKILL
// when the test ends.
func startProcess(t *testing.T, name string, args, env []string, stdout io.Writer, logPath string) *process {
	t.Helper()
	if logPath == "" {
		logPath = filepath.Join(t.TempDir(), "process.log")
	}
	p := &process{name: name, logPath: logPath, done: make(chan struct{})}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Env = env
	p.cmd.Stderr, p.cmd.Stdout = logFile, logFile
	if stdout != nil {
		p.cmd.Stdout = stdout
	}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- %s (pid %d), end of its log:\n%s", name, p.cmd.Process.Pid, p.tail(60))
		}
	})
	t.Cleanup(p.kill) // runs before the log is shown
	return p
}

// kill stops the process at once, as a crash would, and waits for it to be gone.
func (p *process) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// stop asks the process to shut down with SIGTERM and waits for it, at most limit.
func (p *process) stop(t *testing.T, limit time.Duration) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(limit):
		t.Fatalf("%s did not exit within %v of SIGTERM", p.name, limit)
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// log is everything the process wrote so far.
func (p *process) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func (p *process) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.log(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// memoryKiB reads a field of /proc/PID/status in KiB, such as VmRSS or VmHWM.
func (p *process) memoryKiB(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read memory of %s: %v", p.name, err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s of %s: %q", field, p.name, line)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, p.cmd.Process.Pid)
	return 0
}

// api is a `longhaul api` process.
type api struct {
	*process
	addr string // host:port it listens on
	url  string // http://host:port
}

// startAPI runs `longhaul api` on a free loopback port, or on addr if given, and waits
// until it answers /healthz.
func startAPI(t *testing.T, name, redisURL string, s settings) *api {
	t.Helper()
	bin := binary.get(t)
	env := s.with("REDIS_URL", redisURL)
	if env["LONGHAUL_ADDR"] == "" {
		env["LONGHAUL_ADDR"] = "127.0.0.1:0"
	}
	found := make(chan string, 1)
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if _, addr, ok := strings.Cut(sc.Text(), "longhaul listening on "); ok {
				select {
				case found <- strings.TrimSpace(addr):
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() { pw.Close() }) // after the process is gone
	p := startProcess(t, name, []string{bin, "api"}, env.environ(), pw, "")
	a := &api{process: p}
	select {
	case a.url = <-found:
	case <-p.done:
		t.Fatalf("%s exited before it listened:\n%s", name, p.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s printed no address within 30s:\n%s", name, p.log())
	}
	a.addr = strings.TrimPrefix(a.url, "http://")
	waitUntil(t, 30*time.Second, name+" to answer /healthz", func() bool { return healthy(a.url) })
	return a
}

// startWorker runs `longhaul worker`.
func startWorker(t *testing.T, name, redisURL string, s settings) *process {
	t.Helper()
	return startProcess(t, name, []string{binary.get(t), "worker"}, s.with("REDIS_URL", redisURL).environ(), nil, "")
}

func healthy(base string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(base + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// answers reports whether anything answers HTTP at base.
func answers(base string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(base + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// waitUntil polls cond until it holds, and fails the test after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := devbin.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// findNginx looks for nginx on PATH and where distributions install it (/usr/sbin is not
// on every PATH); NGINX names a binary explicitly.
func findNginx() (string, bool) {
	if p := os.Getenv("NGINX"); p != "" {
		return p, true
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, true
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if info, err := os.Stat(p); err == nil && !info.IsDir() {
			return p, true
		}
	}
	return "", false
}

// requireNginx returns the nginx binary, or skips the test saying how to install it.
func requireNginx(t *testing.T) string {
	t.Helper()
	p, ok := findNginx()
	if !ok {
		t.Skip("nginx not found (looked on PATH, in /usr/sbin, /usr/local/sbin and at $NGINX): " +
			"run scripts/ensure-nginx.sh (make test does), or apt-get install -y nginx-light")
	}
	return p
}

// proxy is how a test's nginx differs from deploy/nginx.conf.
type proxy struct {
	// Upstreams fill the reference's two upstream servers in order; one address fills
	// both. If empty, the reference's own addresses stay.
	Upstreams []string
	// ReadTimeout replaces every proxy_read_timeout of the reference, e.g. "30s".
	ReadTimeout string
	// StripUpgrade removes the Upgrade and Connection headers sent upstream, as proxies that
	// do not know WebSockets do: the handshake reaches longhaul as a plain GET.
	StripUpgrade bool
	// BufferSSE buffers and compresses event streams, ignoring X-Accel-Buffering, as a
	// misconfigured proxy does: events are held back until a compression buffer fills.
	BufferSSE bool
	// ServerExtra is added at the top of the server block.
	ServerExtra string
}

// nginx is a running nginx of one test.
type nginx struct {
	*process
	url    string // http://127.0.0.1:port
	config string // the configuration it runs, for error messages
}

// startNginx runs nginx in the foreground, as one process, on a free loopback port with its
// prefix, configuration, logs and temporary files in a temporary directory, and waits until
// it answers HTTP.
func startNginx(t *testing.T, p proxy) *nginx {
	t.Helper()
	bin := requireNginx(t)
	root, err := devbin.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := os.ReadFile(filepath.Join(root, "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for try := 1; ; try++ {
		dir := t.TempDir()
		port := freePort(t)
		conf, err := renderNginx(string(ref), p, dir, port)
		if err != nil {
			t.Fatalf("deploy/nginx.conf no longer has what the tests rewrite: %v", err)
		}
		confPath := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		errorLog := filepath.Join(dir, "error.log")
		proc := startProcess(t, "nginx", []string{bin, "-e", errorLog, "-p", dir + "/", "-c", confPath},
			os.Environ(), nil, errorLog)
		n := &nginx{process: proc, url: fmt.Sprintf("http://127.0.0.1:%d", port), config: conf}
		deadline := time.Now().Add(30 * time.Second)
		for !answers(n.url) && !proc.exited() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		switch {
		case !proc.exited() && answers(n.url):
			return n
		case proc.exited() && strings.Contains(proc.log(), "Address already in use") && try < 3:
			continue // another process took the free port in between
		case proc.exited():
			t.Fatalf("nginx exited at start-up:\n%s\nconfiguration:\n%s", proc.log(), conf)
		default:
			t.Fatalf("nginx did not answer within 30s:\n%s", proc.log())
		}
	}
}

// renderNginx turns the reference configuration into the one a test runs, listening on
// 127.0.0.1:port (or where the reference says, if port is 0). Every rewrite
// must find what it rewrites, so that a change of the reference that the tests no longer
// cover fails here instead of passing unnoticed.
func renderNginx(ref string, p proxy, dir string, port int) (string, error) {
	conf := regexp.MustCompile(`(?m)#.*$`).ReplaceAllString(ref, "")
	var errs []error
	replace := func(what, pattern string, atLeast, atMost int, repl func(i int, match []string) string) {
		re := regexp.MustCompile(pattern)
		n := len(re.FindAllString(conf, -1))
		if n < atLeast || n > atMost {
			errs = append(errs, fmt.Errorf("%s: found %d, want %d to %d", what, n, atLeast, atMost))
			return
		}
		i := 0
		conf = re.ReplaceAllStringFunc(conf, func(m string) string {
			i++
			return repl(i-1, re.FindStringSubmatch(m))
		})
	}
	set := func(s string) func(int, []string) string { return func(int, []string) string { return s } }
	const many = 1 << 20

	// One foreground process whose files all live in dir.
	replace("main context", `^`, 1, 1, set("daemon off;\nmaster_process off;\n"))
	replace("pid", `(?m)^\s*pid\s[^;]*;`, 1, 1, set("\npid "+dir+"/nginx.pid;"))
	replace("error_log", `(?m)^\s*error_log\s[^;]*;`, 1, many, set("\nerror_log "+dir+"/error.log info;"))
	replace("access_log", `(?m)^\s*access_log\s[^;]*;`, 1, many, set("\naccess_log "+dir+"/access.log;"))
	temp := ""
	for _, name := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		temp += fmt.Sprintf("\n    %s_temp_path %s/%s_temp;", name, dir, name)
	}
	replace("http block", `(?m)^\s*http\s*\{`, 1, 1, set("\nhttp {"+temp))
	replace("listen", `(?m)^\s*listen\s[^;]*;`, 1, many, func(i int, m []string) string {
		switch {
		case port == 0:
			return m[0]
		case i == 0:
			return fmt.Sprintf("\n        listen 127.0.0.1:%d;", port)
		}
		return ""
	})

	// The test's API processes in the upstream's two slots, keeping their parameters.
	up := regexp.MustCompile(`(?s)upstream\s+longhaul_api\s*\{[^}]*\}`)
	block := up.FindString(conf)
	servers := regexp.MustCompile(`(?m)^(\s*server\s+)(\S+)([^;]*;)`)
	if n := len(servers.FindAllString(block, -1)); n != 2 {
		errs = append(errs, fmt.Errorf("upstream longhaul_api: found %d servers, want 2", n))
	} else if len(p.Upstreams) > 0 {
		i := 0
		block2 := servers.ReplaceAllStringFunc(block, func(m string) string {
			parts := servers.FindStringSubmatch(m)
			addr := p.Upstreams[min(i, len(p.Upstreams)-1)]
			i++
			return parts[1] + addr + parts[3]
		})
		conf = strings.Replace(conf, block, block2, 1)
	}

	if p.ReadTimeout != "" {
		replace("proxy_read_timeout", `(?m)^(\s*)proxy_read_timeout\s[^;]*;`, 2, many, func(_ int, m []string) string {
			return m[1] + "proxy_read_timeout " + p.ReadTimeout + ";"
		})
	}
	if p.StripUpgrade {
		replace("upgrade headers", `(?m)^\s*proxy_set_header\s+(Upgrade|Connection)\s[^;]*;`, 2, 2, set(""))
	}
	if p.BufferSSE {
		replace("SSE buffering", `(?m)^(\s*)proxy_buffering\s+off;`, 1, 1, func(_ int, m []string) string {
			return m[1] + "proxy_buffering on;" + m[1] + "proxy_ignore_headers X-Accel-Buffering;"
		})
		replace("SSE compression", `(?m)^(\s*)gzip\s+off;`, 1, 1, func(_ int, m []string) string {
			return m[1] + "gzip on;" + m[1] + "gzip_types text/event-stream;"
		})
	}
	if p.ServerExtra != "" {
		replace("server block", `(?m)^\s*server\s*\{`, 1, 1, func(_ int, m []string) string {
			return m[0] + "\n" + p.ServerExtra
		})
	}
	return conf, errors.Join(errs...)
}
