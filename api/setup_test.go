package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/auth"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/limits"
	"github.com/longhaul-dev/longhaul/origin"
	"github.com/longhaul-dev/longhaul/requestid"
	"github.com/longhaul-dev/longhaul/storage"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

// env is an API on a real Redis with no worker: tests drive jobs through the store.
type env struct {
	srv      *server
	api      *api.Server
	apiKeys  *auth.Keys
	store    *jobs.Store
	files    storage.Store
	filesDir string // empty when files are kept in a bucket
	rdb      *redis.Client
	redis    *redistest.Server
	// contract checks every request that do sends, and its answer, against the document.
	contract *contract
}

// newEnv starts an API configured by cfg, with auth off unless cfg says otherwise, and no
// limits.
func newEnv(t *testing.T, cfg api.Config) *env {
	t.Helper()
	return newEnvWith(t, cfg, envOptions{})
}

// envOptions configure what newEnvWith builds beside the API.
type envOptions struct {
	store     jobs.Options
	limits    limitsConfig
	sizes     api.Estimator // if nil, the demo's origin with its default sizes
	ticketTTL time.Duration // if zero, auth.TicketTTLDefault
	log       io.Writer     // where the API logs, at debug level; if nil, nowhere (or the test's log with -v)
	// bucket, if not nil, keeps the files instead of a directory, and downloads are
	// redirected to it.
	bucket *storage.Bucket
}

type limitsConfig = limits.Config

// newEnvWith is newEnv with the store and limits of opts.
func newEnvWith(t *testing.T, cfg api.Config, opts envOptions) *env {
	t.Helper()
	if cfg.Auth == "" {
		cfg.Auth = api.AuthNone
	}
	if opts.sizes == nil {
		opts.sizes = origin.Simulated{}
	}
	rs := redistest.Start(t, redistest.Options{})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if opts.log != nil {
		log = slog.New(requestid.LogHandler(slog.NewTextHandler(opts.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	} else if testing.Verbose() {
		log = slog.New(requestid.LogHandler(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}
	store := jobs.NewStore(rdb, opts.store)
	keys := auth.NewKeys(rdb)
	var files storage.Store
	var links api.FileLinker
	var filesDir string
	if opts.bucket != nil {
		files, links = opts.bucket, opts.bucket
	} else {
		filesDir = t.TempDir()
		dir, err := storage.NewDir(filesDir)
		if err != nil {
			t.Fatal(err)
		}
		files = dir
	}
	a := api.New(cfg, api.Deps{
		Redis: rdb, Store: store, Queue: asynq.NewClientFromRedisClient(rdb),
		Tasks: asynq.NewInspectorFromRedisClient(rdb), Files: files, Links: links, Log: log,
		Sizes: opts.sizes, Keys: keys, Tickets: auth.NewTickets(rdb, opts.ticketTTL),
		Limits: limits.New(rdb, store, opts.limits, time.Hour),
		UI:     fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>longhaul</title>")}},
		Docs:   docsPage(),
		Dashboard: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == dashboardRedisDown {
				// What asynqmon answers when it cannot read the queues.
				http.Error(w, "dial tcp 10.0.0.7:6379: connect: connection refused", http.StatusInternalServerError)
				return
			}
			io.WriteString(w, "dashboard")
		}),
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			io.WriteString(w, "# the metrics\n")
		}),
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.Start(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	return &env{srv: &server{URL: "http://" + l.Addr().String()}, api: a, apiKeys: keys, store: store, files: files, filesDir: filesDir,
		rdb: rdb, redis: rs, contract: newContract(t)}
}

// dashboardRedisDown is where the dashboard of a test answers as asynqmon does when Redis
// is away.
const dashboardRedisDown = "/monitoring/api/queues/redis-down"

// server is where the API of a test listens.
type server struct{ URL string }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// do sends a request and returns the response with its body read.
func (e *env) do(t *testing.T, method, path, contentType, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	e.contract.check(t, req, body, resp, data)
	return resp, string(data)
}

// keys counts the keys in Redis.
func (e *env) keys(t *testing.T) int64 {
	t.Helper()
	n, err := e.rdb.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newJob creates a job in the store directly, claimed by attempt "a".
func (e *env) newJob(t *testing.T, fileIDs ...int64) string {
	t.Helper()
	id := jobs.NewID()
	ctx := context.Background()
	if err := e.store.Create(ctx, id, fileIDs); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Claim(ctx, id, "a"); err != nil {
		t.Fatal(err)
	}
	return id
}

func (e *env) update(t *testing.T, id string, f jobs.File) {
	t.Helper()
	if err := e.store.UpdateFile(context.Background(), id, "a", f); err != nil {
		t.Fatal(err)
	}
}

func (e *env) inspector() *asynq.Inspector { return asynq.NewInspectorFromRedisClient(e.rdb) }

// downloadURL is where the status body says file fileID of job id downloads from.
func (e *env) downloadURL(t *testing.T, id string, fileID int64) string {
	t.Helper()
	_, body := e.do(t, "GET", "/v1/download/status/"+id, "", "")
	var status struct {
		Files []struct {
			ID          int64  `json:"file_id"`
			DownloadURL string `json:"download_url"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(body), &status); err != nil {
		t.Fatal(err)
	}
	for _, f := range status.Files {
		if f.ID == fileID && f.DownloadURL != "" {
			return f.DownloadURL
		}
	}
	t.Fatalf("the status of job %s gives no download_url for file %d: %s", id, fileID, body)
	return ""
}
