package devbin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterOptions configure StartCluster.
type ClusterOptions struct {
	// Dir holds a directory for each node of the cluster, node-1, node-2..., and the log of
	// the redis-cli that joins them. Required.
	Dir string
	// Masters is how many masters share the slots. If zero, 3 are used; fewer than 3 is an
	// error (redis-cli --cluster create wants 3).
	Masters int
	// ReplicasPerMaster is how many replicas each master has. If zero, 1 is used; a
	// negative number means none.
	ReplicasPerMaster int
	// AppendOnly turns on AOF persistence on every node, as in production.
	AppendOnly bool
}

// withDefaults fills in the zero fields and checks the rest.
func (o ClusterOptions) withDefaults() (ClusterOptions, error) {
	o.Masters = cmp.Or(o.Masters, 3)
	o.ReplicasPerMaster = max(cmp.Or(o.ReplicasPerMaster, 1), 0)
	switch {
	case o.Dir == "":
		return o, errors.New("start a Redis Cluster: ClusterOptions needs Dir")
	case o.Masters < 3:
		return o, fmt.Errorf("start a Redis Cluster: %d masters: redis-cli --cluster create wants at least 3", o.Masters)
	}
	return o, nil
}

// clusterNodeTimeout is how long, in milliseconds, a node of a Cluster may not answer
// before the others find it down and its replica takes over: small, so that failovers take
// a second or two.
const clusterNodeTimeout = "1000"

// slotCount is the number of hash slots of a Redis Cluster.
const slotCount = 16384

// Cluster is a Redis Cluster started by StartCluster: masters that share the 16384 slots
// and their replicas, each a redis-server on a loopback port with a cluster bus of its own.
// Which nodes are masters changes with failovers: ask the cluster (Masters, MasterOf).
type Cluster struct {
	// Seeds are the addresses, host:port, of every node, as a ClusterClient takes them.
	Seeds []string

	nodes  []*Redis
	checks []*redis.Client // a client of each node, in the order of nodes
}

// StartCluster starts the nodes of a Redis Cluster on free loopback ports in opts.Dir,
// joins them with redis-cli --cluster create, and returns once the cluster is healthy (see
// WaitHealthy). If the start fails, whatever it started is stopped.
func StartCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, errors.New("redis-cli not found: run scripts/ensure-redis.sh (Debian's redis-server package brings it), or apt-get install -y redis-server")
	}
	c := &Cluster{}
	if err := c.start(ctx, opts, cli); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// start starts the nodes, joins them, then waits for the cluster to be healthy.
func (c *Cluster) start(ctx context.Context, opts ClusterOptions, cli string) error {
	for i := range opts.Masters * (1 + opts.ReplicasPerMaster) {
		r, err := StartRedis(ctx, RedisOptions{Dir: filepath.Join(opts.Dir, "node-"+strconv.Itoa(i+1)),
			AppendOnly: opts.AppendOnly, ClusterNode: true, Args: []string{"--cluster-node-timeout", clusterNodeTimeout}})
		if err != nil {
			return err
		}
		c.nodes, c.Seeds = append(c.nodes, r), append(c.Seeds, r.Addr())
		c.checks = append(c.checks, redis.NewClient(checkOptions(r.Addr())))
	}
	if err := c.create(ctx, cli, opts); err != nil {
		return err
	}
	return c.WaitHealthy(ctx)
}

// create joins the nodes into a cluster with redis-cli --cluster create: it shares the
// slots among opts.Masters of them, and makes the others their replicas.
func (c *Cluster) create(ctx context.Context, cli string, opts ClusterOptions) error {
	args := slices.Concat([]string{cli, "--cluster", "create"}, c.Seeds,
		[]string{"--cluster-replicas", strconv.Itoa(opts.ReplicasPerMaster), "--cluster-yes"})
	p, err := Start(Spec{Name: "redis-cli --cluster create", Args: args, Log: filepath.Join(opts.Dir, "cluster-create.log")})
	if err != nil {
		return err
	}
	defer p.Kill()
	err = WaitUntil(ctx, groupWaitLimit, p.Name()+" to finish", p.Exited)
	switch {
	case err != nil:
		return fmt.Errorf("join the Redis Cluster: %w; end of its log %s:\n%s", err, p.LogPath(), p.Tail(groupTailLines))
	case !p.State().Success():
		return fmt.Errorf("join the Redis Cluster: %w", p.ExitError())
	}
	return nil
}

