package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// openRedis connects to REDIS_URL, or, in serve mode without it, starts an embedded
// in-memory Redis. The returned function closes the client and stops the embedded server.
func openRedis(ctx context.Context, cfg config, m mode, log *slog.Logger) (redis.UniversalClient, func(), error) {
	url, stopEmbedded := cfg.RedisURL, func() {}
	if url == "" {
		if m != modeServe {
			return nil, nil, fmt.Errorf("REDIS_URL is required by `longhaul %s`: set it to your Redis, like redis://localhost:6379/0 (only `longhaul serve` can run on an embedded Redis)", m)
		}
		addr, stop, err := startEmbedded()
		if err != nil {
			return nil, nil, err
		}
		log.Warn("REDIS_URL is unset: using an embedded in-memory Redis. Jobs will NOT survive a restart of this process; set REDIS_URL to keep them.")
		url, stopEmbedded = "redis://"+addr, stop
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		stopEmbedded()
		return nil, nil, fmt.Errorf("REDIS_URL cannot be read (%v); use a URL like redis://:password@host:6379/0", redactErr(err, url))
	}
	// Fail fast when Redis is away: the API answers 503 and the client retries, rather
	// than a request hanging through go-redis's default retries.
	opts.DialTimeout = 2 * time.Second
	opts.MaxRetries = 1
	if opts.PoolSize == 0 {
		opts.PoolSize = 64
	}
	rdb := redis.NewClient(opts)
	if cfg.RedisURL != "" {
		if err := checkEviction(ctx, rdb, cfg.AllowEviction, log); err != nil {
			rdb.Close()
			return nil, nil, err
		}
	}
	return rdb, func() { rdb.Close(); stopEmbedded() }, nil
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
