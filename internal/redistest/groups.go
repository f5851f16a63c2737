package redistest

import (
	"cmp"
	"slices"
	"testing"

	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/redis/go-redis/v9"
)

// SentinelOptions configure StartSentinels. If Dir is empty, a temporary directory of the
// test is used.
type SentinelOptions = devbin.SentinelOptions

// Sentinels is a Sentinel group owned by a test: a master, its replicas and the Sentinels
// that watch them. MasterName, Addrs, Nodes and SentinelNodes come from devbin.Sentinels;
// the methods that wait or ask fail the test instead of returning an error.
type Sentinels struct {
	*devbin.Sentinels
	t testing.TB
}

// StartSentinels starts a Sentinel group for t, as devbin.StartSentinelGroup does, and
// kills every server of it when t ends.
func StartSentinels(t testing.TB, opts SentinelOptions) *Sentinels {
	t.Helper()
	opts.Dir = cmp.Or(opts.Dir, t.TempDir())
	s, err := devbin.StartSentinelGroup(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	own(t, s.Close, slices.Concat(s.Nodes(), s.SentinelNodes())...)
	return &Sentinels{Sentinels: s, t: t}
}

// Client returns a FailoverClient of the group's master, closed when the test ends.
func (s *Sentinels) Client() *redis.Client {
	c := s.Sentinels.Client()
	s.t.Cleanup(func() { c.Close() })
	return c
}

// MasterAddr is the address of the master as the Sentinels name it.
func (s *Sentinels) MasterAddr() string {
	s.t.Helper()
	addr, err := s.Sentinels.MasterAddr(s.t.Context())
	if err != nil {
		s.t.Fatal(err)
	}
	return addr
}

// Master is the server the Sentinels name as the master.
func (s *Sentinels) Master() *devbin.Redis {
	s.t.Helper()
	m, err := s.Sentinels.Master(s.t.Context())
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

// KillMaster kills the master with SIGKILL and returns its address, for WaitForFailover.
func (s *Sentinels) KillMaster() string {
	s.t.Helper()
	old, err := s.Sentinels.KillMaster(s.t.Context())
	if err != nil {
		s.t.Fatal(err)
	}
	return old
}

// WaitForFailover waits until the Sentinels name a master other than old that answers as
// a master, and returns its address.
func (s *Sentinels) WaitForFailover(old string) string {
	s.t.Helper()
	addr, err := s.Sentinels.WaitForFailover(s.t.Context(), old)
	if err != nil {
		s.t.Fatal(err)
	}
	return addr
}

// WaitHealthy waits until the group is whole again (see devbin.Sentinels.WaitHealthy).
func (s *Sentinels) WaitHealthy() {
	s.t.Helper()
	if err := s.Sentinels.WaitHealthy(s.t.Context()); err != nil {
		s.t.Fatal(err)
	}
}

// ClusterOptions configure StartCluster. If Dir is empty, a temporary directory of the test
// is used.
type ClusterOptions = devbin.ClusterOptions

// Cluster is a Redis Cluster owned by a test. Seeds, Nodes and Kill come from
// devbin.Cluster; the methods that wait or ask fail the test instead of returning an
// error.
type Cluster struct {
	*devbin.Cluster
	t testing.TB
}

// StartCluster starts a Redis Cluster for t, as devbin.StartCluster does, and kills every
// node of it when t ends.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	opts.Dir = cmp.Or(opts.Dir, t.TempDir())
	c, err := devbin.StartCluster(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	own(t, c.Close, c.Nodes()...)
	return &Cluster{Cluster: c, t: t}
}

// Client returns a ClusterClient of the cluster, closed when the test ends.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := c.Cluster.Client()
	c.t.Cleanup(func() { cc.Close() })
	return cc
}

// Masters are the nodes that serve slots now.
func (c *Cluster) Masters() []*devbin.Redis {
	c.t.Helper()
	masters, err := c.Cluster.Masters(c.t.Context())
	if err != nil {
		c.t.Fatal(err)
	}
	return masters
}

// MasterOf is the node that serves the slot of key now.
func (c *Cluster) MasterOf(key string) *devbin.Redis {
	c.t.Helper()
	m, err := c.Cluster.MasterOf(c.t.Context(), key)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// Restart starts node again on its port, data and cluster state, killing it first if it
// runs; WaitHealthy waits for it to rejoin.
func (c *Cluster) Restart(node *devbin.Redis) {
	c.t.Helper()
	if err := c.Cluster.Restart(c.t.Context(), node); err != nil {
		c.t.Fatal(err)
	}
}

// WaitHealthy waits until the cluster is healthy (see devbin.Cluster.WaitHealthy).
func (c *Cluster) WaitHealthy() {
	c.t.Helper()
	if err := c.Cluster.WaitHealthy(c.t.Context()); err != nil {
		c.t.Fatal(err)
	}
}
