package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/internal/proctest"
)

// binary is the longhaul binary shared by every test of the run; TestMain removes it.
var binary lazyBinary

// cert is the certificate every test's nginx serves TLS with, as deploy/nginx.conf does.
// TestMain makes it, and makes it what Go's default HTTP and WebSocket clients trust, so
// that each test talks to nginx over TLS exactly as a client on the network would.
var cert *devbin.Cert

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "longhaul-deploy-tls-")
	if err == nil {
		cert, err = devbin.NewCert(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	http.DefaultTransport.(*http.Transport).TLSClientConfig = cert.Client
	websocket.DefaultDialer.TLSClientConfig = cert.Client
	code := m.Run()
	binary.remove()
	os.RemoveAll(dir)
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
	if b.dir, b.err = os.MkdirTemp("", "longhaul-deploy-test-"); b.err != nil {
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

// fastSettings make files quick and small, keep the logs to warnings, and leave keys and
// limits off.
func fastSettings(t *testing.T) settings {
	return devbin.Unguarded(settings{
		"LONGHAUL_STORAGE_DIR":   t.TempDir(),
		"LONGHAUL_FILE_TIME_MIN": "200ms",
		"LONGHAUL_FILE_TIME_MAX": "600ms",
		"LONGHAUL_FILE_SIZE_MAX": "64KiB",
		"LONGHAUL_LOG_LEVEL":     "warn",
	})
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

// startAPI runs `longhaul api` on a free loopback port, or on LONGHAUL_ADDR if s names
// one, and waits until it answers /healthz.
func startAPI(t *testing.T, name, redisURL string, s settings) *devbin.Longhaul {
	t.Helper()
	return proctest.StartLonghaul(t, devbin.LonghaulSpec{Bin: binary.get(t), Mode: "api", Name: name,
		Settings: s.with("REDIS_URL", redisURL)})
}

// startWorker runs `longhaul worker`.
func startWorker(t *testing.T, name, redisURL string, s settings) *devbin.Longhaul {
	t.Helper()
	return proctest.StartLonghaul(t, devbin.LonghaulSpec{Bin: binary.get(t), Mode: "worker", Name: name,
		Settings: s.with("REDIS_URL", redisURL)})
}

// stop asks p to shut down with SIGTERM, and fails the test unless it exits within limit.
func stop(t *testing.T, p *devbin.Process, limit time.Duration) {
	t.Helper()
	if err := p.Stop(limit); err != nil {
		t.Fatal(err)
	}
}

// memoryKiB reads a field of /proc/PID/status in KiB, such as VmRSS or VmHWM.
func memoryKiB(t *testing.T, p *devbin.Process, field string) int64 {
	t.Helper()
	n, err := p.MemoryKiB(field)
	if err != nil {
		t.Fatal(err)
	}
	return n
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
	*devbin.Process
	url    string // https://127.0.0.1:port
	config string // the configuration it runs, for error messages
	dir    string // its prefix, with access.log in it
}

// startNginx runs nginx in the foreground, as one process, on a free loopback port with its
// prefix, configuration, logs and temporary files in a temporary directory, and waits until
// it answers HTTP.
func startNginx(t *testing.T, p proxy) *nginx {
	t.Helper()
	bin := requireNginx(t)
	ref := referenceConfig(t)
	for try := 1; ; try++ {
		dir := t.TempDir()
		port := freePort(t)
		conf, err := renderNginx(ref, p, dir, port)
		if err != nil {
			t.Fatalf("deploy/nginx.conf no longer has what the tests rewrite: %v", err)
		}
		confPath := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		errorLog := filepath.Join(dir, "error.log")
		proc := proctest.Start(t, devbin.Spec{Name: "nginx", Log: errorLog,
			Args: []string{bin, "-e", errorLog, "-p", dir + "/", "-c", confPath}})
		n := &nginx{Process: proc, url: fmt.Sprintf("https://127.0.0.1:%d", port), config: conf, dir: dir}
		devbin.WaitUntil(t.Context(), 30*time.Second, "nginx to answer", func() bool { return proc.Exited() || devbin.HealthStatus(n.url) != 0 })
		switch {
		case !proc.Exited() && devbin.HealthStatus(n.url) != 0:
			return n
		case proc.Exited() && strings.Contains(proc.Log(), "Address already in use") && try < 3:
			continue // another process took the free port in between
		case proc.Exited():
			t.Fatalf("nginx exited at start-up:\n%s\nconfiguration:\n%s", proc.Log(), conf)
		default:
			t.Fatalf("nginx did not answer within 30s:\n%s", proc.Log())
		}
	}
}

// referenceConfig is deploy/nginx.conf.
func referenceConfig(t *testing.T) string {
	t.Helper()
	root, err := devbin.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := os.ReadFile(filepath.Join(root, "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return string(ref)
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
	replace("access_log", `(?m)^\s*access_log\s+\S+(\s[^;]*)?;`, 1, many, func(_ int, m []string) string {
		return "\naccess_log " + dir + "/access.log" + m[1] + ";" // the format stays
	})
	temp := ""
	for _, name := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		temp += fmt.Sprintf("\n    %s_temp_path %s/%s_temp;", name, dir, name)
	}
	replace("http block", `(?m)^\s*http\s*\{`, 1, 1, set("\nhttp {"+temp))
	replace("listen", `(?m)^\s*listen\s+\S+(\s[^;]*)?;`, 1, many, func(i int, m []string) string {
		switch {
		case port == 0:
			return m[0]
		case i == 0:
			return fmt.Sprintf("\n        listen 127.0.0.1:%d%s;", port, m[1]) // ssl stays
		}
		return ""
	})
	replace("ssl_certificate", `(?m)^(\s*)ssl_certificate\s[^;]*;`, 1, 1, func(_ int, m []string) string {
		return m[1] + "ssl_certificate " + cert.CertFile + ";"
	})
	replace("ssl_certificate_key", `(?m)^(\s*)ssl_certificate_key\s[^;]*;`, 1, 1, func(_ int, m []string) string {
		return m[1] + "ssl_certificate_key " + cert.KeyFile + ";"
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
