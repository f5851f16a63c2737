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
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/limits"
	"github.com/longhaul-dev/longhaul/live"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/longhaul-dev/longhaul/webhook"
	"github.com/olahol/melody"
	"github.com/redis/go-redis/v9"
	"golang.org/x/net/netutil"
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
	// Auth says whether requests need an API key. If empty, AuthKeys is used.
	Auth AuthMode
	// MaxConnections caps the connections this process accepts at once, so that it never
	// runs out of file descriptors (it would then refuse even /healthz). If zero,
	// MaxConnectionsDefault() is used.
	MaxConnections int
	// MaxLive caps this process's live connections below MaxConnections, leaving room for
	// plain requests: past it, a new live connection is refused with 503 while /healthz and
	// the API still answer. If zero, MaxLiveDefault(MaxConnections) is used.
	MaxLive int
	// TrustedProxies are the addresses and CIDR ranges of proxies whose X-Forwarded-For
	// names the client; from any other peer the header changes nothing.
	TrustedProxies []string
	// PublicOrigins are the origins people reach the API at (https://downloads.example.com).
	// With auth on, a request's Host and a WebSocket's Origin must be one of them, rather
	// than trusted from the request; if empty, only loopback names pass.
	PublicOrigins []string
	// TLSCert and TLSKey are the files of a certificate and its key; when set, the server
	// speaks only TLS.
	TLSCert, TLSKey string
	// ReadHeaderTimeout bounds reading a request's headers, ReadTimeout its whole body, so
	// that slow clients cannot hold connections. If zero, ReadHeaderTimeoutDefault and
	// ReadTimeoutDefault are used. Live connections are not bound by ReadTimeout.
	ReadHeaderTimeout, ReadTimeout time.Duration
}

// Defaults of the server's timeouts.
const (
	ReadHeaderTimeoutDefault = 10 * time.Second
	ReadTimeoutDefault       = 30 * time.Second
	// maxHeaderBytes is far above what any client of the contract sends.
	maxHeaderBytes = 32 << 10
)

// MaxConnectionsDefault leaves room below the process's open-file limit (which Go raises
// to the hard limit at start) for Redis connections, stored files and logs.
func MaxConnectionsDefault() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return 1 << 20
	}
	return max(int(lim.Cur)-256, 64)
}

// MaxLiveDefault keeps a tenth of maxConnections, and at least 64, for plain requests.
func MaxLiveDefault(maxConnections int) int {
	return max(maxConnections-max(maxConnections/10, 64), 1)
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxFiles <= 0 {
		c.MaxFiles = MaxFilesDefault
	}
	if c.PingInterval <= 0 {
		c.PingInterval = PingIntervalDefault
	}
	if c.Auth == "" {
		c.Auth = AuthKeys
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = MaxConnectionsDefault()
	}
	if c.MaxLive <= 0 {
		c.MaxLive = MaxLiveDefault(c.MaxConnections)
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = ReadHeaderTimeoutDefault
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = ReadTimeoutDefault
	}
	return c
}

