package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestChaos runs a small chaos run end to end: real redis-server, api and worker
// processes, kills and a Redis crash, once with files in a directory and once in a bucket
// of an S3 server, side by side. It fails unless every job completes with every file made
// ready exactly once and stored, nothing is left stuck, and at least one kill hit a file in
// progress. It takes about two minutes, most of them asynq's recovery after the SIGKILL.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for asynq to recover a SIGKILLed worker's job (one to two minutes)")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server not found: `make test-deps` installs it, or run: apt-get install -y redis-server")
	}
	for _, storage := range []string{storageDir, storageS3} {
		t.Run(storage, func(t *testing.T) {
			t.Parallel()
			// 24 jobs of 10 files keep two workers (2 jobs x 2 files at once each) busy for
			// most of the 20 s chaos phase; the one SIGKILL comes in its first 5 s so that the
			// job it strands is recovered well within the 3 minutes that bound the run, build
			// included.
			args := []string{"-jobs", "24", "-files", "10", "-duration", "20s", "-sigkill-window", "5s",
				"-min-kills-in-progress", "1", "-timeout", "3m", "-storage", storage}
			if err := run(t.Context(), args, testLog{t}); err != nil {
				t.Fatalf("chaos %s: %v", strings.Join(args, " "), err)
			}
		})
	}
}

func TestChaosRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-jobs", "0"},
		{"-files", "0"},
		{"-duration", "1m", "-timeout", "30s"},
		{"-sigkill-window", "2m", "-duration", "1m"},
		{"-file-time-min", "2s", "-file-time-max", "1s"},
		{"-workers", "0"},
		{"-storage", "nfs"},
		{"-redis", "sentinel"},
		{"extra"},
		{"-no-such-flag"},
	} {
		var out strings.Builder
		if err := run(t.Context(), args, &out); !errors.Is(err, errUsage) {
			t.Errorf("chaos %s = %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}

// testLog writes the run's report to the test log, line by line.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
