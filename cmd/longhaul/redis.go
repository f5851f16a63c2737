package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// openRedis connects to the Redis the settings name (one server, a Sentinel group or a
// Cluster), or, in serve mode without any, starts an embedded in-memory Redis. It checks
// every master before it returns. The returned function closes the client and stops the
// embedded server.
func openRedis(ctx context.Context, cfg config, m mode, log *slog.Logger) (redis.UniversalClient, func(), error) {
	t := cfg.Redis
	if t.embedded() {
		if m != modeServe {
			return nil, nil, fmt.Errorf("REDIS_URL is required by `longhaul %s`: set it to your Redis, like redis://localhost:6379/0 (or REDIS_SENTINEL_ADDRS or REDIS_CLUSTER_ADDRS; only `longhaul serve` can run on an embedded Redis)", m)
		}
		addr, stop, err := startEmbedded()
		if err != nil {
			return nil, nil, err
		}
		log.Warn("REDIS_URL is unset: using an embedded in-memory Redis. Jobs will NOT survive a restart of this process; set REDIS_URL to keep them.")
		rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 2 * time.Second, MaxRetries: 1, PoolSize: 64})
		return rdb, func() { rdb.Close(); stop() }, nil
	}
	rdb, err := t.client()
	if err != nil {
		return nil, nil, err
	}
	if err := checkServers(ctx, rdb, cfg.AllowEviction, t.Cluster(), log); err != nil {
		rdb.Close()
		return nil, nil, err
	}
	return rdb, func() { rdb.Close() }, nil
}

// redisTarget is the Redis deployment the settings name: one server (REDIS_URL), a
// Sentinel group (REDIS_SENTINEL_ADDRS and REDIS_SENTINEL_MASTER) or a Cluster
// (REDIS_CLUSTER_ADDRS, its seed nodes); none for the embedded Redis of `longhaul serve`.
type redisTarget struct {
	URL              string
	SentinelAddrs    []string
	SentinelMaster   string
	SentinelPassword string
	ClusterAddrs     []string
	// Username and Password are the data nodes' credentials, for a Sentinel group or a
	// Cluster; REDIS_URL carries its own.
	Username, Password string
}

func (t redisTarget) embedded() bool {
	return t.URL == "" && len(t.SentinelAddrs) == 0 && len(t.ClusterAddrs) == 0
}

// Cluster reports whether the target is a Redis Cluster.
func (t redisTarget) Cluster() bool { return len(t.ClusterAddrs) > 0 }

// Fail fast when Redis is away: the API answers 503 and the client retries, rather than a
// request hanging through go-redis's default retries (five dials, then the command again).
// A server that refuses two dials is down, or a failover is under way.
const (
	redisDialTimeout = 2 * time.Second
	redisDialRetries = 2
	redisPoolSize    = 64
)

// A Cluster client learns which node serves which slot from the cluster, and learns it again
// after a failover only when told (a MOVED, or its reload interval, a minute by default).
// A master that died answers nothing, not MOVED: until then every command of its slots
// would go on dialling it. So a lost node or a cluster that says it is down makes the client
// reload at once (clusterWatch), and a short interval bounds how stale it can get otherwise.
// While a failover is under way (a second or two), commands of the dead master's slots
// fail: the API answers 503 and workers retry.
const (
	clusterReloadInterval = 5 * time.Second
	// clusterMaxRedirects follows a slot through a failover and a resharding step or two.
	clusterMaxRedirects = 5
)

func (t redisTarget) client() (redis.UniversalClient, error) {
	switch {
	case t.Cluster():
		cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: t.ClusterAddrs, Username: t.Username,
			Password: t.Password, DialTimeout: redisDialTimeout, DialerRetries: redisDialRetries,
			MaxRedirects: clusterMaxRedirects, ClusterStateReloadInterval: clusterReloadInterval,
			PoolSize: redisPoolSize})
		cc.OnNewNode(func(node *redis.Client) { node.AddHook(clusterWatch{cc}) })
		return cc, nil
	case len(t.SentinelAddrs) > 0:
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: t.SentinelMaster,
			SentinelAddrs: t.SentinelAddrs, SentinelPassword: t.SentinelPassword, Username: t.Username,
			Password: t.Password, DialTimeout: redisDialTimeout, DialerRetries: redisDialRetries, MaxRetries: 1,
			PoolSize: redisPoolSize}), nil
	}
	opts, err := redis.ParseURL(t.URL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL cannot be read (%v); use a URL like redis://:password@host:6379/0", redactErr(err, t.URL))
	}
	opts.DialTimeout, opts.DialerRetries, opts.MaxRetries = redisDialTimeout, redisDialRetries, 1
	if opts.PoolSize == 0 {
		opts.PoolSize = redisPoolSize
	}
	return redis.NewClient(opts), nil
}

// clusterWatch, on the client of each node of a Cluster, reloads the Cluster client's map
// of slots when a command to the node fails in a way that says the map may be wrong: the
// node does not answer (killed, or cut off: its replica takes over) or the cluster is down
// (a failover under way). The reload runs in the background, at most one at a time, so the
// Cluster client's own retries of the command already find the new master.
type clusterWatch struct{ cc *redis.ClusterClient }

