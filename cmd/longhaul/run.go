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
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/dashboard"
	"github.com/longhaul-dev/longhaul/frontend"
	"github.com/longhaul-dev/longhaul/jobs"
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
	taskOpts := tasks.Options{FileTimeMax: cfg.FileTimeMax, FileConcurrency: cfg.FileConcurrency,
		Retention: cfg.Retention}

	if m.runsWorker() {
		w := worker.New(rdb, store, files, worker.Config{
			Concurrency:     cfg.WorkerConcurrency,
			FileConcurrency: cfg.FileConcurrency,
			FileRetries:     cfg.FileRetries,
			ShutdownTimeout: cfg.ShutdownTimeout,
			Source: worker.Source{TimeMin: cfg.FileTimeMin, TimeMax: cfg.FileTimeMax,
				SizeMax: cfg.FileSizeMax, FailureRate: cfg.FileFailureRate},
		}, log.With("component", "worker"))
		if err := w.Start(); err != nil {
			return err
		}
		defer w.Shutdown()
		log.Info("worker started", "concurrency", cfg.WorkerConcurrency, "file_concurrency", cfg.FileConcurrency)

		// Redis expires finished jobs; the janitor removes their files, and ends the jobs
		// whose task asynq gave up on.
		sweep, stopSweep := context.WithCancel(ctx)
		var swept sync.WaitGroup
		archive := worker.Archive{Inspector: asynq.NewInspectorFromRedisClient(rdb)}
		swept.Go(func() {
			worker.NewJanitor(store, files, archive, log.With("component", "janitor")).Run(sweep, time.Minute)
		})
		defer func() { stopSweep(); swept.Wait() }()
	}

	serveErr := make(chan error, 1)
	if m.runsAPI() {
		stop, err := startAPI(cfg, rdb, store, files, taskOpts, log, stdout, serveErr)
		if err != nil {
			return err
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
			defer cancel()
			stop(ctx)
		}()
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-serveErr:
		return err
	}
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

// startAPI listens on cfg.Addr and serves the API in the background; a failure of the
// server after start-up arrives on serveErr. It prints the address it listens on, and
// returns the function that shuts it down: live clients are told to go elsewhere (1001)
// first, then HTTP stops accepting and waits for the requests in flight.
func startAPI(cfg config, rdb redis.UniversalClient, store *jobs.Store, files *storage.Dir,
	taskOpts tasks.Options, log *slog.Logger, stdout io.Writer, serveErr chan<- error) (func(context.Context), error) {
	hub := api.NewHub(rdb, store, log.With("component", "hub"))
	go hub.Run()
	ui, built := frontend.Files()
	if !built {
		log.Warn("this binary has no browser UI built in; `make build` builds it")
	}
	a := api.New(api.Config{
		MaxFiles:       cfg.MaxFiles,
		PingInterval:   cfg.PingInterval,
		AllowedOrigins: cfg.AllowedOrigins,
		Tasks:          taskOpts,
	}, api.Deps{
		Store:     store,
		Queue:     asynq.NewClientFromRedisClient(rdb),
		Tasks:     asynq.NewInspectorFromRedisClient(rdb),
		Files:     files,
		Hub:       hub,
		UI:        ui,
		Dashboard: dashboard.New(rdb),
		Log:       log,
	})
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		hub.Close(1001, "start-up failed")
		return nil, fmt.Errorf("listen on %s (LONGHAUL_ADDR): %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           a,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go func() {
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("serve http: %w", err)
		}
	}()
	fmt.Fprintf(stdout, "longhaul listening on http://%s\n", displayAddr(l.Addr()))
	log.Info("api started", "addr", l.Addr().String(), "dashboard", "/monitoring/")
	return func(ctx context.Context) {
		a.CloseLive(ctx)
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("http shutdown cut short", "err", err)
		}
	}, nil
}

// displayAddr is an address a person can click: the loopback one for a wildcard listener.
func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return fmt.Sprintf("localhost:%d", tcp.Port)
}
