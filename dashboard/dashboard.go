// Package dashboard mounts asynqmon, the queue dashboard, under /monitoring/. Who may open
// it is the API's to decide (it holds the keys); this package builds the dashboard itself:
// read-only when asked, and with a page that loads nothing from outside hosts.
package dashboard

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
)

// RootPath is where the dashboard is served.
const RootPath = "/monitoring"

// Options configure the dashboard.
type Options struct {
	// ReadOnly refuses every change through the dashboard: asynqmon answers its write
	// requests with 405 and hides their buttons.
	ReadOnly bool
}

// New returns the dashboard, reading the queues through rdb.
func New(rdb redis.UniversalClient, opts Options) http.Handler {
	return offline(asynqmon.New(asynqmon.Options{
		RootPath:     RootPath,
		RedisConnOpt: sharedClient{rdb},
		ReadOnly:     opts.ReadOnly,
	}))
}

// sharedClient hands asynqmon the process's one Redis client instead of letting it dial
// its own from separate settings.
type sharedClient struct{ rdb redis.UniversalClient }

var _ asynq.RedisConnOpt = sharedClient{}

// MakeRedisClient returns the shared client.
func (s sharedClient) MakeRedisClient() any { return s.rdb }

// outsideFonts are the stylesheets asynqmon's page loads from Google's font host. Without
// them the page falls back to the system's sans-serif and draws its icons from its own
// bundle (they are SVG components), so it works on a network that reaches no outside host.
var outsideFonts = regexp.MustCompile(`<link rel="stylesheet" href="https://fonts\.googleapis\.com/[^"]*"/?>`)

// offline serves h with the outside font links taken out of its HTML pages.
func offline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, RootPath+"/api/") || strings.HasPrefix(r.URL.Path, RootPath+"/static/") {
			h.ServeHTTP(w, r)
			return
		}
		page := &bufferedPage{header: http.Header{}, status: http.StatusOK}
		h.ServeHTTP(page, r)
		body := page.body.Bytes()
		kind := page.header.Get("Content-Type")
		if kind == "" {
			kind = http.DetectContentType(body) // what net/http would send
		}
		if strings.HasPrefix(kind, "text/html") {
			body = outsideFonts.ReplaceAll(body, nil)
			page.header.Del("Content-Length")
		}
		for k, v := range page.header {
			w.Header()[k] = v
		}
		w.WriteHeader(page.status)
		w.Write(body)
	})
}

// bufferedPage holds a response so that it can be changed before it is sent. Only the
// dashboard's page and small files go through it; its API and bundles stream.
type bufferedPage struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (p *bufferedPage) Header() http.Header         { return p.header }
func (p *bufferedPage) Write(b []byte) (int, error) { return p.body.Write(b) }
func (p *bufferedPage) WriteHeader(status int)      { p.status = status }
