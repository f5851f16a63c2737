package limits

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/redis/go-redis/v9"
)

// admitScript takes a place among a principal's unfinished jobs and reserves the bytes the
// job will store, unless either cap is reached: {1} when admitted, {0, "jobs"|"bytes"} when
// not. KEYS: unfinished (job → created ms), stored (job → bytes), bytes (their sum).
// ARGV: job id, now (ms), bytes, cap on unfinished jobs, cap on bytes, TTL of the unfinished
// index (ms), TTL of the stored index (ms).
var admitScript = redis.NewScript(`
local unfinished, stored, total = KEYS[1], KEYS[2], KEYS[3]
local bytes, maxJobs, maxBytes = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if maxJobs > 0 and redis.call('ZCARD', unfinished) >= maxJobs then return {0, 'jobs'} end
if maxBytes > 0 and (tonumber(redis.call('GET', total)) or 0) + bytes > maxBytes then return {0, 'bytes'} end
redis.call('ZADD', unfinished, ARGV[2], ARGV[1])
redis.call('ZADD', stored, bytes, ARGV[1])
redis.call('INCRBY', total, bytes)
redis.call('PEXPIRE', unfinished, ARGV[6])
redis.call('PEXPIRE', stored, ARGV[7])
redis.call('PEXPIRE', total, ARGV[7])
return {1}
`)

// forgetScript removes jobs from a principal's indexes, and their bytes from the sum.
// KEYS: unfinished, stored, bytes. ARGV: "1" to forget the jobs' bytes too, then job ids.
var forgetScript = redis.NewScript(`
for i = 2, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
  if ARGV[1] == '1' then
    local bytes = redis.call('ZSCORE', KEYS[2], ARGV[i])
    if bytes then
      redis.call('ZREM', KEYS[2], ARGV[i])
      redis.call('DECRBY', KEYS[3], bytes)
    end
  end
end
return 1
`)

