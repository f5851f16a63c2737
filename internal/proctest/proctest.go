// Package proctest is the testing.TB face of devbin's processes: a process started for a
// test is killed when the test ends, and the end of its log is shown when the test failed.
// internal/redistest does the same for redis-server; StartS3 for an S3 server.
package proctest

import (
	"io"
	"net/http"
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

// StartS3 starts an S3 server for t as devbin.StartS3 does, with its log in a temporary
// directory unless opts.Log names one, makes the given buckets, and kills it when t ends.
func StartS3(t testing.TB, opts devbin.S3Options, buckets ...string) *devbin.S3 {
	t.Helper()
	if opts.Log == "" {
		opts.Log = filepath.Join(t.TempDir(), "s3.log")
	}
	s, err := devbin.StartS3(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	own(t, s.Process())
	for _, b := range buckets {
		if err := s.MakeBucket(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	return s
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

// Response is an answer of Get, its body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Get GETs url with c, the header given as name, value pairs, and reads the whole answer;
// a request that gets no answer fails the test.
func Get(t testing.TB, c *http.Client, url string, header ...string) Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Response{resp.StatusCode, resp.Header, body}
}

// WaitUntil checks cond until it holds, and fails the test once limit has passed.
func WaitUntil(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := devbin.WaitUntil(t.Context(), limit, what, cond); err != nil {
		t.Fatal(err)
	}
}
