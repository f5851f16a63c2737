package api

import (
	"time"

	"github.com/gin-gonic/gin"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/live"
)

// Observer is told what the API serves, for metrics: every request, the jobs it creates and
// cancels, the live sessions it holds, and, as the live hub's Observer, how the hub copes.
// Its methods must be safe for concurrent use and must not block.
type Observer interface {
	live.Observer
	// Request: route (its pattern; empty when no route matched) answered method with status
	// after took.
	Request(route, method string, status int, took time.Duration)
	// JobCreated: a job was created and queued.
	JobCreated()
	// JobFinished: a job created at createdAt ended with status (here: canceled).
	JobFinished(status jobs.Status, createdAt time.Time)
	// LiveOpened: a live session of channel (websocket, sse) opened; closed is called when it
	// ends.
	LiveOpened(channel string) (closed func())
}

// pathMetrics is where the API serves metrics, when it serves them on its own address.
const pathMetrics = "/metrics"

// The channels of live sessions, as metrics and logs name them.
const (
	channelWebSocket = "websocket"
	channelSSE       = "sse"
)

// liveChannels are the live routes and their channels.
var liveChannels = map[string]string{pathWS: channelWebSocket, pathEvents: channelSSE}

// unobserved is the Observer of an API that nobody observes.
type unobserved struct{}

func (unobserved) SlowClientClosed(string)                    {}
func (unobserved) Resynced()                                  {}
func (unobserved) PubSubReconnected()                         {}
func (unobserved) Request(string, string, int, time.Duration) {}
func (unobserved) JobCreated()                                {}
func (unobserved) JobFinished(jobs.Status, time.Time)         {}
func (unobserved) LiveOpened(string) func()                   { return func() {} }

// countRequests tells obs of every request once it is answered: by route pattern, never by
// path, so that job ids make no series of their own.
func countRequests(obs Observer) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		obs.Request(c.FullPath(), c.Request.Method, c.Writer.Status(), time.Since(start))
	}
}

// guardMetrics lets through, with keys, only an admin key: metrics tell how busy the
// service is and what fails in it. With auth off, like every route, they are open.
func (a *access) guardMetrics(c *gin.Context) {
	if a.mode == AuthNone {
		return
	}
	if a.identify(c); !c.IsAborted() {
		requireAdmin(a.log)(c)
	}
}