// Nodes are every node of the cluster, in the order of Seeds.
func (c *Cluster) Nodes() []*Redis { return slices.Clone(c.nodes) }

// Masters are the nodes that serve slots now, as the first node that answers sees it.
func (c *Cluster) Masters(ctx context.Context) ([]*Redis, error) {
	view, err := firstAnswer(ctx, c.nodes, c.checks, c.view)
	if err != nil {
		return nil, fmt.Errorf("find the masters of the Redis Cluster: %w", err)
	}
	var masters []*Redis
	for _, r := range c.nodes {
		if i := slices.IndexFunc(view, func(n clusterNode) bool { return n.addr == r.Addr() }); i >= 0 && view[i].servesSlots() {
			masters = append(masters, r)
		}
	}
	return masters, nil
}

// MasterOf is the node that serves the slot of key now, as the first node that answers
// sees it (CLUSTER KEYSLOT, then CLUSTER SLOTS).
func (c *Cluster) MasterOf(ctx context.Context, key string) (*Redis, error) {
	m, err := firstAnswer(ctx, c.nodes, c.checks, func(ctx context.Context, check *redis.Client) (*Redis, error) {
		return c.masterOf(ctx, check, key)
	})
	if err != nil {
		return nil, fmt.Errorf("find the master of key %q: %w", key, err)
	}
	return m, nil
}

// masterOf is the node that serves the slot of key, as the node check talks to sees it.
func (c *Cluster) masterOf(ctx context.Context, check *redis.Client, key string) (*Redis, error) {
	slot, err := check.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	ranges, err := check.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, err
	}
	for _, r := range ranges {
		if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) > 0 {
			if m := byAddr(c.nodes, r.Nodes[0].Addr); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("slot %d is served by %s, not a node of the cluster", slot, r.Nodes[0].Addr)
		}
	}
	return nil, fmt.Errorf("no node serves slot %d", slot)
}

// Kill kills node with SIGKILL, as a crash would: node.Kill, here so that a test of the
// cluster reads as one.
func (c *Cluster) Kill(node *Redis) { node.Kill() }

// Restart starts node again on its port, data and cluster state, killing it first if it
// runs. It returns once the node answers; WaitHealthy waits for it to rejoin.
func (c *Cluster) Restart(ctx context.Context, node *Redis) error {
	if !slices.Contains(c.nodes, node) {
		return fmt.Errorf("restart %s: not a node of the cluster", node.Addr())
	}
	return node.Restart(ctx)
}

// WaitHealthy waits until every running node finds the cluster ok with every slot served,
// knows every node, and sees every running node connected and not failing, as a master or
// as the replica of the same master as the others see it; every running replica is in
// sync; and every slot is served by a running node. After a master is killed, that is once
// its replica has taken over; after a node is restarted, once it has rejoined.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	return waitHealthy(ctx, "the Redis Cluster to be healthy", c.nodes, c.healthy)
}

// healthy says what keeps the cluster from being healthy, or nil.
func (c *Cluster) healthy(ctx context.Context) error {
	var first string // the roles of the running nodes, as the first running node sees them
	for i, check := range c.checks {
		r := c.nodes[i]
		if !running(r) {
			continue
		}
		roles, err := c.nodeHealthy(ctx, check)
		if err != nil {
			return fmt.Errorf("node %s: %w", r.Addr(), err)
		}
		if first == "" {
			first = roles
		} else if roles != first {
			return fmt.Errorf("the nodes disagree on the roles:\n%s\nand, as %s sees them:\n%s", first, r.Addr(), roles)
		}
	}
	return nil
}

// nodeHealthy says what keeps the node check talks to from finding the cluster healthy,
// or returns the roles it sees of the running nodes, a line each, in the order of their
// addresses.
func (c *Cluster) nodeHealthy(ctx context.Context, check *redis.Client) (string, error) {
	text, err := check.ClusterInfo(ctx).Result()
	if err != nil {
		return "", fmt.Errorf("CLUSTER INFO: %w", err)
	}
	info := infoFields(text)
	if info["cluster_state"] != "ok" || info["cluster_slots_ok"] != strconv.Itoa(slotCount) || info["cluster_known_nodes"] != strconv.Itoa(len(c.nodes)) {
		return "", fmt.Errorf("state %s, %s slots ok of %d, knows %s nodes of %d",
			info["cluster_state"], info["cluster_slots_ok"], slotCount, info["cluster_known_nodes"], len(c.nodes))
	}
	view, err := c.view(ctx, check)
	if err != nil {
		return "", err
	}
	var roles []string
	for _, n := range view {
		r := byAddr(c.nodes, n.addr)
		switch {
		case r == nil:
			return "", fmt.Errorf("knows %s, not a node of the cluster", n.addr)
		case !running(r) && n.servesSlots():
			return "", fmt.Errorf("sees slots served by %s, which is down", n.addr)
		case !running(r):
			continue
		case n.failing():
			return "", fmt.Errorf("sees %s as %s, link %s", n.addr, strings.Join(n.flags, ","), n.link)
		}
		roles = append(roles, n.addr+" "+n.role(view))
		if n.myself() && n.replica() {
			if err := inSync(ctx, check); err != nil {
				return "", err
			}
		}
	}
	slices.Sort(roles) // each node lists the nodes in an order of its own
	return strings.Join(roles, "\n"), nil
}

