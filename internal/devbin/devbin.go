// Package devbin is the one process kit of the tests and tools that run longhaul as real
// processes: the proxy tests in deploy/, the script tests, the process-level tests of
// cmd/longhaul, the chaos run and the benchmark. It builds the longhaul binary, picks free
// loopback ports, and starts, signals and stops child processes with their output in a log
// file:
//
//   - Start runs any program (nginx, a client process of the benchmark) as a Process.
//   - StartLonghaul runs `longhaul MODE` with a clean environment and, for the modes that
//     serve HTTP, waits until it answers; ListenURL is the one parser of the address it
//     prints, and ServerURL that of other servers printing the same line.
//   - StartRedis runs a throwaway redis-server and makes sure that the server answering on
//     its port is the one it started; Kill and Restart crash it and bring it back on the same
//     port and data.
//   - StartSentinelGroup runs a master, its replicas and the Sentinels that watch it, and
//     StartCluster the nodes of a Redis Cluster: each server a Redis of StartRedis, so that a
//     test kills and restarts them as it would a single one, then waits for the failover or
//     for the group to be whole again.
//   - StartS3 runs a throwaway S3-compatible object store (moto_server, in memory), for
//     longhaul's S3 storage; Settings are the settings that point longhaul at a bucket of it.
//   - WaitUntil polls a condition, bounded by a context and a time limit.
//
// Children die with their parent where the operating system allows (Linux), so that an
// interrupted run leaves no process behind. internal/redistest and internal/proctest wrap
// the kit for tests (testing.TB, cleanup, logs shown on failure).
package devbin

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// modulePath is the import path of the longhaul module, as its go.mod declares it.
const modulePath = "github.com/longhaul-dev/longhaul"

// ModuleRoot is the directory of the longhaul module: the nearest directory, from the
// working directory up, whose go.mod declares github.com/longhaul-dev/longhaul. The
// tooling's own modules (scripts/, deploy/) lie inside it, so it is found from them too.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the longhaul module: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if declaresLonghaul(filepath.Join(d, "go.mod")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("run inside the longhaul repository: no go.mod of %s in %s or above", modulePath, dir)
		}
	}
}

// declaresLonghaul reports whether the go.mod at path is the longhaul module's.
func declaresLonghaul(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(name), `"`) == modulePath
		}
	}
	return false
}

// Build compiles ./cmd/longhaul of the module at root into the file out, with extra go
// build flags (such as -race, or -overlay FILE).
func Build(ctx context.Context, root, out string, flags ...string) error {
	args := append(append([]string{"build", "-o", out}, flags...), "./cmd/longhaul")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/longhaul: %w\n%s", err, msg)
	}
	return nil
}

// FreePort returns a TCP port of 127.0.0.1 that nothing listened on a moment ago.
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts returns n different TCP ports of 127.0.0.1 that nothing listened on a moment
// ago. They are held open together while they are picked, so that none is picked twice.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// pollEvery is how often WaitUntil checks its condition.
const pollEvery = 50 * time.Millisecond

// WaitUntil checks cond every 50 ms until it holds, and returns an error naming what it
// waited for once limit has passed or ctx has ended.
func WaitUntil(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", limit, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
	return nil
}
