// Package limits keeps each principal (an API key, or a client address when auth is off)
// within its share: how fast it creates jobs, how many of its jobs are unfinished or
// running, how many bytes its jobs store, how many live connections it holds, and how many
// of its requests find nothing. Every count lives in Redis, so all API instances and
// workers share it.
//
// Each limit is off when set to 0. The creation and not-found rates are GCRA limiters
// (github.com/go-redis/redis_rate); the caps are sorted sets, one script per check, all
// keys of one principal in one hash slot.
package limits

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Defaults of Config, also the defaults of the settings that configure them.
const (
	CreateRateDefault     = 10  // jobs a second
	CreateBurstDefault    = 20  // jobs at once
	NotFoundRateDefault   = 30  // answers of 404 a minute
	MaxUnfinishedDefault  = 100 // jobs not finished
	MaxRunningDefault     = 10  // jobs running at once, across every worker
	MaxLiveDefault        = 50  // live connections
	MaxJobBytesDefault    = 2 << 30
	MaxStoredBytesDefault = 20 << 30
)

// Config sets each limit of one principal; 0 turns a limit off, so the zero Config (as the
// benchmarks run) limits nothing.
type Config struct {
	// CreateRate is how many jobs a second a principal may create, with bursts of
	// CreateBurst (if zero, CreateRate).
	CreateRate, CreateBurst int
	// NotFoundRate is how many answers of 404 a minute a principal may get, which stops a
	// client guessing job ids.
	NotFoundRate int
	// MaxUnfinished caps a principal's jobs that are not finished.
	MaxUnfinished int
	// MaxRunning caps a principal's jobs that run at once, so that one principal's burst
	// leaves workers to the others.
	MaxRunning int
	// MaxLive caps a principal's open live connections (WebSocket and SSE).
	MaxLive int
	// MaxJobBytes caps what one job may store.
	MaxJobBytes int64
	// MaxStoredBytes caps what a principal's jobs store, until they expire.
	MaxStoredBytes int64
}

// Defaults is the Config a person would pick, and the default of the settings.
func Defaults() Config {
	return Config{CreateRate: CreateRateDefault, CreateBurst: CreateBurstDefault, NotFoundRate: NotFoundRateDefault,
		MaxUnfinished: MaxUnfinishedDefault, MaxRunning: MaxRunningDefault, MaxLive: MaxLiveDefault,
		MaxJobBytes: MaxJobBytesDefault, MaxStoredBytes: MaxStoredBytesDefault}
}

// Jobs tells the limits which jobs still count: the unfinished ones hold a place among a
// principal's unfinished jobs, and the existing ones their bytes.
type Jobs interface {
	// Unfinished returns those of ids that exist and are not finished.
	Unfinished(ctx context.Context, ids []string) ([]string, error)
	// Existing returns those of ids that still exist.
	Existing(ctx context.Context, ids []string) ([]string, error)
}

// Limits checks and counts. It is safe for concurrent use.
type Limits struct {
	cfg     Config
	rdb     redis.UniversalClient
	rate    *redis_rate.Limiter
	jobs    Jobs
	keepFor time.Duration // how long a finished job's bytes may count: its retention
	now     func() time.Time
}

// New returns the limits of cfg on rdb. retention is how long finished jobs are kept.
func New(rdb redis.UniversalClient, jobs Jobs, cfg Config, retention time.Duration) *Limits {
	return &Limits{cfg: cfg, rdb: rdb, rate: redis_rate.NewLimiter(rdb), jobs: jobs, keepFor: retention, now: time.Now}
}

// Config is what the limits are.
func (l *Limits) Config() Config { return l.cfg }

// Decision is the answer to one check: allowed or not, with what the client is told.
type Decision struct {
	Allowed bool
	// Limit, Remaining and Reset describe a rate (the RateLimit-* headers): the burst, what
	// is left of it, and when it is whole again. They are zero for a cap.
	Limit, Remaining int
	Reset            time.Duration
	// RetryAfter is when to try again, when refused.
	RetryAfter time.Duration
	// Reason says, when refused, which limit refused, for people.
	Reason string
}

var allowed = Decision{Allowed: true}

// key names a key of principal p. The principal is hashed: it is the hash tag that keeps a
// principal's keys in one slot, and a client address may hold characters a tag must not.
func key(p, name string) string {
	sum := sha256.Sum256([]byte(p))
	return "longhaul:{lim:" + hex.EncodeToString(sum[:8]) + "}:" + name
}

// AllowCreate counts one job creation by principal p against the creation rate.
func (l *Limits) AllowCreate(ctx context.Context, p string) (Decision, error) {
	if l.cfg.CreateRate <= 0 {
		return allowed, nil
	}
	burst := l.cfg.CreateBurst
	if burst <= 0 {
		burst = l.cfg.CreateRate
	}
	return l.allow(ctx, key(p, "create"), redis_rate.Limit{Rate: l.cfg.CreateRate, Burst: burst, Period: time.Second},
		fmt.Sprintf("at most %d jobs a second (bursts of %d) may be created", l.cfg.CreateRate, burst))
}

// AllowNotFound counts one answer of 404 to principal p against the not-found rate.
func (l *Limits) AllowNotFound(ctx context.Context, p string) (Decision, error) {
	if l.cfg.NotFoundRate <= 0 {
		return allowed, nil
	}
	return l.allow(ctx, key(p, "notfound"), redis_rate.PerMinute(l.cfg.NotFoundRate),
		fmt.Sprintf("too many requests named no job (at most %d a minute)", l.cfg.NotFoundRate))
}

func (l *Limits) allow(ctx context.Context, k string, limit redis_rate.Limit, reason string) (Decision, error) {
	res, err := l.rate.Allow(ctx, k, limit)
	if err != nil {
		return Decision{}, fmt.Errorf("check rate limit: %w", err)
	}
	d := Decision{Allowed: res.Allowed > 0, Limit: limit.Burst, Remaining: res.Remaining,
		Reset: res.ResetAfter, RetryAfter: res.RetryAfter}
	if !d.Allowed {
		d.Reason = reason
	}
	return d, nil
}
