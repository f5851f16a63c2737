package devbin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelOptions configure StartSentinelGroup.
type SentinelOptions struct {
	// Dir holds a directory for each server of the group: node-1 (the first master),
	// node-2... (its replicas), sentinel-1... Required.
	Dir string
	// Replicas is how many replicas the master has. If zero, 1 is used.
	Replicas int
	// Sentinels is how many Sentinels watch the master. If zero, 3 are used.
	Sentinels int
	// MasterName is the name the Sentinels know the master by. If empty, "longhaul" is used.
	MasterName string
	// AppendOnly turns on AOF persistence on the master and the replicas, as in production.
	AppendOnly bool
	// Quorum is how many Sentinels must find the master down to start a failover. If zero, 2
	// is used, or 1 with a single Sentinel.
	Quorum int
	// DownAfter is how long the master may not answer before a Sentinel finds it down. If
	// zero, 1 s is used.
	DownAfter time.Duration
	// FailoverTimeout bounds each step of a failover, and a failover that failed is tried
	// again after twice as long. If zero, 2 s is used.
	FailoverTimeout time.Duration
}

// withDefaults fills in the zero fields and checks the rest.
func (o SentinelOptions) withDefaults() (SentinelOptions, error) {
	o.Replicas = cmp.Or(o.Replicas, 1)
	o.Sentinels = cmp.Or(o.Sentinels, 3)
	o.MasterName = cmp.Or(o.MasterName, "longhaul")
	o.Quorum = cmp.Or(o.Quorum, min(2, o.Sentinels))
	o.DownAfter = cmp.Or(o.DownAfter, time.Second)
	o.FailoverTimeout = cmp.Or(o.FailoverTimeout, 2*time.Second)
	switch {
	case o.Dir == "":
		return o, errors.New("start a Sentinel group: SentinelOptions needs Dir")
	case o.Replicas < 0 || o.Sentinels < 0:
		return o, fmt.Errorf("start a Sentinel group: %d replicas and %d Sentinels: want none negative", o.Replicas, o.Sentinels)
	case o.Quorum < 1 || o.Quorum > o.Sentinels:
		return o, fmt.Errorf("start a Sentinel group: quorum %d of %d Sentinels can never be reached", o.Quorum, o.Sentinels)
	}
	return o, nil
}

// Sentinels is a Redis Sentinel group started by StartSentinelGroup: a master, its
// replicas and the Sentinels that watch them, each a redis-server on a loopback port. Which
// server is the master changes with failovers: ask the Sentinels (MasterAddr, Master).
type Sentinels struct {
	// MasterName is the name the Sentinels know the master by.
	MasterName string
	// Addrs are the Sentinels' addresses, host:port, as a FailoverClient takes them.
	Addrs []string

	nodes      []*Redis                // the master and the replicas, the first master first
	watchers   []*Redis                // the Sentinels, in the order of Addrs
	nodeChecks []*redis.Client         // a client of each node, in the order of nodes
	checks     []*redis.SentinelClient // a client of each Sentinel, in the order of Addrs
}

