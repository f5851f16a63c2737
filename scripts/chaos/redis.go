package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/redis/go-redis/v9"
)

// The deployments of Redis that -redis names.
const (
	redisSingle  = "single"  // one redis-server with AOF, killed and restarted once
	redisCluster = "cluster" // a Redis Cluster of 3 masters and 3 replicas; one master is killed
)

// startRedis starts the run's Redis (one server, or a Cluster) and says in the settings of
// the longhaul processes how they reach it.
func (c *cluster) startRedis(ctx context.Context) error {
	dir := filepath.Join(c.dir, "redis")
	if c.o.redis == redisCluster {
		rc, err := devbin.StartCluster(ctx, devbin.ClusterOptions{Dir: dir, AppendOnly: true})
		if err != nil {
			return err
		}
		c.redisCluster, c.rdb = rc, rc.Client()
		c.settings["REDIS_CLUSTER_ADDRS"] = strings.Join(rc.Seeds, ",")
		return nil
	}
	r, err := devbin.StartRedis(ctx, devbin.RedisOptions{Dir: dir,
		Log: filepath.Join(c.dir, "logs", "redis.log"), AppendOnly: true})
	if err != nil {
		return err
	}
	c.redis = r
	c.rdb = redis.NewClient(&redis.Options{Addr: r.Addr(), DialTimeout: time.Second,
		ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second, MaxRetries: 2})
	c.settings["REDIS_URL"] = r.URL()
	return nil
}

// redisSummary says, for the run's first lines, what Redis it runs on.
func (c *cluster) redisSummary() string {
	if c.redisCluster != nil {
		return "Redis Cluster " + strings.Join(c.redisCluster.Seeds, ",") + " (3 masters, 3 replicas, AOF everysec)"
	}
	return "redis " + c.redis.Addr() + " (AOF everysec)"
}

// crashRedis is the run's Redis fault: the one server killed with SIGKILL and restarted
// on its data after half a second to a second; or, in a Cluster, a master killed with
// SIGKILL, which its replica replaces, and restarted once it has, to rejoin as a replica.
func (c *cluster) crashRedis(ctx context.Context, rng *rand.Rand, st *stats) {
	if c.redisCluster != nil {
		c.failOverAMaster(ctx, rng, st)
		return
	}
	c.redis.Kill()
	down := time.Duration(float64(500*time.Millisecond) * (1 + rng.Float64()))
	time.Sleep(down)
	st.redisRestarts++
	if err := c.redis.Restart(ctx); err != nil {
		st.failures = append(st.failures, "restart Redis: "+err.Error())
		return
	}
	c.out.printf("Redis killed with SIGKILL and restarted after %v down", down.Round(time.Millisecond))
}

// failOverAMaster kills a random master of the Cluster, waits for its replica to take its
// slots, and restarts it.
func (c *cluster) failOverAMaster(ctx context.Context, rng *rand.Rand, st *stats) {
	rc := c.redisCluster
	masters, err := rc.Masters(ctx)
	if err != nil || len(masters) == 0 {
		st.failures = append(st.failures, fmt.Sprintf("find a master to kill: %v", err))
		return
	}
	victim := masters[rng.IntN(len(masters))]
	begin := time.Now()
	rc.Kill(victim)
	st.redisRestarts++
	if err := rc.WaitHealthy(ctx); err != nil {
		st.failures = append(st.failures, "the Cluster after a master was killed: "+err.Error())
		return
	}
	failedOver := time.Since(begin)
	if err := rc.Restart(ctx, victim); err != nil {
		st.failures = append(st.failures, "restart the killed master: "+err.Error())
		return
	}
	if err := rc.WaitHealthy(ctx); err != nil {
		st.failures = append(st.failures, "the Cluster after the killed master came back: "+err.Error())
		return
	}
	c.out.printf("Redis Cluster master %s killed with SIGKILL: its replica took over in %v; back as a replica %v later",
		victim.Addr(), failedOver.Round(time.Millisecond), (time.Since(begin) - failedOver).Round(time.Millisecond))
}

// redisProcesses are the processes of the run's Redis, every node's in a Cluster.
func (c *cluster) redisProcesses() []*devbin.Process {
	if c.redisCluster == nil {
		return c.redis.Processes()
	}
	var procs []*devbin.Process
	for _, n := range c.redisCluster.Nodes() {
		procs = append(procs, n.Processes()...)
	}
	return procs
}

// stopRedis kills the run's Redis.
func (c *cluster) stopRedis() {
	if c.rdb != nil {
		c.rdb.Close()
	}
	if c.redis != nil {
		c.redis.Kill()
	}
	if c.redisCluster != nil {
		c.redisCluster.Close()
	}
}
