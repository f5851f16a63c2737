package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where metrics are served.
const Path = "/metrics"

// Handler serves what reg gathers in Prometheus' exposition format, and counts its own
// scrapes in reg (promhttp_metric_handler_requests_total). A collector that fails (asynq's,
// when Redis is away) leaves the others' metrics served.
func Handler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	return promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	}))
}

// Server serves metrics alone on an address of its own (LONGHAUL_METRICS_ADDR): for a
// scraper on a private network, with no key and no Host check, and for the worker, which
// serves no other HTTP.
type Server struct {
	http *http.Server
	addr net.Addr
	log  *slog.Logger
	// wg awaits the goroutine that serves.
	wg sync.WaitGroup
}

// Listen listens on addr and serves h at Path in the background until Shutdown.
func Listen(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (LONGHAUL_METRICS_ADDR): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+Path, h)
	s := &Server{addr: l.Addr(), log: log, http: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
	s.wg.Go(func() {
		if err := s.http.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics server stopped", "addr", s.addr.String(), "err", err)
		}
	})
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.addr }

// Shutdown stops serving, waiting for scrapes in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) {
	if err := s.http.Shutdown(ctx); err != nil {
		s.log.Warn("metrics server shutdown cut short", "err", err)
	}
	s.wg.Wait()
}