// StartSentinelGroup starts a master, its replicas and the Sentinels that watch it, all on
// free loopback ports in opts.Dir, and returns once the group is whole: every Sentinel
// knows the master, every replica and every other Sentinel, and every replica is in sync.
// If the start fails, whatever it started is stopped.
func StartSentinelGroup(ctx context.Context, opts SentinelOptions) (*Sentinels, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Sentinels{MasterName: opts.MasterName}
	if err := s.start(ctx, opts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// start starts the servers of the group, then waits for it to be whole.
func (s *Sentinels) start(ctx context.Context, opts SentinelOptions) error {
	master, err := startNode(ctx, opts, 1, "")
	if err != nil {
		return err
	}
	s.addNode(master)
	for i := range opts.Replicas {
		r, err := startNode(ctx, opts, i+2, fmt.Sprintf("replicaof 127.0.0.1 %d\n", master.Port))
		if err != nil {
			return err
		}
		s.addNode(r)
	}
	for i := range opts.Sentinels {
		w, err := startSentinel(ctx, opts, i+1, master)
		if err != nil {
			return err
		}
		s.watchers, s.Addrs = append(s.watchers, w), append(s.Addrs, w.Addr())
		s.checks = append(s.checks, redis.NewSentinelClient(checkOptions(w.Addr())))
		if err := quicken(ctx, s.checks[i]); err != nil {
			return fmt.Errorf("start a Sentinel group: Sentinel %s: %w", w.Addr(), err)
		}
	}
	return s.WaitHealthy(ctx)
}

// quicken makes the Sentinel c look and tell more often than by default (INFO of every
// server each 10 s, hello messages each 2 s), so that a group finds its members in about a
// second, and turns a master that comes back into a replica in about three instead of more
// than ten. SENTINEL DEBUG
// sets these in the running process only: a Sentinel restarted by hand is slower at it.
func quicken(ctx context.Context, c *redis.SentinelClient) error {
	cmd := redis.NewStatusCmd(ctx, "SENTINEL", "DEBUG", "info-period", 1000, "publish-period", 500, "ask-period", 500)
	if err := c.Process(ctx, cmd); err != nil {
		return fmt.Errorf("set its timers: %w", err)
	}
	return nil
}

// addNode adds a master or replica to the group.
func (s *Sentinels) addNode(r *Redis) {
	s.nodes = append(s.nodes, r)
	s.nodeChecks = append(s.nodeChecks, redis.NewClient(checkOptions(r.Addr())))
}

// startNode starts the master or a replica of a group in opts.Dir/node-N, with a
// configuration file for the Sentinels to rewrite as they reconfigure it: a server
// restarted after a failover then follows the master it followed before it went down.
func startNode(ctx context.Context, opts SentinelOptions, n int, conf string) (*Redis, error) {
	dir := filepath.Join(opts.Dir, "node-"+strconv.Itoa(n))
	file := filepath.Join(dir, "redis.conf")
	if err := writeConf(file, "replica-announce-ip 127.0.0.1\n"+conf); err != nil {
		return nil, err
	}
	return StartRedis(ctx, RedisOptions{Dir: dir, Config: file, AppendOnly: opts.AppendOnly})
}

// startSentinel starts a Sentinel of master in opts.Dir/sentinel-N. Its configuration file
// is its memory: it writes there what it learns (the other Sentinels, the replicas, the
// master after a failover), so that a restarted Sentinel knows the group.
func startSentinel(ctx context.Context, opts SentinelOptions, n int, master *Redis) (*Redis, error) {
	dir := filepath.Join(opts.Dir, "sentinel-"+strconv.Itoa(n))
	file := filepath.Join(dir, "sentinel.conf")
	name := opts.MasterName
	conf := fmt.Sprintf(`sentinel announce-ip 127.0.0.1
sentinel monitor %s 127.0.0.1 %d %d
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
`, name, master.Port, opts.Quorum, name, opts.DownAfter.Milliseconds(), name, opts.FailoverTimeout.Milliseconds())
	if err := writeConf(file, conf); err != nil {
		return nil, err
	}
	return StartRedis(ctx, RedisOptions{Dir: dir, Config: file, Args: []string{"--sentinel"}})
}

// writeConf writes a configuration file, and the directory it is in.
func writeConf(file, conf string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

// Nodes are the master and the replicas, in the order they were started: the first master
// first. Failovers change which one is the master, not the order.
func (s *Sentinels) Nodes() []*Redis { return slices.Clone(s.nodes) }

// SentinelNodes are the Sentinels, in the order of Addrs.
func (s *Sentinels) SentinelNodes() []*Redis { return slices.Clone(s.watchers) }

// MasterAddr is the address of the master as the first running Sentinel that answers
// names it (SENTINEL get-master-addr-by-name).
func (s *Sentinels) MasterAddr(ctx context.Context) (string, error) {
	addr, err := firstAnswer(ctx, s.watchers, s.checks, s.askMaster)
	if err != nil {
		return "", fmt.Errorf("ask the Sentinels for master %s: %w", s.MasterName, err)
	}
	return addr, nil
}

// askMaster is the address of the master as the Sentinel c names it.
func (s *Sentinels) askMaster(ctx context.Context, c *redis.SentinelClient) (string, error) {
	hostPort, err := c.GetMasterAddrByName(ctx, s.MasterName).Result()
	if err != nil {
		return "", err
	}
	if len(hostPort) != 2 {
		return "", fmt.Errorf("get-master-addr-by-name answered %q", hostPort)
	}
	return hostPort[0] + ":" + hostPort[1], nil
}

// Master is the server that the Sentinels name as the master.
func (s *Sentinels) Master(ctx context.Context) (*Redis, error) {
	addr, err := s.MasterAddr(ctx)
	if err != nil {
		return nil, err
	}
	if m := byAddr(s.nodes, addr); m != nil {
		return m, nil
	}
	return nil, fmt.Errorf("the Sentinels name %s as master %s: not a server of the group", addr, s.MasterName)
}

// KillMaster kills the master with SIGKILL, as a crash would, and returns its address: the
// old address that WaitForFailover takes.
func (s *Sentinels) KillMaster(ctx context.Context) (string, error) {
	m, err := s.Master(ctx)
	if err != nil {
		return "", fmt.Errorf("kill the master: %w", err)
	}
	m.Kill()
	return m.Addr(), nil
}

// WaitForFailover waits until every running Sentinel names a master other than old, and
// that server answers as a master. It returns the new master's address.
func (s *Sentinels) WaitForFailover(ctx context.Context, old string) (string, error) {
	var addr string
	err := waitHealthy(ctx, "the Sentinels of "+s.MasterName+" to replace master "+old, s.servers(), func(ctx context.Context) error {
		m, err := s.agreedMaster(ctx)
		switch {
		case err != nil:
			return err
		case m.Addr() == old:
			return fmt.Errorf("the Sentinels still name %s", old)
		}
		addr = m.Addr()
		return nil
	})
	return addr, err
}

// WaitHealthy waits until the group is whole: every running Sentinel names the same master
// and knows every other Sentinel; that server answers as a master; every other running
// server is its replica, in sync, and known to every Sentinel as such.
func (s *Sentinels) WaitHealthy(ctx context.Context) error {
	return waitHealthy(ctx, "Sentinel group "+s.MasterName+" to be whole", s.servers(), s.healthy)
}

// healthy says what keeps the group from being whole, or nil.
func (s *Sentinels) healthy(ctx context.Context) error {
	m, err := s.agreedMaster(ctx)
	if err != nil {
		return err
	}
	for i, r := range s.nodes {
		if r == m || !running(r) {
			continue
		}
		repl, err := replication(ctx, s.nodeChecks[i])
		switch {
		case err != nil:
			return fmt.Errorf("INFO replication of %s: %w", r.Addr(), err)
		case repl["role"] != "slave" || repl["master_port"] != strconv.Itoa(m.Port) || repl["master_link_status"] != "up":
			return fmt.Errorf("%s is not a replica of %s in sync: role %s, master port %s, link %s",
				r.Addr(), m.Addr(), repl["role"], repl["master_port"], repl["master_link_status"])
		}
	}
	for i, c := range s.checks {
		if running(s.watchers[i]) {
			if err := s.knowsGroup(ctx, c, m); err != nil {
				return fmt.Errorf("Sentinel %s: %w", s.Addrs[i], err)
			}
		}
	}
	return nil
}

// knowsGroup says what the Sentinel c does not know of the group whose master is m, or nil.
func (s *Sentinels) knowsGroup(ctx context.Context, c *redis.SentinelClient, m *Redis) error {
	others, err := c.Sentinels(ctx, s.MasterName).Result()
	if err != nil {
		return fmt.Errorf("SENTINEL SENTINELS: %w", err)
	}
	if len(others) != len(s.watchers)-1 {
		return fmt.Errorf("knows %d other Sentinels of %d", len(others), len(s.watchers)-1)
	}
	replicas, err := c.Replicas(ctx, s.MasterName).Result()
	if err != nil {
		return fmt.Errorf("SENTINEL REPLICAS: %w", err)
	}
	for _, r := range s.nodes {
		if r == m || !running(r) {
			continue
		}
		i := slices.IndexFunc(replicas, func(f map[string]string) bool { return f["name"] == r.Addr() })
		if i < 0 {
			return fmt.Errorf("does not know replica %s", r.Addr())
		}
		if f := replicas[i]; f["flags"] != "slave" || f["master-port"] != strconv.Itoa(m.Port) || f["master-link-status"] != "ok" {
			return fmt.Errorf("sees replica %s as %s, following port %s, link %s", r.Addr(), f["flags"], f["master-port"], f["master-link-status"])
		}
	}
	return nil
}

// agreedMaster is the master that every running Sentinel names, once they agree and it
// answers as a master.
func (s *Sentinels) agreedMaster(ctx context.Context) (*Redis, error) {
	var addr string
	for i, c := range s.checks {
		if !running(s.watchers[i]) {
			continue
		}
		got, err := s.askMaster(ctx, c)
		switch {
		case err != nil:
			return nil, fmt.Errorf("ask Sentinel %s for the master: %w", s.Addrs[i], err)
		case addr != "" && got != addr:
			return nil, fmt.Errorf("the Sentinels disagree on the master: %s and %s", addr, got)
		}
		addr = got
	}
	m := byAddr(s.nodes, addr)
	if m == nil {
		return nil, fmt.Errorf("the Sentinels name %q as the master: not a server of the group", addr)
	}
	repl, err := replication(ctx, s.nodeChecks[slices.Index(s.nodes, m)])
	if err != nil {
		return nil, fmt.Errorf("INFO replication of master %s: %w", addr, err)
	}
	if repl["role"] != "master" {
		return nil, fmt.Errorf("master %s answers as %s", addr, repl["role"])
	}
	return m, nil
}

// servers are every server of the group: the nodes, then the Sentinels.
func (s *Sentinels) servers() []*Redis { return slices.Concat(s.nodes, s.watchers) }

// Client returns a FailoverClient of the group's master: it asks the Sentinels where the
// master is, and follows a failover. The caller closes it.
func (s *Sentinels) Client() *redis.Client {
	return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: slices.Clone(s.Addrs)})
}

// Close kills every server of the group, the Sentinels first so that they start no
// failover of a master that is going away.
func (s *Sentinels) Close() {
	for _, r := range slices.Concat(s.watchers, s.nodes) {
		r.Kill()
	}
	closeAll(s.checks)
	closeAll(s.nodeChecks)
}
