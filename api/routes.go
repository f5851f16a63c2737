// Package api is longhaul's HTTP side: the REST endpoints of the contract, the live
// channels (WebSocket and Server-Sent Events) fed by the live hub, the browser UI and the
// dashboard, all behind one http.Server that the package starts and stops.
package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/live"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/olahol/melody"
	"github.com/redis/go-redis/v9"
)

// Defaults of Config, also the defaults of the settings that configure them.
const (
	MaxFilesDefault     = 1000
	PingIntervalDefault = 20 * time.Second
)

// Config configures the API.
type Config struct {
	// MaxFiles is the most ids one job may have. If zero, MaxFilesDefault is used.
	MaxFiles int
	// PingInterval is how often live connections are pinged (WebSocket) or sent a comment
	// (SSE). If zero, PingIntervalDefault is used.
	PingInterval time.Duration
	// AllowedOrigins are origins besides the server's own that may open live connections
	// and call the API from a browser (CORS).
	AllowedOrigins []string
	// Tasks derive the limits of enqueued tasks.
	Tasks tasks.Options
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxFiles <= 0 {
		c.MaxFiles = MaxFilesDefault
	}
	if c.PingInterval <= 0 {
		c.PingInterval = PingIntervalDefault
	}
	return c
}

// Deps are the API's collaborators, built by the caller.
type Deps struct {
	Redis     redis.UniversalClient // the live hub's pub/sub connection comes from it
	Store     JobStore
	Queue     Enqueuer
	Tasks     TaskDeleter
	Files     FileReader
	UI        fs.FS        // the browser UI's files, with index.html at the root
	Dashboard http.Handler // asynqmon, mounted at /monitoring/
	Log       *slog.Logger
}

// The paths of the contract, as the router registers them. Links and download URLs are
// built from them (see pathOf), so a URL the API hands out is always one it serves.
const (
	pathInitiate = "/v1/download/initiate"
	pathStatus   = "/v1/download/status/:job_id"
	pathJob      = "/v1/download/:job_id"
	pathFile     = "/v1/download/:job_id/files/:file_id"
	pathEvents   = "/v1/download/:job_id/events"
	pathWS       = "/ws/download/:job_id"
)

// pathOf fills the parameters of a route pattern, in order.
func pathOf(pattern string, params ...string) string {
	parts := strings.Split(pattern, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") && len(params) > 0 {
			parts[i], params = params[0], params[1:]
		}
	}
	return strings.Join(parts, "/")
}

func fileURL(jobID string, fileID int64) string {
	return pathOf(pathFile, jobID, strconv.FormatInt(fileID, 10))
}

// Server is the API: its routes, its live connections and the HTTP server that serves them.
type Server struct {
	router *gin.Engine
	ws     *melody.Melody
	hub    *live.Hub
	http   *http.Server
	log    *slog.Logger

	// served receives what ended the HTTP server, once; the goroutine of Start owns it.
	served chan error
	wg     sync.WaitGroup
}

// New returns the API with every route of the contract.
func New(cfg Config, d Deps) *Server {
	cfg = cfg.WithDefaults()
	log := d.Log.With("component", "api")
	hub := live.NewHub(d.Redis, d.Store, renderer{}, d.Log.With("component", "hub"))
	ws := newMelody(cfg.PingInterval, cfg.AllowedOrigins, hub)
	watchOnConnect(ws, hub, log)

	r := gin.New()
	// Route on the raw path, so that an encoded "/" in an id stays inside the id and is
	// refused as a malformed id, not routed elsewhere.
	r.UseRawPath = true
	r.RedirectTrailingSlash = false
	r.Use(recovery(log), accessLog(log), cors(cfg.AllowedOrigins))

	r.GET("/healthz", handleHealth)
	r.GET("/readyz", handleReady(d.Store, log))

	r.POST(pathInitiate, handleInitiate(d.Store, d.Queue, cfg.MaxFiles, cfg.Tasks, log))
	r.GET(pathStatus, requireJobID(log), handleStatus(d.Store, log))
	r.DELETE(pathJob, requireJobID(log), handleCancel(d.Store, d.Tasks, log))
	r.GET(pathFile, requireJobID(log), handleFile(d.Store, d.Files, log))
	r.GET(pathEvents, requireJobID(log), handleEvents(hub, cfg.PingInterval, log))
	r.GET(pathWS, requireJobID(log), handleWebSocket(ws, log))

	r.Any("/monitoring/*path", gin.WrapH(d.Dashboard))
	r.GET("/monitoring", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/monitoring/") })

	page := servePage(d.UI)
	r.NoRoute(func(c *gin.Context) {
		p := c.Request.URL.Path
		if strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/ws/") || p == "/v1" || p == "/ws" ||
			!page(c) {
			writeError(c, log, notFound("no such endpoint: %s %s", c.Request.Method, p))
		}
	})
	s := &Server{router: r, ws: ws, hub: hub, log: log, served: make(chan error, 1)}
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	return s
}

// ServeHTTP serves every route of the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// Start starts the live hub and serves HTTP on l in the background. What ends the server
// before Shutdown arrives on Err.
func (s *Server) Start(l net.Listener) {
	s.hub.Start()
	s.wg.Go(func() {
		if err := s.http.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			s.served <- fmt.Errorf("serve http: %w", err)
		}
	})
}