// Deps are the API's collaborators, built by the caller.
type Deps struct {
	Redis     redis.UniversalClient // the live hub's pub/sub connection comes from it
	Store     JobStore
	Queue     Enqueuer
	Tasks     Tasks
	Files     FileReader
	Links     FileLinker         // if not nil, downloads are redirected to the URLs it gives
	Sizes     Estimator          // what a job's files will take, checked against the limits
	Keys      KeyStore           // API keys, when Config.Auth is AuthKeys
	Tickets   TicketStore        // live-channel tickets
	Limits    *limits.Limits     // each caller's share
	UI        fs.FS              // the browser UI's files, with index.html at the root
	Docs      fs.FS              // the files of the page that renders the OpenAPI document, index.html at the root
	Dashboard http.Handler       // asynqmon, mounted at /monitoring/; if nil, there is none
	Metrics   http.Handler       // serves GET /metrics (admin only with keys); if nil, it is not on this address
	Observer  Observer           // is told what the API serves, for metrics; if nil, nobody is
	Callbacks CallbackChecker    // checks a job's callback_url; if nil, the server sends no webhooks and refuses one
	Webhooks  *webhook.Announcer // queues the deliveries of the jobs it cancels; if nil, none
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
	pathTicket   = "/v1/download/:job_id/ticket"
	pathWS       = "/ws/download/:job_id"
	pathMe       = "/v1/me"
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
	// sessions counts the goroutines that serve WebSockets (see handleWebSocket); closeLive
	// ends them.
	sessions *sync.WaitGroup
	hub      *live.Hub
	conns    *conns
	http     *http.Server
	tls      [2]string // certificate and key files, when it serves TLS
	maxConns int
	log      *slog.Logger

	// served receives what ended the HTTP server, once; the goroutine of Start owns it.
	served chan error
	// stop ends the background work of Start (renewing live connections' places), which
	// wg awaits with the HTTP server.
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New returns the API with every route of the contract.
func New(cfg Config, d Deps) *Server {
	cfg = cfg.WithDefaults()
	log := d.Log.With("component", "api")
	obs := d.Observer
	if obs == nil {
		obs = unobserved{}
	}
	kept := newBodies(bodiesMaxBytes)
	hub := live.NewHub(d.Redis, d.Store, renderer{kept}, d.Log.With("component", "hub"), obs)
	hosts := newHostCheck(cfg.Auth, cfg.PublicOrigins, cfg.AllowedOrigins)
	ws := newMelody(cfg.PingInterval, hosts, hub)
	sessions := &sync.WaitGroup{}
	watchOnConnect(ws, hub, log)

	r := gin.New()
	// Route on the raw path, so that an encoded "/" in an id stays inside the id and is
	// refused as a malformed id, not routed elsewhere.
	r.UseRawPath = true
	r.RedirectTrailingSlash = false
	// The client's address is the peer's, unless the peer is a trusted proxy: then it is
	// what X-Forwarded-For says. Gin trusts every peer unless told otherwise.
	r.ForwardedByClientIP = true
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	if err := r.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		panic(fmt.Sprintf("api: TrustedProxies: %v", err)) // the configuration reader checks them
	}
	// Requests are named and counted before anything else runs, so that a panic's 500 is
	// counted and logged with the request's id too.
	r.Use(requestIDs(prefixesOf(cfg.TrustedProxies)), countRequests(obs), recovery(log),
		securityHeaders, accessLog(log), hosts.middleware(log), cors(cfg.AllowedOrigins))

	// A wrong method is 405 with Allow, and HEAD works wherever GET does: load balancers
	// and uptime checks send it.
	r.HandleMethodNotAllowed = true
	r.NoMethod(func(c *gin.Context) {
		writeError(c, log, &Error{Status: http.StatusMethodNotAllowed, Code: CodeInvalidRequest,
			Message: fmt.Sprintf("%s is not allowed here; this path takes %s", c.Request.Method, c.Writer.Header().Get("Allow"))})
	})
	get := func(path string, handlers ...gin.HandlerFunc) {
		r.GET(path, handlers...)
		r.HEAD(path, handlers...)
	}

	get("/healthz", handleHealth)
	get("/readyz", handleReady(d.Store, log))
	get(pathOpenAPI, handleOpenAPI(mustOpenAPIJSON()))
	get(pathDocs, serveDocs(d.Docs, log))
	get(pathDocsFile, serveDocs(d.Docs, log))

	a := &access{mode: cfg.Auth, keys: d.Keys, tickets: d.Tickets, limits: d.Limits, log: log}
	cs := newConns(cfg.MaxLive, d.Limits, log, obs)
	start := &initiate{access: a, store: d.Store, queue: d.Queue, tasks: d.Tasks, sizes: d.Sizes, maxFiles: cfg.MaxFiles,
		opts: cfg.Tasks, log: log, obs: obs, callbacks: d.Callbacks}
	get(pathMe, a.identify, handleMe(cfg.Auth))
	r.POST(pathInitiate, a.identify, start.handle)
	get(pathStatus, requireJobID(log), a.identify, handleStatus(a, d.Store, kept))
	r.DELETE(pathJob, requireJobID(log), a.identify, handleCancel(a, d.Store, d.Tasks, d.Webhooks, obs))
	get(pathFile, requireJobID(log), a.identify, handleFile(a, d.Store, d.Files, d.Links))
	r.POST(pathTicket, requireJobID(log), a.identify, handleTicket(a, d.Store))
	hs := newHandshakes(handshakesDefault)
	r.GET(pathEvents, requireJobID(log), a.identifyLive, handleEvents(a, d.Store, cs, hs, hub, cfg.PingInterval))
	r.GET(pathWS, requireJobID(log), a.identifyLive, handleWebSocket(a, d.Store, cs, hs, ws, sessions))

	if d.Metrics != nil {
		get(pathMetrics, a.guardMetrics, gin.WrapH(d.Metrics))
	}
	if d.Dashboard != nil {
		r.Any("/monitoring/*path", a.guardDashboard, gin.WrapH(storeFailures(d.Dashboard, log)))
		get("/monitoring", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/monitoring/") })
	}

	page := servePage(d.UI)
	showPage := func(c *gin.Context) { page(c) }
	get("/", showPage)
	get("/jobs/*job", showPage)
	r.NoRoute(func(c *gin.Context) {
		p := c.Request.URL.Path
		if strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/ws/") || p == "/v1" || p == "/ws" ||
			!page(c) {
			writeError(c, log, notFound("no such endpoint: %s %s", c.Request.Method, p))
		}
	})
	s := &Server{router: r, ws: ws, sessions: sessions, hub: hub, conns: cs, maxConns: cfg.MaxConnections, log: log,
		served: make(chan error, 1)}
	s.tls = [2]string{cfg.TLSCert, cfg.TLSKey}
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s
}

// ServeHTTP serves every route of the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// Start starts the live hub and serves HTTP on l in the background. What ends the server
// before Shutdown arrives on Err.
func (s *Server) Start(l net.Listener) {
	s.hub.Start()
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Go(func() { s.conns.renew(ctx) })
	s.wg.Go(func() { s.conns.releaseMemory(ctx, debug.FreeOSMemory) })
	l = netutil.LimitListener(l, s.maxConns)
	s.wg.Go(func() {
		var err error
		if s.tls[0] != "" {
			err = s.http.ServeTLS(l, s.tls[0], s.tls[1])
		} else {
			err = s.http.Serve(l)
		}
		if !errors.Is(err, http.ErrServerClosed) {
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
	waitWithin(ctx, s.sessions)
	if err := s.http.Shutdown(ctx); err != nil {
		s.log.Warn("http shutdown cut short", "err", err)
	}
	s.stop()
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

// waitWithin waits for wg until ctx ends.
func waitWithin(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
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

// accessLog logs every request with its route pattern, never its URL: the query string
// carries tickets. The request's id comes from its context.
func accessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		log.DebugContext(c.Request.Context(), "request", "method", c.Request.Method, "route", c.FullPath(),
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
