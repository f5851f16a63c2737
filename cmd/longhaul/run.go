package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/dashboard"
	"github.com/longhaul-dev/longhaul/frontend"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/origin"
	"github.com/longhaul-dev/longhaul/storage"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/longhaul-dev/longhaul/worker"
	"github.com/redis/go-redis/v9"
)

// mode is what one process runs.
type mode string

const (
	modeServe  mode = "serve"
	modeAPI    mode = "api"
	modeWorker mode = "worker"
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

Settings come from environment variables (REDIS_URL, LONGHAUL_*); see the README.
`

// run is the whole program: it reads the settings, builds every part, runs until ctx ends,
// then shuts down in the reverse order of start-up.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
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
	log := newLogger(stderr, cfg)
	gin.SetMode(gin.ReleaseMode) // gin's debug mode only prints routes; logs are ours

	rdb, closeRedis, err := openRedis(ctx, cfg, m, log)
	if err != nil {
		return err
	}
	defer closeRedis()
	store := jobs.NewStore(rdb, jobs.Options{Retention: cfg.Retention})
	files, err := storage.NewDir(cfg.StorageDir)
	if err != nil {
		return err
	}

	if m.runsWorker() {
		w := worker.New(rdb, store, files, worker.Config{
			Concurrency:     cfg.WorkerConcurrency,
			FileConcurrency: cfg.FileConcurrency,
			FileRetries:     cfg.FileRetries,
			ShutdownTimeout: cfg.ShutdownTimeout,
			Origin: origin.Simulated{TimeMin: cfg.FileTimeMin, TimeMax: cfg.FileTimeMax,
				SizeMax: cfg.FileSizeMax, FailureRate: cfg.FileFailureRate},
		}, log.With("component", "worker"))
		if err := w.Start(); err != nil {
			return err
		}
		defer w.Shutdown()
		log.Info("worker started", "concurrency", cfg.WorkerConcurrency, "file_concurrency", cfg.FileConcurrency)
	}

	if m.runsAPI() {
		a := newAPI(cfg, rdb, store, files, log)
		l, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s (LONGHAUL_ADDR): %w", cfg.Addr, err)
		}
		a.Start(l)
		defer shutdownWithin(ctx, cfg.ShutdownTimeout, a.Shutdown)
		fmt.Fprintf(stdout, "longhaul listening on http://%s\n", displayAddr(l.Addr()))
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
		fmt.Fprint(stderr, usage)
		return "", "", errUsage
	}
	m := mode(args[1])
	switch m {
	case modeServe, modeAPI, modeWorker:
	case "help", "-h", "--help":
		fmt.Fprint(stderr, usage)
		return "", "", errUsage
	default:
		fmt.Fprint(stderr, usage)
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

func newLogger(w io.Writer, cfg config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// newAPI builds the API with the browser UI and the dashboard.
func newAPI(cfg config, rdb redis.UniversalClient, store *jobs.Store, files *storage.Dir, log *slog.Logger) *api.Server {
	ui, built := frontend.Files()
	if !built {
		log.Warn("this binary has no browser UI built in; `make build` builds it")
	}
	return api.New(api.Config{
		MaxFiles:       cfg.MaxFiles,
		PingInterval:   cfg.PingInterval,
		AllowedOrigins: cfg.AllowedOrigins,
		Tasks: tasks.Options{FileTimeMax: cfg.FileTimeMax, FileConcurrency: cfg.FileConcurrency,
			Retention: cfg.Retention},
	}, api.Deps{
		Redis:     rdb,
		Store:     store,
		Queue:     asynq.NewClientFromRedisClient(rdb),
		Tasks:     asynq.NewInspectorFromRedisClient(rdb),
		Files:     files,
		UI:        ui,
		Dashboard: dashboard.New(rdb),
		Log:       log,
	})
}

// displayAddr is an address a person can click: the loopback one for a wildcard listener.
func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return fmt.Sprintf("localhost:%d", tcp.Port)
}
