package devbin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configure StartRedis.
type RedisOptions struct {
	// Dir holds the server's data, and its log unless Log says otherwise; it is created if
	// missing. Required.
	Dir string
	// Log is the file the server's output is appended to. If empty, Dir/redis.log is used.
	Log string
	// AppendOnly turns on AOF persistence with fsync every second, as in production. If
	// false, nothing is persisted.
	AppendOnly bool
	// Args are more redis-server arguments, after the kit's own: "--maxclients", "1000", or
	// "--sentinel" for a Sentinel.
	Args []string
	// Port is the port to listen on. If zero, a free one is picked.
	Port int
	// Config is a configuration file, given to redis-server before every other argument
	// (only there does it read one). The server may rewrite it: CONFIG REWRITE, which a Sentinel sends
	// to the servers it reconfigures, and a Sentinel's record of what it knows. The command
	// line's settings win over the file's at every start. If empty, no file is used.
	Config string
	// ClusterNode makes the server a node of a Redis Cluster: cluster-enabled, its state in
	// Dir/nodes.conf, and its cluster bus on a free port of its own (Redis's default, the
	// port + 10000, may be taken or past 65535).
	ClusterNode bool
}

// Redis is a redis-server on a loopback port, started by StartRedis. It can be killed and
// restarted on the same port and data. Every start checks that the server answering on the
// port is the process it started: another Redis may hold the port, and would answer a PING
// just as well.
//
// A Sentinel or the node of a Cluster is the same thing with other options (a Config and
// --sentinel, or ClusterNode), so that StartSentinelGroup and StartCluster build their
// groups from Redis values and their Kill and Restart.
type Redis struct {
	// Port is the port the server listens on, on 127.0.0.1.
	Port int
	// BusPort is the port of its cluster bus, on 127.0.0.1, for a Cluster node; else zero.
	BusPort int
	args    []string   // the whole command line, the same at every start
	log     string     // where the output of every start goes
	proc    *Process   // the current process
	all     []*Process // every process started, oldest first
}

// redisStartTimeout bounds the wait for a started redis-server to answer.
const redisStartTimeout = 30 * time.Second

// StartRedis starts a redis-server on 127.0.0.1 in opts.Dir, configured as the tests want
// it: no RDB snapshots, maxmemory-policy noeviction (as longhaul requires), AOF only when
// asked, replicas synced without delay. It returns once that server answers. On a port it
// picked itself, it tries another free port when the first is taken meanwhile.
func StartRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found: run scripts/ensure-redis.sh (make test-deps does), or apt-get install -y redis-server")
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	log := opts.Log
	if log == "" {
		log = filepath.Join(opts.Dir, "redis.log")
	}
	for try := 1; ; try++ {
		r, err := newRedis(bin, log, opts)
		if err != nil {
			return nil, err
		}
		err = r.start(ctx)
		if err == nil {
			return r, nil
		}
		if opts.Port != 0 || try == 3 || ctx.Err() != nil {
			return nil, err
		}
	}
}

// newRedis is a server of opts that is not started yet, on opts.Port or free ports.
func newRedis(bin, log string, opts RedisOptions) (*Redis, error) {
	// Two free ports: the first for the server unless opts.Port names one, and the one of
	// them that is not the server's for a Cluster node's bus.
	ports, err := FreePorts(2)
	if err != nil {
		return nil, err
	}
	r := &Redis{Port: cmp.Or(opts.Port, ports[0]), log: log}
	if opts.ClusterNode {
		r.BusPort = ports[0]
		if r.BusPort == r.Port {
			r.BusPort = ports[1]
		}
	}
	r.args = append(r.command(bin, opts), opts.Args...)
	return r, nil
}

// command is the command line of the server, without opts.Args.
func (r *Redis) command(bin string, opts RedisOptions) []string {
	args := []string{bin}
	if opts.Config != "" {
		args = append(args, opts.Config)
	}
	args = append(args, "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--dir", opts.Dir,
		"--save", "", "--maxmemory-policy", "noeviction",
		// A replica's first sync starts at once, not after 5 s of waiting for more replicas.
		"--repl-diskless-sync-delay", "0")
	if opts.ClusterNode {
		args = append(args, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(r.BusPort),
			"--cluster-config-file", filepath.Join(opts.Dir, "nodes.conf"))
	}
	if opts.AppendOnly {
		return append(args, "--appendonly", "yes", "--appendfsync", "everysec")
	}
	return append(args, "--appendonly", "no")
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL is the server's address as REDIS_URL takes it.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Process is the server's current process.
func (r *Redis) Process() *Process { return r.proc }

// Processes are every process of the server so far, oldest first: one per start.
func (r *Redis) Processes() []*Process { return append([]*Process(nil), r.all...) }

// Kill stops the server at once with SIGKILL, as a crash would, and waits for it to be
// gone. What AOF had not yet written to disk is lost, as in a crash.
func (r *Redis) Kill() {
	if r.proc != nil {
		r.proc.Kill()
	}
}

// Restart kills the server if it runs, and starts it again on the same port and data.
func (r *Redis) Restart(ctx context.Context) error {
	r.Kill()
	return r.start(ctx)
}

// start starts a process of the server and waits until it answers as itself: until the
// process_id that INFO reports is the pid of the process started.
func (r *Redis) start(ctx context.Context) error {
	p, err := Start(Spec{Name: "redis-server on port " + strconv.Itoa(r.Port), Args: r.args, Log: r.log})
	if err != nil {
		return err
	}
	r.proc, r.all = p, append(r.all, p)
	c := redis.NewClient(checkOptions(r.Addr()))
	defer c.Close()
	var stranger int // the pid of another server that answers on the port
	err = WaitUntil(ctx, redisStartTimeout, p.Name()+" to answer", func() bool {
		pid, err := serverPID(ctx, c)
		if err == nil && pid != p.PID() {
			stranger = pid
		}
		return p.Exited() || (err == nil && pid == p.PID())
	})
	switch {
	case p.Exited():
		return fmt.Errorf("start %s: %w", p.Name(), p.ExitError())
	case err != nil && stranger != 0:
		p.Kill()
		return fmt.Errorf("start %s: another redis-server (pid %d) answers on the port: %w", p.Name(), stranger, err)
	case err != nil:
		p.Kill()
		return fmt.Errorf("start %s: %w; end of its log %s:\n%s", p.Name(), err, r.log, p.Tail(20))
	}
	return nil
}

// checkOptions are the options of the kit's own clients, which check servers while a wait
// polls them: one try and short timeouts, so that a dead or stopped server makes a check
// fail at once instead of stalling the wait.
func checkOptions(addr string) *redis.Options {
	return &redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second,
		WriteTimeout: time.Second, PoolSize: 2, DisableIdentity: true}
}

// serverPID is the process_id the server at c reports in INFO server.
func serverPID(ctx context.Context, c *redis.Client) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server has no process_id")
}
