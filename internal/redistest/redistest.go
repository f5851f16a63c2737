// Package redistest starts throwaway redis-server processes for tests, on free ports and in
// temporary directories, so that tests never share data and can kill and restart Redis: a
// single server (Start), a Sentinel group (StartSentinels) or a Cluster (StartCluster). It
// is the testing.TB face of devbin.StartRedis, devbin.StartSentinelGroup and
// devbin.StartCluster: what it starts is killed when the test ends, and the end of every
// server's log is shown when the test failed.
package redistest

import (
	"testing"

	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/redis/go-redis/v9"
)

// shownLines is how much of each server's log a failed test shows.
const shownLines = 40

// Server is one redis-server owned by a test. Port, Addr, URL, Kill and Process come from
// devbin.Redis.
type Server struct {
	*devbin.Redis
	t testing.TB
}

// Options configure Start.
type Options struct {
	// AppendOnly turns on AOF persistence with fsync every second, as in production.
	AppendOnly bool
	// Args are more redis-server arguments, such as "--maxclients", "1000".
	Args []string
}

// Start runs a new redis-server for t and kills it when t ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	r, err := devbin.StartRedis(t.Context(), devbin.RedisOptions{Dir: t.TempDir(), AppendOnly: opts.AppendOnly, Args: opts.Args})
	if err != nil {
		t.Fatal(err)
	}
	own(t, r.Kill, r)
	return &Server{Redis: r, t: t}
}

// Client returns a client of the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Restart starts the server again on the same port and directory, killing it first if it
// runs.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.Redis.Restart(s.t.Context()); err != nil {
		s.t.Fatal(err)
	}
}

// own runs stop when t ends, then shows the end of the servers' logs if t failed.
func own(t testing.TB, stop func(), servers ...*devbin.Redis) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, r := range servers {
			p := r.Process()
			t.Logf("--- %s (pid %d), end of its log %s:\n%s", p.Name(), p.PID(), p.LogPath(), p.Tail(shownLines))
		}
	})
	t.Cleanup(stop) // runs before the logs are shown
}
