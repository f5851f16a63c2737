package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/limits"
	"github.com/longhaul-dev/longhaul/origin"
	"github.com/longhaul-dev/longhaul/storage"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/longhaul-dev/longhaul/webhook"
	"github.com/longhaul-dev/longhaul/worker"
)

// config is every setting of longhaul, read from the environment. The names and defaults
// are listed in the README.
type config struct {
	Redis             redisTarget
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
	SweepInterval     time.Duration
	AllowEviction     bool
	LogLevel          slog.Level
	LogFormat         string

	// Auth is keys or none; empty until run resolves it for its mode (see authFor).
	Auth           api.AuthMode
	Limits         limits.Config
	MaxConnections int
	MaxLive        int
	TrustedProxies []string
	PublicOrigins  []string
	Dashboard      string
	TLSCert        string
	TLSKey         string
	MetricsAddr    string

	// Webhooks are how jobs' callbacks are checked, signed and delivered.
	Webhooks webhookConfig

	// S3 is the bucket files are kept in (LONGHAUL_STORAGE=s3://...); if nil, they are
	// kept in StorageDir.
	S3 *storage.BucketConfig
	// S3Redirect answers a download with a redirect to a presigned URL of the bucket, so
	// that the bytes do not pass through the API.
	S3Redirect bool
}

// webhookConfig are the settings of webhooks.
type webhookConfig struct {
	// Signer signs deliveries; nil when no secret is set, and then the API refuses
	// callback_url and the worker delivers nothing.
	Signer      *webhook.Signer
	Policy      webhook.Policy
	Options     tasks.WebhookOptions
	Concurrency int
}

// addrDefault is where serve and api listen unless told otherwise.
const addrDefault = ":3000"

// s3DownloadsDefault streams downloads from the bucket through the API, as from a
// directory: nothing but the API has to be reachable by clients.
const s3DownloadsDefault = "stream"

// maxPingInterval keeps live connections inside the idle limits of common proxies.
const maxPingInterval = 25 * time.Second