// Err receives the error that stopped the HTTP server, if it stops by itself.
func (s *Server) Err() <-chan error { return s.served }

// Shutdown closes every live connection with 1001 (going away), so that clients reconnect
// to another instance at once, waits until the close frames are written, then stops
// accepting HTTP and waits for the requests in flight, until ctx ends. Live connections go
// first: http.Server.Shutdown neither closes hijacked connections nor waits for them, and
// it would wait on SSE streams until they end.
func (s *Server) Shutdown(ctx context.Context) {
	s.closeLive(ctx)
	if err := s.http.Shutdown(ctx); err != nil {
		s.log.Warn("http shutdown cut short", "err", err)
	}
	s.wg.Wait()
}

func (s *Server) closeLive(ctx context.Context) {
	sessions, _ := s.ws.Sessions()
	s.hub.Shutdown(live.CloseGoingAway, "server shutting down")
	s.ws.CloseWithMsg(melody.FormatCloseMessage(live.CloseGoingAway, "server shutting down"))
	for _, session := range sessions {
		for !session.IsClosed() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// Watchers counts the live clients of this process, for logs and tests.
func (s *Server) Watchers() int { return s.hub.Watchers() }

func handleHealth(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func handleReady(store JobStore, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := store.Ping(c.Request.Context()); err != nil {
			log.WarnContext(c.Request.Context(), "not ready: redis does not answer", "err", err)
			writeError(c, log, &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
				Message: "not ready: the job store does not answer"})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	}
}

// requireJobID refuses a malformed job id before anything reaches Redis or the disk.
func requireJobID(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !jobs.ValidID(c.Param("job_id")) {
			writeError(c, log, invalid("job_id", "job ids look like dl_ followed by 26 characters of Crockford base32"))
		}
	}
}

// recovery answers a panic with the contract's 500 and logs it; the client sees no detail.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, err any) {
		log.ErrorContext(c.Request.Context(), "panic serving request", "path", c.Request.URL.Path, "err", err)
		writeErrorTo(c.Writer, errInternal)
		c.Abort()
	})
}

func accessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		log.DebugContext(c.Request.Context(), "request", "method", c.Request.Method, "path", c.Request.URL.Path,
			"status", c.Writer.Status(), "duration", time.Since(start))
	}
}

// servePage serves the UI: its files, and index.html for "/" and every path under
// "/jobs/", where the page itself tells a person when a link names no job. It reports
// false for any other path.
func servePage(ui fs.FS) func(*gin.Context) bool {
	files := http.FileServerFS(ui)
	return func(c *gin.Context) bool {
		if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
			return false
		}
		p := c.Request.URL.Path
		if p == "/" || strings.HasPrefix(p, "/jobs/") {
			c.Header("Cache-Control", "no-cache")
			c.FileFromFS("/", http.FS(ui))
			return true
		}
		name := strings.TrimPrefix(p, "/")
		if info, err := fs.Stat(ui, name); err != nil || info.IsDir() {
			return false
		}
		if strings.HasPrefix(name, "assets/") {
			c.Header("Cache-Control", "public, max-age=31536000, immutable") // names carry hashes
		}
		files.ServeHTTP(c.Writer, c.Request)
		return true
	}
}
