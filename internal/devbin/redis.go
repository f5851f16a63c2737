package devbin

import (
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
	// "--cluster-enabled", "yes" for a Cluster node.
	Args []string
	// Port is the port to listen on. If zero, a free one is picked.
	Port int
}

// Redis is a redis-server on a loopback port, started by StartRedis. It can be killed and
// restarted on the same port and data. Every start checks that the server answering on the
// port is the process it started: another Redis may hold the port, and would answer a PING
// just as well.
//
// A Sentinel or the node of a Cluster is the same thing with other arguments (a sentinel.conf
// and --sentinel, or --cluster-enabled yes), so that groups of them are built from Redis
// values and their Kill and Restart.
type Redis struct {
	// Port is the port the server listens on, on 127.0.0.1.
	Port int
	args []string   // the whole command line, the same at every start
	log  string     // where the output of every start goes
	proc *Process   // the current process
	all  []*Process // every process started, oldest first
}

// redisStartTimeout bounds the wait for a started redis-server to answer.
const redisStartTimeout = 30 * time.Second

// StartRedis starts a redis-server on 127.0.0.1 in opts.Dir, configured as the tests want
// it: no RDB snapshots, maxmemory-policy noeviction (as longhaul requires), AOF only when
// asked. It returns once that server answers. On a port it picked itself, it tries another
// free port when the first is taken meanwhile.
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
		port := opts.Port
		if port == 0 {
			if port, err = FreePort(); err != nil {
				return nil, err
			}
		}
		r := &Redis{Port: port, log: log, args: append(redisArgs(bin, port, opts), opts.Args...)}
		err = r.start(ctx)
		if err == nil {
			return r, nil
		}
		if opts.Port != 0 || try == 3 || ctx.Err() != nil {
			return nil, err
		}
	}
}

// redisArgs is the command line of a server on port, without opts.Args.
func redisArgs(bin string, port int, opts RedisOptions) []string {
	args := []string{bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", opts.Dir,
		"--save", "", "--maxmemory-policy", "noeviction"}
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
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1, DialTimeout: time.Second})
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