// loadConfig reads and checks the configuration. It reports every bad setting at once,
// each with what to do about it.
func loadConfig(getenv func(string) string) (config, error) {
	r := envReader{getenv: getenv}
	c := config{
		Redis: redisTarget{
			URL:              strings.TrimSpace(getenv("REDIS_URL")),
			SentinelAddrs:    r.list("REDIS_SENTINEL_ADDRS"),
			SentinelMaster:   r.str("REDIS_SENTINEL_MASTER", ""),
			SentinelPassword: getenv("REDIS_SENTINEL_PASSWORD"),
			ClusterAddrs:     r.list("REDIS_CLUSTER_ADDRS"),
			Username:         r.str("REDIS_USERNAME", ""),
			Password:         getenv("REDIS_PASSWORD"),
		},
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
		SweepInterval:     r.duration("LONGHAUL_SWEEP_INTERVAL", worker.SweepIntervalDefault),
		AllowEviction:     r.boolean("LONGHAUL_ALLOW_EVICTION"),
		LogLevel:          r.level("LONGHAUL_LOG_LEVEL"),
		LogFormat:         r.oneOf("LONGHAUL_LOG_FORMAT", "text", "json"),

		Auth: api.AuthMode(r.oneOf("LONGHAUL_AUTH", "", string(api.AuthKeys), string(api.AuthNone))),
		Limits: limits.Config{
			CreateRate:     r.integer("LONGHAUL_RATE_CREATE", limits.CreateRateDefault, 0, 1_000_000),
			CreateBurst:    r.integer("LONGHAUL_RATE_CREATE_BURST", limits.CreateBurstDefault, 0, 1_000_000),
			NotFoundRate:   r.integer("LONGHAUL_RATE_NOT_FOUND", limits.NotFoundRateDefault, 0, 1_000_000),
			MaxUnfinished:  r.integer("LONGHAUL_KEY_MAX_UNFINISHED", limits.MaxUnfinishedDefault, 0, 10_000_000),
			MaxRunning:     r.integer("LONGHAUL_KEY_MAX_RUNNING", limits.MaxRunningDefault, 0, 1_000_000),
			MaxLive:        r.integer("LONGHAUL_KEY_MAX_LIVE", limits.MaxLiveDefault, 0, 10_000_000),
			MaxStoredBytes: r.size("LONGHAUL_KEY_MAX_STORED", limits.MaxStoredBytesDefault),
			MaxJobBytes:    r.size("LONGHAUL_JOB_MAX_SIZE", limits.MaxJobBytesDefault),
		},
		MaxConnections: r.integer("LONGHAUL_MAX_CONNECTIONS", 0, 0, 10_000_000),
		MaxLive:        r.integer("LONGHAUL_MAX_LIVE", 0, 0, 10_000_000),
		TrustedProxies: r.list("LONGHAUL_TRUSTED_PROXIES"),
		PublicOrigins:  r.list("LONGHAUL_PUBLIC_ORIGINS"),
		Dashboard:      r.oneOf("LONGHAUL_DASHBOARD", "", "on", "readonly", "off"),
		TLSCert:        r.str("LONGHAUL_TLS_CERT", ""),
		TLSKey:         r.str("LONGHAUL_TLS_KEY", ""),
		MetricsAddr:    r.str("LONGHAUL_METRICS_ADDR", ""),

		Webhooks: r.webhooks(),

		S3:         r.bucket(),
		S3Redirect: r.oneOf("LONGHAUL_S3_DOWNLOADS", s3DownloadsDefault, "redirect") == "redirect",
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = api.MaxConnectionsDefault()
	}
	if c.MaxLive == 0 {
		c.MaxLive = api.MaxLiveDefault(c.MaxConnections)
	}
	if c.MaxLive > c.MaxConnections {
		r.fail("LONGHAUL_MAX_LIVE", "is %d, above LONGHAUL_MAX_CONNECTIONS (%d); live connections are among those, and plain requests need room too", c.MaxLive, c.MaxConnections)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		r.fail("LONGHAUL_TLS_CERT", "and LONGHAUL_TLS_KEY go together: set both to serve TLS, or neither")
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				r.fail("LONGHAUL_TRUSTED_PROXIES", "has %q; use IP addresses or CIDR ranges like 10.0.0.0/8, comma-separated", p)
			}
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			r.fail("LONGHAUL_METRICS_ADDR", "is %q; use an address like :9100 or 10.0.0.5:9100", c.MetricsAddr)
		}
	}
	for _, o := range c.PublicOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			r.fail("LONGHAUL_PUBLIC_ORIGINS", "has %q; use origins like https://downloads.example.com, comma-separated", o)
		}
	}
	if c.FileTimeMax < c.FileTimeMin {
		r.fail("LONGHAUL_FILE_TIME_MAX", "is %v, below LONGHAUL_FILE_TIME_MIN (%v); make it at least as long", c.FileTimeMax, c.FileTimeMin)
	}
	if c.PingInterval <= 0 || c.PingInterval > maxPingInterval {
		r.fail("LONGHAUL_PING_INTERVAL", "is %v; use a duration above 0 and at most %v, so proxies with a 30 s idle limit keep connections open", c.PingInterval, maxPingInterval)
	}
	if c.SweepInterval < time.Second {
		r.fail("LONGHAUL_SWEEP_INTERVAL", "is %v; sweep at most once a second", c.SweepInterval)
	}
	if c.Retention < time.Minute {
		r.fail("LONGHAUL_RETENTION", "is %v; keep finished jobs at least 1m", c.Retention)
	}
	if c.FileSizeMax < 1 {
		r.fail("LONGHAUL_FILE_SIZE_MAX", "must be at least 1 byte")
	}
	named := 0
	for _, set := range []bool{c.Redis.URL != "", len(c.Redis.SentinelAddrs) > 0, len(c.Redis.ClusterAddrs) > 0} {
		if set {
			named++
		}
	}
	if named > 1 {
		r.fail("REDIS_URL", "names one Redis, REDIS_SENTINEL_ADDRS a Sentinel group and REDIS_CLUSTER_ADDRS a Cluster: set one of the three")
	}
	if len(c.Redis.SentinelAddrs) > 0 && c.Redis.SentinelMaster == "" {
		r.fail("REDIS_SENTINEL_MASTER", "is needed with REDIS_SENTINEL_ADDRS: the name the sentinels monitor the master by, like mymaster")
	}
	if c.Redis.URL != "" && !strings.HasPrefix(c.Redis.URL, "redis://") && !strings.HasPrefix(c.Redis.URL, "rediss://") {
		r.fail("REDIS_URL", "must start with redis:// or rediss://, like redis://localhost:6379/0")
	}
	return c, errors.Join(r.errs...)
}

