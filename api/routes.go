// Package api is longhaul's HTTP side: the REST endpoints of the contract, the live
// channels (WebSocket and Server-Sent Events) fed by the hub, the browser UI and the
// dashboard, all in one http.Handler.
package api

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/olahol/melody"
)

// Config configures the API.
type Config struct {
	// MaxFiles is the most ids one job may have. If zero, 1000 is used.
	MaxFiles int
	// PingInterval is how often live connections are pinged (WebSocket) or sent a comment
	// (SSE). If zero, 20 s is used.
	PingInterval time.Duration
	// AllowedOrigins are origins besides the server's own that may open live connections
	// and call the API from a browser (CORS).
	AllowedOrigins []string
	// Tasks derive the limits of enqueued tasks.
	Tasks tasks.Options
}

// Deps are the API's collaborators, built by the caller.
type Deps struct {
	Store     JobStore
	Queue     Enqueuer
	Tasks     TaskDeleter
	Files     FileReader
	Hub       *Hub
	UI        fs.FS        // the browser UI's files, with index.html at the root
	Dashboard http.Handler // asynqmon, mounted at /monitoring/
	Log       *slog.Logger
}

// Server is the API's HTTP handler and its live connections.
type Server struct {
	router *gin.Engine
	ws     *melody.Melody
	hub    *Hub
}

// New returns the API with every route of the contract.
func New(cfg Config, d Deps) *Server {
	if cfg.MaxFiles <= 0 {
		cfg.MaxFiles = 1000
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 20 * time.Second
	}
	log := d.Log.With("component", "api")
	ws := newMelody(cfg.PingInterval, cfg.AllowedOrigins, d.Hub)
	watchOnConnect(ws, d.Hub, log)

	r := gin.New()
	// Route on the raw path, so that an encoded "/" in an id stays inside the id and is
	// refused as a malformed id, not routed elsewhere.
	r.UseRawPath = true
	r.RedirectTrailingSlash = false
	r.Use(recovery(log), accessLog(log), cors(cfg.AllowedOrigins))

	r.GET("/healthz", handleHealth)
	r.GET("/readyz", handleReady(d.Store, log))

	v1 := r.Group("/v1/download")
	v1.POST("/initiate", handleInitiate(d.Store, d.Queue, cfg.MaxFiles, cfg.Tasks, log))
	v1.GET("/status/:job_id", requireJobID(log), handleStatus(d.Store, log))
	v1.DELETE("/:job_id", requireJobID(log), handleCancel(d.Store, d.Tasks, log))
	v1.GET("/:job_id/files/:file_id", requireJobID(log), handleFile(d.Store, d.Files, log))
	v1.GET("/:job_id/events", requireJobID(log), handleEvents(d.Hub, cfg.PingInterval, log))
	r.GET("/ws/download/:job_id", requireJobID(log), handleWebSocket(ws, log))

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
	return &Server{router: r, ws: ws, hub: d.Hub}
}

// ServeHTTP serves every route of the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// CloseLive closes every live connection with 1001 (going away), so that clients reconnect
// to another instance at once, and waits until the close frames are written or ctx ends.
// Call it before http.Server.Shutdown: Shutdown neither closes hijacked connections nor
// waits for its RegisterOnShutdown hooks, and it would wait on SSE streams until they end.
func (s *Server) CloseLive(ctx context.Context) {
	sessions, _ := s.ws.Sessions()
	s.hub.Close(websocket1001, "server shutting down")
	s.ws.CloseWithMsg(melody.FormatCloseMessage(websocket1001, "server shutting down"))
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

const websocket1001 = 1001

func handleHealth(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func handleReady(store JobStore, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := store.Ping(c.Request.Context()); err != nil {
			log.WarnContext(c.Request.Context(), "not ready: redis does not answer", "err", err)
			c.Header("Retry-After", retryAfterSeconds)
			c.JSON(http.StatusServiceUnavailable, errorBody{&Error{Code: CodeUnavailable,
				Message: "not ready: the job store does not answer"}})
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
		c.AbortWithStatusJSON(http.StatusInternalServerError, errorBody{&Error{Code: CodeInternal,
			Message: "internal error"}})
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
