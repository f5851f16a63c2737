// Package proctest is the testing.TB face of devbin's processes: a process started for a
// test is killed when the test ends, and the end of its log is shown when the test failed.
// internal/redistest does the same for redis-server.
package proctest

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
)

// shownLines is how much of a process's log a failed test shows.
const shownLines = 60

// Start starts the process spec describes, with its log in a temporary directory unless
// spec.Log names one, and kills it when t ends.
func Start(t testing.TB, spec devbin.Spec) *devbin.Process {
	t.Helper()
	if spec.Log == "" {
		spec.Log = filepath.Join(t.TempDir(), "process.log")
	}
	p, err := devbin.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	own(t, p)
	return p
}

// StartLonghaul starts `longhaul MODE` as devbin.StartLonghaul does, with its log in a
// temporary directory unless spec.Log names one, and kills it when t ends.
func StartLonghaul(t testing.TB, spec devbin.LonghaulSpec) *devbin.Longhaul {
	t.Helper()
	if spec.Log == "" {
		spec.Log = filepath.Join(t.TempDir(), "longhaul.log")
	}
	lh, err := devbin.StartLonghaul(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	own(t, lh.Process)
	return lh
}

// own kills p when t ends, then shows the end of its log if t failed.
func own(t testing.TB, p *devbin.Process) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- %s (pid %d), end of its log %s:\n%s", p.Name(), p.PID(), p.LogPath(), p.Tail(shownLines))
		}
	})
	t.Cleanup(p.Kill) // runs before the log is shown
}

// WaitUntil checks cond until it holds, and fails the test once limit has passed.
func WaitUntil(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := devbin.WaitUntil(t.Context(), limit, what, cond); err != nil {
		t.Fatal(err)
	}
}