// webhooks reads the settings of webhooks: the secrets they are signed with, where they may
// go, and how they are retried.
func (r *envReader) webhooks() webhookConfig {
	c := webhookConfig{
		Policy: webhook.Policy{AllowHTTP: r.boolean("LONGHAUL_WEBHOOK_ALLOW_HTTP")},
		Options: tasks.WebhookOptions{
			MaxRetry: r.integer("LONGHAUL_WEBHOOK_RETRIES", tasks.WebhookMaxRetryDefault, 1, 100),
			Timeout:  r.duration("LONGHAUL_WEBHOOK_TIMEOUT", tasks.WebhookTimeoutDefault),
			Backoff:  r.duration("LONGHAUL_WEBHOOK_BACKOFF", tasks.WebhookBackoffDefault),
		},
		Concurrency: r.integer("LONGHAUL_WEBHOOK_CONCURRENCY", worker.WebhookConcurrencyDefault, 1, 10000),
	}
	if secrets := strings.TrimSpace(r.getenv("LONGHAUL_WEBHOOK_SECRET")); secrets != "" {
		signer, err := webhook.ParseSecrets(secrets)
		if err != nil {
			// The message names the secret by its place, never its value.
			r.fail("LONGHAUL_WEBHOOK_SECRET", "has a bad secret (%v); each is whsec_ and the base64 of 24 to 64 random bytes, "+
				"space-separated, newest first (make one with: echo whsec_$(head -c 32 /dev/urandom | base64))", err)
		}
		c.Signer = signer
	}
	for _, item := range r.list("LONGHAUL_WEBHOOK_ALLOW") {
		prefix, err := netip.ParsePrefix(item)
		if err != nil {
			addr, aerr := netip.ParseAddr(item)
			if aerr != nil {
				r.fail("LONGHAUL_WEBHOOK_ALLOW", "has %q; use IP addresses or CIDR ranges like 10.1.2.0/24, comma-separated", item)
				continue
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		c.Policy.Allow = append(c.Policy.Allow, prefix.Masked())
	}
	if c.Options.Timeout < 100*time.Millisecond || c.Options.Timeout > time.Minute {
		r.fail("LONGHAUL_WEBHOOK_TIMEOUT", "is %v; use a duration from 100ms to 1m", c.Options.Timeout)
	}
	if c.Options.Backoff < 100*time.Millisecond || c.Options.Backoff > tasks.WebhookBackoffMax {
		r.fail("LONGHAUL_WEBHOOK_BACKOFF", "is %v; use a duration from 100ms to %v", c.Options.Backoff, tasks.WebhookBackoffMax)
	}
	return c
}

// bucket reads the S3 settings when LONGHAUL_STORAGE names a bucket, or returns nil (files
// in LONGHAUL_STORAGE_DIR). Credentials come from AWS's usual variables.
func (r *envReader) bucket() *storage.BucketConfig {
	location := strings.TrimSpace(r.getenv("LONGHAUL_STORAGE"))
	if location == "" {
		// These mean something with a bucket only; set alone, they are a mistake.
		for _, name := range []string{"LONGHAUL_S3_ENDPOINT", "LONGHAUL_S3_REGION", "LONGHAUL_S3_PATH_STYLE",
			"LONGHAUL_S3_PART_SIZE", "LONGHAUL_S3_DOWNLOADS", "LONGHAUL_S3_URL_EXPIRY"} {
			if strings.TrimSpace(r.getenv(name)) != "" {
				r.fail(name, "applies to a bucket only: set LONGHAUL_STORAGE=s3://BUCKET/PREFIX, or unset %s", name)
			}
		}
		return nil
	}
	bucket, prefix, err := storage.ParseBucketURL(location)
	if err != nil {
		r.fail("LONGHAUL_STORAGE", "is %q; use s3://BUCKET or s3://BUCKET/PREFIX, or leave it unset to keep files in LONGHAUL_STORAGE_DIR", location)
		return nil
	}
	if strings.TrimSpace(r.getenv("LONGHAUL_STORAGE_DIR")) != "" {
		r.fail("LONGHAUL_STORAGE_DIR", "is set as well as LONGHAUL_STORAGE=%s; files go to one place: unset one", location)
	}
	c := &storage.BucketConfig{
		Bucket:          bucket,
		Prefix:          prefix,
		Endpoint:        r.str("LONGHAUL_S3_ENDPOINT", storage.EndpointDefault),
		Region:          r.str("LONGHAUL_S3_REGION", strings.TrimSpace(r.getenv("AWS_REGION"))),
		PathStyle:       r.boolean("LONGHAUL_S3_PATH_STYLE"),
		AccessKeyID:     strings.TrimSpace(r.getenv("AWS_ACCESS_KEY_ID")),
		SecretAccessKey: strings.TrimSpace(r.getenv("AWS_SECRET_ACCESS_KEY")),
		SessionToken:    strings.TrimSpace(r.getenv("AWS_SESSION_TOKEN")),
		PartSize:        r.size("LONGHAUL_S3_PART_SIZE", storage.PartSizeDefault),
		URLExpiry:       r.duration("LONGHAUL_S3_URL_EXPIRY", storage.URLExpiryDefault),
	}
	if err := storage.CheckEndpoint(c.Endpoint); err != nil {
		r.fail("LONGHAUL_S3_ENDPOINT", "is %q; use the URL of the S3 service, like https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:9000", c.Endpoint)
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		r.fail("AWS_ACCESS_KEY_ID", "and AWS_SECRET_ACCESS_KEY go together: set both, or neither to use the IAM role of the machine or container")
	}
	if c.PartSize < storage.PartSizeMin || c.PartSize > storage.PartSizeMax {
		r.fail("LONGHAUL_S3_PART_SIZE", "is %d bytes; S3 takes parts from 5MiB to 5GiB", c.PartSize)
	}
	if c.URLExpiry <= 0 || c.URLExpiry > storage.URLExpiryMax {
		r.fail("LONGHAUL_S3_URL_EXPIRY", "is %v; use a duration above 0 and at most %v (S3's limit)", c.URLExpiry, storage.URLExpiryMax)
	}
	return c
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
	named := slices.DeleteFunc(slices.Clone(choices), func(c string) bool { return c == "" })
	r.fail(name, "is %q; use one of %s", v, strings.Join(named, ", "))
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