// leaseScript holds a place in a set of leases (running jobs, live connections) until a
// deadline, unless the set is full: 1 when held, 0 when not. Leases past their deadline
// leave first; a member that holds a lease already renews it. KEYS: the set (member →
// deadline ms). ARGV: member, now (ms), deadline (ms), cap, TTL of the set (ms).
var leaseScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local cap = tonumber(ARGV[4])
if cap > 0 and not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= cap then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`)

func (l *Limits) ledger(p string) []string {
	return []string{key(p, "unfinished"), key(p, "stored"), key(p, "bytes")}
}

// Admit gives job id of principal p a place among p's unfinished jobs and reserves the
// bytes it will store, or says which cap refuses it. Places and bytes of jobs that have
// finished or expired since are given back first, when a cap is reached.
func (l *Limits) Admit(ctx context.Context, p, id string, bytes int64) (Decision, error) {
	if l.cfg.MaxUnfinished <= 0 && l.cfg.MaxStoredBytes <= 0 {
		return allowed, nil
	}
	for try := 0; ; try++ {
		full, err := l.admit(ctx, p, id, bytes)
		if err != nil || full == "" {
			return allowed, err
		}
		if try == 1 {
			return l.refusal(full), nil
		}
		if err := l.forgetEnded(ctx, p, full); err != nil {
			return Decision{}, err
		}
	}
}

func (l *Limits) admit(ctx context.Context, p, id string, bytes int64) (full string, err error) {
	now := l.now()
	// A job stays unfinished at most jobs.ActiveTTLDefault, and is kept its retention after.
	res, err := admitScript.Run(ctx, l.rdb, l.ledger(p), id, now.UnixMilli(), bytes, l.cfg.MaxUnfinished,
		l.cfg.MaxStoredBytes, jobs.ActiveTTLDefault.Milliseconds(), (jobs.ActiveTTLDefault + l.keepFor).Milliseconds()).Slice()
	if err != nil {
		return "", fmt.Errorf("check the caps of %s: %w", p, err)
	}
	if res[0].(int64) == 1 {
		return "", nil
	}
	return res[1].(string), nil
}

func (l *Limits) refusal(full string) Decision {
	d := Decision{RetryAfter: 30 * time.Second}
	if full == "jobs" {
		d.Reason = fmt.Sprintf("at most %d jobs may be unfinished at once; wait for some to finish", l.cfg.MaxUnfinished)
	} else {
		d.Reason = fmt.Sprintf("the jobs of one key may store at most %s until they expire", formatBytes(l.cfg.MaxStoredBytes))
	}
	return d
}

// forgetEnded gives back what finished or expired jobs held: their places among the
// unfinished ones when that cap is full, their bytes when that one is.
func (l *Limits) forgetEnded(ctx context.Context, p, full string) error {
	k := l.ledger(p)
	if full == "jobs" {
		ids, err := l.rdb.ZRange(ctx, k[0], 0, -1).Result()
		if err != nil {
			return fmt.Errorf("read unfinished jobs of %s: %w", p, err)
		}
		open, err := l.jobs.Unfinished(ctx, ids)
		if err != nil {
			return err
		}
		return l.forget(ctx, p, false, minus(ids, open))
	}
	for cursor := uint64(0); ; {
		page, next, err := l.rdb.ZScan(ctx, k[1], cursor, "", 500).Result()
		if err != nil {
			return fmt.Errorf("read stored jobs of %s: %w", p, err)
		}
		var ids []string
		for i := 0; i < len(page); i += 2 {
			ids = append(ids, page[i])
		}
		kept, err := l.jobs.Existing(ctx, ids)
		if err != nil {
			return err
		}
		if err := l.forget(ctx, p, true, minus(ids, kept)); err != nil {
			return err
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// Release gives back what Admit took for job id, when the job could not be created.
func (l *Limits) Release(ctx context.Context, p, id string) error {
	return l.forget(ctx, p, true, []string{id})
}

func (l *Limits) forget(ctx context.Context, p string, bytes bool, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	forgetBytes := "0"
	if bytes {
		forgetBytes = "1"
	}
	args := []any{forgetBytes}
	for _, id := range ids {
		args = append(args, id)
	}
	if err := forgetScript.Run(ctx, l.rdb, l.ledger(p), args...).Err(); err != nil {
		return fmt.Errorf("give back the caps of %s: %w", p, err)
	}
	return nil
}

// minus returns the elements of all that are not in some.
func minus(all, some []string) []string {
	in := make(map[string]bool, len(some))
	for _, s := range some {
		in[s] = true
	}
	var out []string
	for _, a := range all {
		if !in[a] {
			out = append(out, a)
		}
	}
	return out
}

// StartRunning gives job id of principal p one of p's places among running jobs until
// deadline, and reports false when p runs as many jobs as it may. The place is given back
// by StopRunning, or at the deadline if its worker died.
func (l *Limits) StartRunning(ctx context.Context, p, id string, deadline time.Time) (bool, error) {
	return l.lease(ctx, key(p, "running"), id, deadline, l.cfg.MaxRunning)
}

// StopRunning gives back the place of a job that stopped running.
func (l *Limits) StopRunning(ctx context.Context, p, id string) error {
	if l.cfg.MaxRunning <= 0 {
		return nil
	}
	return l.rdb.ZRem(ctx, key(p, "running"), id).Err()
}

// OpenLive gives connection conn of principal p a place among p's live connections for
// LiveLease, and reports false when p holds as many as it may. RenewLive keeps the places
// of the connections that stay open.
func (l *Limits) OpenLive(ctx context.Context, p, conn string) (bool, error) {
	return l.lease(ctx, key(p, "live"), conn, l.now().Add(LiveLease), l.cfg.MaxLive)
}

// LiveLease is how long a live connection's place lasts unless renewed: a process that dies
// gives its connections' places back within it.
const LiveLease = 90 * time.Second

// RenewLive extends the places of open connections, by principal.
func (l *Limits) RenewLive(ctx context.Context, open map[string][]string) error {
	if l.cfg.MaxLive <= 0 || len(open) == 0 {
		return nil
	}
	deadline := float64(l.now().Add(LiveLease).UnixMilli())
	_, err := l.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for p, conns := range open {
			members := make([]redis.Z, len(conns))
			for i, c := range conns {
				members[i] = redis.Z{Score: deadline, Member: c}
			}
			pipe.ZAddXX(ctx, key(p, "live"), members...)
			pipe.PExpire(ctx, key(p, "live"), 2*LiveLease)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("renew live connections: %w", err)
	}
	return nil
}

// CloseLive gives back the place of a connection that closed.
func (l *Limits) CloseLive(ctx context.Context, p, conn string) error {
	if l.cfg.MaxLive <= 0 {
		return nil
	}
	return l.rdb.ZRem(ctx, key(p, "live"), conn).Err()
}

func (l *Limits) lease(ctx context.Context, set, member string, deadline time.Time, limit int) (bool, error) {
	if limit <= 0 {
		return true, nil
	}
	now := l.now()
	ttl := max(deadline.Sub(now), LiveLease) * 2
	held, err := leaseScript.Run(ctx, l.rdb, []string{set}, member, now.UnixMilli(), deadline.UnixMilli(), limit,
		ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("check the cap of %s: %w", set, err)
	}
	return held == 1, nil
}

// formatBytes writes a size the way the settings take it.
func formatBytes(n int64) string {
	for _, u := range []struct {
		unit string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + " " + u.unit
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