func (w clusterWatch) DialHook(next redis.DialHook) redis.DialHook { return next }

func (w clusterWatch) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		w.check(err)
		return err
	}
}

func (w clusterWatch) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		w.check(err)
		return err
	}
}

func (w clusterWatch) check(err error) {
	if topologyChanged(err) {
		w.cc.ReloadState(context.Background())
	}
}

// topologyChanged reports whether err says that the cluster's map of slots may have changed
// under the client: an error of the network (a refused dial, a timeout: a master cut off
// times out rather than refuses), or CLUSTERDOWN. An answer of Redis (a nil reply, a
// script's error) and a caller that gave up say nothing of the kind.
func topologyChanged(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var answer redis.Error
	if errors.As(err, &answer) {
		return strings.HasPrefix(answer.Error(), "CLUSTERDOWN")
	}
	return true
}

// checkServers checks every master (every node of a Cluster that serves slots): that it
// takes longhaul's credentials, does not evict keys, and is recent enough for what longhaul
// asks of it.
func checkServers(ctx context.Context, rdb redis.UniversalClient, allowEviction, cluster bool, log *slog.Logger) error {
	if err := checkCredentials(ctx, rdb); err != nil {
		return err
	}
	check := func(ctx context.Context, c *redis.Client) error {
		if err := checkVersion(ctx, c, cluster); err != nil {
			return err
		}
		return checkEviction(ctx, c, allowEviction, log)
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, check)
	}
	return check(ctx, rdb.(*redis.Client))
}

// checkVersion refuses a Redis older than what longhaul uses: GETDEL (6.2) for tickets and,
// on a Cluster, sharded pub/sub (7.0). A server that does not say is let be.
func checkVersion(ctx context.Context, c *redis.Client, cluster bool) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return nil
	}
	var major, minor int
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			fmt.Sscanf(v, "%d.%d", &major, &minor)
		}
	}
	need, what := [2]int{6, 2}, "6.2 (for GETDEL)"
	if cluster {
		need, what = [2]int{7, 0}, "7.0 on a Cluster (for sharded pub/sub)"
	}
	if major == 0 || major > need[0] || (major == need[0] && minor >= need[1]) {
		return nil
	}
	return fmt.Errorf("Redis at %s is %d.%d; longhaul needs at least %s: upgrade it", c.Options().Addr, major, minor, what)
}

// ownsProcessLog says that run's log is the process's own (main sets it): go-redis has one
// logger per process, which only the process's owner may take.
var ownsProcessLog bool

// redisLog is go-redis's logger as a line of longhaul's log: what go-redis says of itself (a
// dial that failed, a Sentinel that named a new master) comes in the log's format, JSON
// too, instead of a line of its own on stderr. The Sentinels' news is information; the
// rest says that something failed.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "sentinel: ") {
		level = slog.LevelInfo
	}
	l.log.Log(ctx, level, msg)
}

// startEmbedded runs miniredis on a free loopback port. miniredis expires keys only when
// told that time passed, so a ticker advances its clock with the real one.
func startEmbedded() (string, func(), error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return "", nil, fmt.Errorf("start embedded redis: %w", err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case now := <-t.C:
				mr.FastForward(now.Sub(last))
				last = now
			case <-done:
				return
			}
		}
	})
	return mr.Addr(), func() { close(done); wg.Wait(); mr.Close() }, nil
}

// checkCredentials refuses a Redis that refuses longhaul's credentials: every request would
// fail. A Redis that does not answer yet is let be: the API answers 503 until it does.
func checkCredentials(ctx context.Context, rdb redis.UniversalClient) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := rdb.Ping(ctx).Err()
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, refusal := range []string{"NOAUTH", "WRONGPASS", "invalid password", "invalid username-password", "NOPERM"} {
		if strings.Contains(msg, refusal) {
			return fmt.Errorf("Redis refuses longhaul's credentials (%s): put the right user and password in REDIS_URL, like redis://user:password@host:6379/0",
				strings.SplitN(msg, " ", 2)[0])
		}
	}
	return nil
}

// checkEviction refuses a Redis that evicts keys under memory pressure, unless the operator
// opts out: eviction silently loses jobs, tasks and leases.
func checkEviction(ctx context.Context, rdb redis.UniversalClient, allow bool, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	res, err := rdb.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		// Managed services often refuse CONFIG; Redis may also still be starting.
		log.Warn("could not read Redis maxmemory-policy; make sure it is noeviction", "err", err)
		return nil
	}
	policy := res["maxmemory-policy"]
	if policy == "" || policy == "noeviction" {
		return nil
	}
	if allow {
		log.Error("Redis maxmemory-policy evicts keys: jobs and their leases can silently disappear", "policy", policy)
		return nil
	}
	return fmt.Errorf("Redis maxmemory-policy is %q, which silently loses jobs under memory pressure: set it to noeviction (CONFIG SET maxmemory-policy noeviction), or set LONGHAUL_ALLOW_EVICTION=true to run anyway", policy)
}

// redactErr keeps a password in REDIS_URL out of error messages.
func redactErr(err error, url string) string {
	msg := err.Error()
	if i := strings.Index(url, "@"); i > 0 {
		msg = strings.ReplaceAll(msg, url[:i], "<redacted>")
	}
	return msg
}