// inSync says why the replica check talks to is not in sync with its master, or nil.
func inSync(ctx context.Context, check *redis.Client) error {
	repl, err := replication(ctx, check)
	if err != nil {
		return fmt.Errorf("INFO replication: %w", err)
	}
	if repl["master_link_status"] != "up" {
		return fmt.Errorf("replica of port %s, link %s", repl["master_port"], repl["master_link_status"])
	}
	return nil
}

// view is the cluster as the node check talks to sees it (CLUSTER NODES).
func (c *Cluster) view(ctx context.Context, check *redis.Client) ([]clusterNode, error) {
	text, err := check.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES: %w", err)
	}
	return parseClusterNodes(text)
}

// Client returns a ClusterClient of the cluster, seeded with every node. The caller closes
// it.
//
// It reloads the map of the slots once it is a second old. With go-redis's default (a
// minute), a client keeps sending the slots of a killed master to it long after its replica
// has taken them over: only a MOVED reply makes it reload sooner, and a dead node sends
// none.
func (c *Cluster) Client() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: slices.Clone(c.Seeds), ClusterStateReloadInterval: clientReloadInterval})
}

// clientReloadInterval is how old the map of the slots of a Client may grow before it is
// reloaded.
const clientReloadInterval = time.Second

// Close kills every node of the cluster.
func (c *Cluster) Close() {
	for _, r := range c.nodes {
		r.Kill()
	}
	closeAll(c.checks)
}

// clusterNode is a line of CLUSTER NODES: a node as another node (or itself) sees it.
type clusterNode struct {
	id       string
	addr     string   // host:port
	flags    []string // myself, master, slave, fail?, fail, handshake, noaddr, nofailover
	masterID string   // for a replica, the id of its master; else "-"
	link     string   // connected or disconnected
	slots    []string // the slots it serves: "0-5460", "5461"...
}

// parseClusterNodes reads the reply of CLUSTER NODES: a line per node, of
// "id host:port@bus[,hostname] flags master ping-sent pong-received epoch link slot...".
func parseClusterNodes(text string) ([]clusterNode, error) {
	var nodes []clusterNode
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES line %q: want at least 8 fields", strings.TrimSpace(line))
		}
		addr, _, _ := strings.Cut(f[1], "@")
		nodes = append(nodes, clusterNode{id: f[0], addr: addr, flags: strings.Split(f[2], ","),
			masterID: f[3], link: f[7], slots: f[8:]})
	}
	return nodes, nil
}

// has reports whether the node has flag.
func (n clusterNode) has(flag string) bool { return slices.Contains(n.flags, flag) }

// myself reports whether this is the line of the node that answered.
func (n clusterNode) myself() bool { return n.has("myself") }

// replica reports whether the node is a replica.
func (n clusterNode) replica() bool { return n.has("slave") }

// servesSlots reports whether the node is a master that serves slots.
func (n clusterNode) servesSlots() bool { return n.has("master") && len(n.slots) > 0 }

// failing reports whether the node is seen failing, not yet known, or not connected.
func (n clusterNode) failing() bool {
	return n.has("fail") || n.has("fail?") || n.has("handshake") || n.has("noaddr") || (!n.myself() && n.link != "connected")
}

// role is "master" or "replica of host:port", the master's address found in view.
func (n clusterNode) role(view []clusterNode) string {
	if !n.replica() {
		return "master"
	}
	if i := slices.IndexFunc(view, func(m clusterNode) bool { return m.id == n.masterID }); i >= 0 {
		return "replica of " + view[i].addr
	}
	return "replica of unknown node " + n.masterID
}
