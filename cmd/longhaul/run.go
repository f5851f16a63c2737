package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/auth"
	"github.com/longhaul-dev/longhaul/cli"
	"github.com/longhaul-dev/longhaul/dashboard"
	"github.com/longhaul-dev/longhaul/frontend"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/limits"
	"github.com/longhaul-dev/longhaul/metrics"
	"github.com/longhaul-dev/longhaul/origin"
	"github.com/longhaul-dev/longhaul/requestid"
	"github.com/longhaul-dev/longhaul/storage"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/longhaul-dev/longhaul/webhook"
	"github.com/longhaul-dev/longhaul/worker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// mode is what one process runs.
type mode string

const (
	modeServe  mode = "serve"
	modeAPI    mode = "api"
	modeWorker mode = "worker"
	modeKeys   mode = "keys"
)

func (m mode) runsAPI() bool    { return m == modeServe || m == modeAPI }
func (m mode) runsWorker() bool { return m == modeServe || m == modeWorker }

var errUsage = errors.New("usage")

const usage = `longhaul turns long-running downloads into durable background jobs with live progress.

Usage:
  longhaul serve  [-addr :3000]   API, worker and dashboard in one process; without REDIS_URL
                                  it runs on an embedded in-memory Redis
  longhaul api    [-addr :3000]   the HTTP API, live channels, UI and dashboard
  longhaul worker                 the job worker
  longhaul keys create --name NAME --role client|admin
                                  make an API key (printed once); also keys list, keys revoke ID
  longhaul help                   this help (also -h, --help)

Settings come from environment variables (REDIS_URL, LONGHAUL_*); see the README.

As a client of a running server:
`

// run is the whole program: it reads the settings, builds every part, runs until ctx ends,
// then shuts down in the reverse order of start-up.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 2 && (args[1] == "help" || args[1] == "-h" || args[1] == "--help") {
		fmt.Fprint(stdout, usage+cli.Usage())
		return nil
	}
	m, addr, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("bad settings:\n%w", err)
	}
	if addr != "" {
		cfg.Addr = addr
	}
	if m == modeKeys {
		return runKeys(ctx, args[2:], cfg, stdout, stderr)
	}
	cfg.Auth = authFor(cfg, m)
	if cfg.Auth == api.AuthKeys && cfg.Redis.embedded() && m == modeServe {
		return errors.New("LONGHAUL_AUTH=keys needs REDIS_URL: keys are made with `longhaul keys create` in the Redis " +
			"the server uses, and the embedded one starts empty every time")
	}
	log := newLogger(stderr, cfg)
	if ownsProcessLog {
		redis.SetLogger(redisLog{log.With("component", "redis")})
	}
	if m.runsAPI() || m.runsWorker() {
		limitMemory(getenv, os.ReadFile, log)
	}
	gin.SetMode(gin.ReleaseMode) // gin's debug mode only prints routes; logs are ours

	rdb, closeRedis, err := openRedis(ctx, cfg, m, log)
	if err != nil {
		return err
	}
	defer closeRedis()
	store := jobs.NewStore(rdb, jobs.Options{Retention: cfg.Retention, Sharded: cfg.Redis.Cluster()})
	lim := limits.New(rdb, store, cfg.Limits, cfg.Retention)
	files, links, err := openStorage(ctx, cfg, m, log)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	obs := observe(reg, m, rdb)
	metricsHandler := metrics.Handler(reg, log.With("component", "metrics"))
	if cfg.MetricsAddr != "" {
		ms, err := metrics.Listen(cfg.MetricsAddr, metricsHandler, log.With("component", "metrics"))
		if err != nil {
			return err
		}
		defer shutdownWithin(ctx, cfg.ShutdownTimeout, ms.Shutdown)
		log.Info("metrics served", "addr", ms.Addr().String(), "path", metrics.Path)
		metricsHandler = nil // on their own address only
	}

	announcer := webhook.NewAnnouncer(asynq.NewClientFromRedisClient(rdb), webhookOptions(cfg))
	if m.runsWorker() {
		w := worker.New(rdb, store, files, worker.Config{
			Concurrency:     cfg.WorkerConcurrency,
			FileConcurrency: cfg.FileConcurrency,
			FileRetries:     cfg.FileRetries,
			ShutdownTimeout: cfg.ShutdownTimeout,
			SweepInterval:   cfg.SweepInterval,
			Origin:          originOf(cfg),
			Running:         lim,
			Tasks:           taskOptions(cfg),
			Observer:        obs,
			Webhooks:        workerWebhooks(cfg, store, announcer, obs, log),
		}, log.With("component", "worker"))
		if err := w.Start(); err != nil {
			return err
		}
		defer w.Shutdown()
		log.Info("worker started", "concurrency", cfg.WorkerConcurrency, "file_concurrency", cfg.FileConcurrency)
	}

	if m == modeAPI {
		// The workers' watchdogs resume the jobs of lost workers; one here too says a job
		// waits while no worker runs at all.
		wd := worker.NewWatchdog(store, worker.NewQueue(rdb), taskOptions(cfg), log.With("component", "watchdog"))
		wd.Start()
		defer wd.Stop()
	}

	if m.runsAPI() {
		a := newAPI(cfg, rdb, store, files, links, lim, obs, metricsHandler, announcer, log)
		l, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s (LONGHAUL_ADDR): %w", cfg.Addr, err)
		}
		warnIfExposed(cfg, l.Addr(), log)
		a.Start(l)
		defer shutdownWithin(ctx, cfg.ShutdownTimeout, a.Shutdown)
		scheme := "http"
		if cfg.TLSCert != "" {
			scheme = "https"
		}
		fmt.Fprintf(stdout, "longhaul listening on %s://%s\n", scheme, displayAddr(l.Addr()))
		log.Info("api started", "addr", l.Addr().String(), "dashboard", "/monitoring/")
		select {
		case <-ctx.Done():
		case err := <-a.Err():
			return err
		}
	} else {
		<-ctx.Done()
	}
	log.Info("shutting down")
	return nil
}

