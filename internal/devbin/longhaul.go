package devbin

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// listenSuffix follows the server's name in the line that `longhaul api` and `longhaul
// serve` print on their standard output once they listen (cmd/longhaul/run.go), and that
// the benchmark's peer servers print alike.
const listenSuffix = " listening on "

// ListenURL returns the base URL of a longhaul "listening on" line, such as
// "longhaul listening on http://127.0.0.1:41234"; ok is false for any other line. It is the
// one parser of that line: every harness that starts longhaul finds its address here.
func ListenURL(line string) (url string, ok bool) { return ServerURL("longhaul", line) }

// ServerURL returns the base URL of the line "NAME listening on http://HOST:PORT" that the
// server name prints once it listens, as longhaul does ("longhaul") and the benchmark's
// peers do ("gin-peer", "node-peer"); ok is false for any other line.
func ServerURL(name, line string) (url string, ok bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), name+listenSuffix)
	if !ok || !strings.HasPrefix(rest, "http://") {
		return "", false
	}
	return strings.TrimSpace(rest), true
}

// Healthy reports whether the longhaul at base answers GET /healthz with 200, within 2 s.
func Healthy(base string) bool { return HealthStatus(base) == http.StatusOK }

// HealthStatus is the status code that GET base/healthz answers within 2 s, or 0 when
// nothing answers: a proxy in front of a longhaul that is down answers too, with a 502.
func HealthStatus(base string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(base + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// LonghaulSpec says how to start `longhaul MODE`.
type LonghaulSpec struct {
	// Bin is the program to run: a build of ./cmd/longhaul (see Build), or any program that
	// behaves as longhaul, such as a test binary that plays it when asked.
	Bin string
	// Mode is the subcommand: "api", "serve" or "worker".
	Mode string
	// Name names the process in errors. If empty, "longhaul MODE" is used.
	Name string
	// Settings are the environment variables of the run (LONGHAUL_*, REDIS_*, anything
	// else the program reads). They are added to this process's environment less every
	// LONGHAUL_* and REDIS_* variable, so that no setting of the caller's leaks in. If
	// LONGHAUL_ADDR is not among them, 127.0.0.1:0 is used: a free loopback port.
	Settings map[string]string
	// Log is the file the process's output is appended to. Required.
	Log string
	// Dir is its working directory. If empty, this process's is used.
	Dir string
	// OnLine, if not nil, also sees every line of the process's output.
	OnLine func(line string)
	// StartTimeout bounds the wait for an HTTP mode to listen and answer /healthz. If
	// zero, 30 s is used.
	StartTimeout time.Duration
}

// Longhaul is a running longhaul process.
type Longhaul struct {
	*Process
	// URL is the base URL the process serves (http://host:port) in the modes that serve
	// HTTP; empty for a worker.
	URL string
}

// Addr is the host:port the process serves, or empty for a worker.
func (l *Longhaul) Addr() string { return strings.TrimPrefix(l.URL, "http://") }

// StartLonghaul starts `longhaul MODE` and, for the modes that serve HTTP (api and serve),
// waits until it prints its listening line and answers /healthz. A process that does not
// get that far is killed, and the error holds the end of its log.
func StartLonghaul(ctx context.Context, spec LonghaulSpec) (*Longhaul, error) {
	name := spec.Name
	if name == "" {
		name = "longhaul " + spec.Mode
	}
	httpMode := spec.Mode == "api" || spec.Mode == "serve"
	found := make(chan string, 1)
	onLine := spec.OnLine
	if httpMode {
		onLine = func(line string) {
			if url, ok := ListenURL(line); ok {
				select {
				case found <- url:
				default:
				}
			}
			if spec.OnLine != nil {
				spec.OnLine(line)
			}
		}
	}
	p, err := Start(Spec{Name: name, Args: []string{spec.Bin, spec.Mode}, Dir: spec.Dir,
		Env: longhaulEnv(spec.Settings), Log: spec.Log, OnLine: onLine})
	if err != nil {
		return nil, err
	}
	lh := &Longhaul{Process: p}
	if !httpMode {
		return lh, nil
	}
	if lh.URL, err = awaitListening(ctx, p, found, cmp.Or(spec.StartTimeout, 30*time.Second)); err != nil {
		p.Kill()
		return nil, err
	}
	return lh, nil
}

// awaitListening waits, at most limit, for the URL the process prints, then for it to answer
// /healthz.
func awaitListening(ctx context.Context, p *Process, found <-chan string, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	var url string
	select {
	case url = <-found:
	case <-p.Done():
		return "", fmt.Errorf("%s exited before it listened: %w", p.Name(), p.ExitError())
	case <-time.After(limit):
		return "", fmt.Errorf("%s printed no address within %v; end of its log %s:\n%s", p.Name(), limit, p.LogPath(), p.Tail(20))
	case <-ctx.Done():
		return "", fmt.Errorf("start %s: %w", p.Name(), ctx.Err())
	}
	err := WaitUntil(ctx, time.Until(deadline), p.Name()+" to answer /healthz", func() bool { return Healthy(url) })
	if err != nil {
		return "", fmt.Errorf("%w; end of its log %s:\n%s", err, p.LogPath(), p.Tail(20))
	}
	return url, nil
}

// longhaulEnv is this process's environment less every LONGHAUL_* and REDIS_* variable
// (REDIS_URL, or a Sentinel group's or a Cluster's settings, which exclude each other),
// plus settings, with LONGHAUL_ADDR on a free loopback port unless settings name one.
func longhaulEnv(settings map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LONGHAUL_") && !strings.HasPrefix(kv, "REDIS_") {
			env = append(env, kv)
		}
	}
	if _, ok := settings["LONGHAUL_ADDR"]; !ok {
		env = append(env, "LONGHAUL_ADDR=127.0.0.1:0")
	}
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		env = append(env, k+"="+settings[k])
	}
	return env
}

// Unguarded returns settings plus those that run longhaul without access control: no API
// keys (which `longhaul api` asks for unless told otherwise) and no per-client limits
// (which would refuse a harness that creates hundreds of jobs from one address). Its own
// settings win, so a test of keys or limits names what it turns on.
func Unguarded(settings map[string]string) map[string]string {
	out := map[string]string{
		"LONGHAUL_AUTH":               "none",
		"LONGHAUL_RATE_CREATE":        "0",
		"LONGHAUL_RATE_NOT_FOUND":     "0",
		"LONGHAUL_KEY_MAX_UNFINISHED": "0",
		"LONGHAUL_KEY_MAX_RUNNING":    "0",
		"LONGHAUL_KEY_MAX_LIVE":       "0",
		"LONGHAUL_KEY_MAX_STORED":     "0",
		"LONGHAUL_JOB_MAX_SIZE":       "0",
	}
	maps.Copy(out, settings)
	return out
}
