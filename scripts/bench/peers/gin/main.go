// Command gin is the benchmark's Gin peer: the initiate and status handlers a user of Gin,
// Asynq and go-redis would write by hand, with none of longhaul's machinery (no job record,
// no idempotency, no ETag, no live channels). The benchmark runs it beside longhaul on the
// same Redis and drives it with the same clients; see README.md.
//
// Settings come from the environment:
//
//	REDIS_URL         the Redis to use, like redis://127.0.0.1:6379/0 (required)
//	ADDR              the listen address, like 127.0.0.1:0 (port 0 picks a free port)
//	PORT              the port on 127.0.0.1 to listen on, when ADDR is unset
//	JOB_KEY_TEMPLATE  the key of a job's hash, {id} standing for the job id and {group} for
//	                  its last two characters (longhaul's hash tag)
//	                  (default longhaul:{{id}}:job, longhaul's own job record)
//
// Once listening it prints "gin-peer listening on http://HOST:PORT" on stdout. SIGTERM or
// SIGINT shuts it down: it stops accepting, finishes the requests in flight and exits 0.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// defaultKeyTemplate names longhaul's job record ("longhaul:{ID}:job", the braces being
// Redis's hash tag), so that the benchmark's prepared jobs serve all of its servers.
const defaultKeyTemplate = "longhaul:{{group}}:job:{id}"

// shutdownTimeout bounds how long the requests in flight may take after SIGTERM.
const shutdownTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "gin-peer: %v\n", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then shuts down in the reverse order of start-up.
func run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	if getenv("REDIS_URL") == "" {
		return errors.New("REDIS_URL is required, like redis://127.0.0.1:6379/0")
	}
	opts, err := redis.ParseURL(getenv("REDIS_URL"))
	if err != nil {
		return fmt.Errorf("read REDIS_URL: %w", err)
	}
	// The pool longhaul's API uses, so that the comparison is of handlers, not of pools.
	if opts.PoolSize == 0 {
		opts.PoolSize = 64
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()

	template := getenv("JOB_KEY_TEMPLATE")
	if template == "" {
		template = defaultKeyTemplate
	}
	if !strings.Contains(template, "{id}") {
		return fmt.Errorf("JOB_KEY_TEMPLATE %q has no {id}", template)
	}
	jobKey := func(id string) string { return fillTemplate(template, id) }

	gin.SetMode(gin.ReleaseMode) // debug mode prints every route on stdout
	srv := &http.Server{
		Handler:           newRouter(asynq.NewClientFromRedisClient(rdb), rdb, jobKey, slog.New(slog.NewTextHandler(stderr, nil))),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute, // longhaul's
	}
	addr := listenAddr(getenv)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	fmt.Fprintf(stdout, "gin-peer listening on http://%s\n", displayAddr(l.Addr()))

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shut down http: %w", err)
	}
	return nil
}

// listenAddr is ADDR, else PORT on the loopback interface, else a free loopback port.
func listenAddr(getenv func(string) string) string {
	if addr := getenv("ADDR"); addr != "" {
		return addr
	}
	if port := getenv("PORT"); port != "" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return "127.0.0.1:0"
}

// displayAddr is an address a person can click: the loopback one for a wildcard listener.
func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return fmt.Sprintf("localhost:%d", tcp.Port)
}

// fillTemplate names the key of job id: {id} is the id, {group} its last two characters,
// the slot group that longhaul tags every key of a job with.
func fillTemplate(template, id string) string {
	group := id
	if len(id) >= 2 {
		group = id[len(id)-2:]
	}
	return strings.ReplaceAll(strings.ReplaceAll(template, "{group}", group), "{id}", id)
}