// shutdownWithin calls shutdown with a context that ends timeout after ctx does.
func shutdownWithin(ctx context.Context, timeout time.Duration, shutdown func(context.Context)) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	shutdown(ctx)
}

func parseArgs(args []string, stderr io.Writer) (mode, string, error) {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage+cli.Usage())
		return "", "", errUsage
	}
	m := mode(args[1])
	switch m {
	case modeKeys:
		return m, "", nil // its subcommands read their own flags
	case modeServe, modeAPI, modeWorker:
	default:
		fmt.Fprint(stderr, usage+cli.Usage())
		return "", "", fmt.Errorf("%w: unknown command %q", errUsage, args[1])
	}
	fs := flag.NewFlagSet("longhaul "+string(m), flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := ""
	if m.runsAPI() {
		fs.StringVar(&addr, "addr", "", "listen address (default LONGHAUL_ADDR, or :3000)")
	}
	if err := fs.Parse(args[2:]); err != nil {
		return "", "", fmt.Errorf("%w: %v", errUsage, err)
	}
	return m, addr, nil
}

// newLogger is the one logger of a process. A line logged with a request's context carries
// its request_id.
func newLogger(w io.Writer, cfg config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(requestid.LogHandler(slog.NewJSONHandler(w, opts)))
	}
	return slog.New(requestid.LogHandler(slog.NewTextHandler(w, opts)))
}

// authFor is the auth mode of a process: as set, or else keys, but for `longhaul serve` on
// the embedded Redis, the zero-setup demo, which has no keys and says so at start-up.
func authFor(cfg config, m mode) api.AuthMode {
	if cfg.Auth != "" {
		return cfg.Auth
	}
	if m == modeServe && cfg.Redis.embedded() {
		return api.AuthNone
	}
	return api.AuthKeys
}

// openStorage opens where files are kept: the directory, or the bucket that LONGHAUL_STORAGE
// names, checked at once. links, when downloads are to be redirected to the bucket, gives
// their URLs; otherwise it is nil and the API streams them.
func openStorage(ctx context.Context, cfg config, m mode, log *slog.Logger) (files storage.Store, links api.FileLinker, err error) {
	if cfg.S3 == nil {
		dir, err := storage.NewDir(cfg.StorageDir)
		return dir, nil, err
	}
	bc := *cfg.S3
	bc.ReadOnly = !m.runsWorker()
	bucket, err := storage.NewBucket(ctx, bc)
	if err != nil {
		return nil, nil, fmt.Errorf("file storage (LONGHAUL_STORAGE): %w", err)
	}
	log.Info("files are kept in a bucket", "bucket", bc.Bucket, "prefix", bc.Prefix, "endpoint", bc.Endpoint,
		"redirect_downloads", cfg.S3Redirect)
	if cfg.S3Redirect {
		return bucket, bucket, nil
	}
	return bucket, nil, nil
}

// newAPI builds the API with the browser UI, the documentation page and the dashboard,
// counting into obs, and serving metrics when metricsHandler is not nil.
func newAPI(cfg config, rdb redis.UniversalClient, store *jobs.Store, files storage.Store, links api.FileLinker,
	lim *limits.Limits, obs api.Observer, metricsHandler http.Handler, announcer *webhook.Announcer, log *slog.Logger) *api.Server {
	ui, built := frontend.Files()
	if !built {
		log.Warn("this binary has no browser UI built in; `make build` builds it")
	}
	docs, built := frontend.Docs()
	if !built {
		log.Warn("this binary has no page for the API document at /docs; `make build` builds it (/openapi.json is served regardless)")
	}
	if cfg.Auth == api.AuthNone {
		log.Warn("LONGHAUL_AUTH is none: anyone who reaches this port may create, read and cancel every job. " +
			"To lock it, set LONGHAUL_AUTH=keys and make a key with `longhaul keys create --name NAME --role admin`.")
	}
	return api.New(api.Config{
		MaxFiles:       cfg.MaxFiles,
		PingInterval:   cfg.PingInterval,
		AllowedOrigins: cfg.AllowedOrigins,
		Tasks:          taskOptions(cfg),
		Auth:           cfg.Auth,
		MaxConnections: cfg.MaxConnections,
		MaxLive:        cfg.MaxLive,
		TrustedProxies: cfg.TrustedProxies,
		PublicOrigins:  cfg.PublicOrigins,
		TLSCert:        cfg.TLSCert,
		TLSKey:         cfg.TLSKey,
	}, api.Deps{
		Redis:     rdb,
		Store:     store,
		Queue:     asynq.NewClientFromRedisClient(rdb),
		Tasks:     asynq.NewInspectorFromRedisClient(rdb),
		Files:     files,
		Links:     links,
		Sizes:     originOf(cfg),
		Keys:      auth.NewKeys(rdb),
		Tickets:   auth.NewTickets(rdb, 0),
		Limits:    lim,
		UI:        ui,
		Docs:      docs,
		Dashboard: dashboardFor(cfg, rdb, log),
		Metrics:   metricsHandler,
		Observer:  obs,
		Callbacks: callbackChecker(cfg),
		Webhooks:  announcer,
		Log:       log,
	})
}

