package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/origin"
	"github.com/longhaul-dev/longhaul/storage"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/longhaul-dev/longhaul/worker"
)

// config is every setting of longhaul, read from the environment. The names and defaults
// are listed in the README.
type config struct {
	RedisURL          string
	Addr              string
	StorageDir        string
	FileTimeMin       time.Duration
	FileTimeMax       time.Duration
	FileSizeMax       int64
	FileFailureRate   float64
	FileRetries       int
	MaxFiles          int
	WorkerConcurrency int
	FileConcurrency   int
	PingInterval      time.Duration
	AllowedOrigins    []string
	Retention         time.Duration
	ShutdownTimeout   time.Duration
	AllowEviction     bool
	LogLevel          slog.Level
	LogFormat         string
}

// addrDefault is where serve and api listen unless told otherwise.
const addrDefault = ":3000"

// maxPingInterval keeps live connections inside the idle limits of common proxies.
const maxPingInterval = 25 * time.Second

// loadConfig reads and checks the configuration. It reports every bad setting at once,
// each with what to do about it.
func loadConfig(getenv func(string) string) (config, error) {
	r := envReader{getenv: getenv}
	c := config{
		RedisURL:          strings.TrimSpace(getenv("REDIS_URL")),
		Addr:              r.str("LONGHAUL_ADDR", addrDefault),
		StorageDir:        r.str("LONGHAUL_STORAGE_DIR", storage.DirDefault),
		FileTimeMin:       r.duration("LONGHAUL_FILE_TIME_MIN", origin.TimeMinDefault),
		FileTimeMax:       r.duration("LONGHAUL_FILE_TIME_MAX", origin.TimeMaxDefault),
		FileSizeMax:       r.size("LONGHAUL_FILE_SIZE_MAX", origin.SizeMaxDefault),
		FileFailureRate:   r.fraction("LONGHAUL_FILE_FAILURE_RATE", 0),
		FileRetries:       r.integer("LONGHAUL_FILE_RETRIES", worker.FileRetriesDefault, 0, 100),
		MaxFiles:          r.integer("LONGHAUL_MAX_FILES", api.MaxFilesDefault, 1, 100000),
		WorkerConcurrency: r.integer("LONGHAUL_WORKER_CONCURRENCY", worker.ConcurrencyDefault, 1, 10000),
		FileConcurrency:   r.integer("LONGHAUL_FILE_CONCURRENCY", tasks.FileConcurrencyDefault, 1, 1000),
		PingInterval:      r.duration("LONGHAUL_PING_INTERVAL", api.PingIntervalDefault),
		AllowedOrigins:    r.list("LONGHAUL_ALLOWED_ORIGINS"),
		Retention:         r.duration("LONGHAUL_RETENTION", jobs.RetentionDefault),
		ShutdownTimeout:   r.duration("LONGHAUL_SHUTDOWN_TIMEOUT", worker.ShutdownTimeoutDefault),
		AllowEviction:     r.boolean("LONGHAUL_ALLOW_EVICTION"),
		LogLevel:          r.level("LONGHAUL_LOG_LEVEL"),
		LogFormat:         r.oneOf("LONGHAUL_LOG_FORMAT", "text", "json"),
	}
	if c.FileTimeMax < c.FileTimeMin {
		r.fail("LONGHAUL_FILE_TIME_MAX", "is %v, below LONGHAUL_FILE_TIME_MIN (%v); make it at least as long", c.FileTimeMax, c.FileTimeMin)
	}
	if c.PingInterval <= 0 || c.PingInterval > maxPingInterval {
		r.fail("LONGHAUL_PING_INTERVAL", "is %v; use a duration above 0 and at most %v, so proxies with a 30 s idle limit keep connections open", c.PingInterval, maxPingInterval)
	}
	if c.Retention < time.Minute {
		r.fail("LONGHAUL_RETENTION", "is %v; keep finished jobs at least 1m", c.Retention)
	}
	if c.FileSizeMax < 1 {
		r.fail("LONGHAUL_FILE_SIZE_MAX", "must be at least 1 byte")
	}
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") {
		r.fail("REDIS_URL", "must start with redis:// or rediss://, like redis://localhost:6379/0")
	}
	return c, errors.Join(r.errs...)
}

// envReader reads typed settings and collects what is wrong with them.
type envReader struct {
	getenv func(string) string
	errs   []error
}

func (r *envReader) fail(name, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("%s %s", name, fmt.Sprintf(format, args...)))
}

func (r *envReader) str(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

func (r *envReader) duration(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	if v == "0" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		r.fail(name, "is %q; use a Go duration like 500ms, 10s or 24h", v)
		return def
	}
	return d
}

func (r *envReader) integer(name string, def, lo, hi int) int {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		r.fail(name, "is %q; use a whole number from %d to %d", v, lo, hi)
		return def
	}
	return n
}

func (r *envReader) fraction(name string, def float64) float64 {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1 {
		r.fail(name, "is %q; use a number from 0 to 1, like 0.05", v)
		return def
	}
	return f
}

func (r *envReader) boolean(name string) bool {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(name, "is %q; use true or false", v)
	}
	return b
}

func (r *envReader) list(name string) []string {
	var out []string
	for item := range strings.SplitSeq(r.getenv(name), ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func (r *envReader) oneOf(name string, choices ...string) string {
	v := strings.ToLower(strings.TrimSpace(r.getenv(name)))
	if v == "" {
		return choices[0]
	}
	for _, c := range choices {
		if v == c {
			return v
		}
	}
	r.fail(name, "is %q; use one of %s", v, strings.Join(choices, ", "))
	return choices[0]
}

func (r *envReader) level(name string) slog.Level {
	var l slog.Level
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return slog.LevelInfo
	}
	if err := l.UnmarshalText([]byte(v)); err != nil {
		r.fail(name, "is %q; use debug, info, warn or error", v)
	}
	return l
}

// size reads a byte count: a whole number with an optional unit B, KiB, MiB or GiB
// (KB, MB and GB are read the same way).
func (r *envReader) size(name string, def int64) int64 {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}}
	num, mult := v, int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(strings.ToUpper(v), strings.ToUpper(u.suffix)); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult {
		r.fail(name, "is %q; use a size like 8MiB, 512KiB or 1048576", v)
		return def
	}
	return n * mult
}