// callbackChecker checks callback URLs where webhooks can be signed; without a secret there
// is none, and the API refuses callback_url with a message that says why.
func callbackChecker(cfg config) api.CallbackChecker {
	if cfg.Webhooks.Signer == nil {
		return nil
	}
	return cfg.Webhooks.Policy
}

// workerWebhooks is a worker's part in webhooks: it queues the deliveries of the jobs it
// runs, and makes them when it has a secret to sign them with.
func workerWebhooks(cfg config, store *jobs.Store, announcer *webhook.Announcer, obs webhook.Observer,
	log *slog.Logger) worker.WebhookConfig {
	wc := worker.WebhookConfig{Announcer: announcer, Concurrency: cfg.Webhooks.Concurrency, Options: webhookOptions(cfg)}
	if cfg.Webhooks.Signer == nil {
		log.Info("this worker delivers no webhooks: LONGHAUL_WEBHOOK_SECRET is not set (the API refuses callback_url too)")
		return wc
	}
	wc.Deliverer = webhook.NewDeliverer(store, api.WebhookBodies{}, cfg.Webhooks.Signer, cfg.Webhooks.Policy,
		wc.Options, obs, log.With("component", "webhooks"))
	return wc
}

// webhookOptions are the limits of delivery tasks: a finished delivery is kept as long as
// its job, so that it cannot be queued twice.
func webhookOptions(cfg config) tasks.WebhookOptions {
	o := cfg.Webhooks.Options
	o.Retention = cfg.Retention
	return o
}

// dashboardFor is the dashboard as LONGHAUL_DASHBOARD asks: on, read-only or none. Without
// keys, nobody can be told apart, so it is read-only unless the operator says otherwise.
func dashboardFor(cfg config, rdb redis.UniversalClient, log *slog.Logger) http.Handler {
	mode := cfg.Dashboard
	if mode == "" && cfg.Auth == api.AuthNone {
		mode = "readonly"
	}
	switch mode {
	case "off":
		return nil
	case "readonly":
		log.Info("the dashboard is read-only", "dashboard", dashboard.RootPath+"/")
		return dashboard.New(rdb, dashboard.Options{ReadOnly: true})
	}
	if cfg.Auth == api.AuthNone {
		log.Warn("LONGHAUL_DASHBOARD is on without keys: anyone who reaches this port may delete, archive and run any task")
	}
	return dashboard.New(rdb, dashboard.Options{})
}

// taskOptions are the limits of the tasks every process queues.
func taskOptions(cfg config) tasks.Options {
	return tasks.Options{FileTimeMax: cfg.FileTimeMax, FileConcurrency: cfg.FileConcurrency, Retention: cfg.Retention}
}

// originOf is the demo's origin as configured.
func originOf(cfg config) origin.Simulated {
	return origin.Simulated{TimeMin: cfg.FileTimeMin, TimeMax: cfg.FileTimeMax, SizeMax: cfg.FileSizeMax,
		FailureRate: cfg.FileFailureRate}
}

// warnIfExposed says so when keys and tickets would cross a network in clear: auth on, a
// listener beyond loopback, no TLS and no trusted proxy in front to terminate it.
func warnIfExposed(cfg config, addr net.Addr, log *slog.Logger) {
	tcp, ok := addr.(*net.TCPAddr)
	if cfg.Auth != api.AuthKeys || cfg.TLSCert != "" || len(cfg.TrustedProxies) > 0 || (ok && tcp.IP.IsLoopback()) {
		return
	}
	log.Warn("API keys and tickets would cross the network in clear: serve TLS (LONGHAUL_TLS_CERT and LONGHAUL_TLS_KEY) " +
		"or put a TLS proxy in front and name it in LONGHAUL_TRUSTED_PROXIES")
}

// displayAddr is an address a person can click: the loopback one for a wildcard listener.
func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return fmt.Sprintf("localhost:%d", tcp.Port)
}
