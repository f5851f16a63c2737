package api

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/longhaul-dev/longhaul/limits"
)

// conns counts the live connections (WebSocket and SSE): this process's, against a cap that
// keeps it within its file descriptors, and each caller's across every process, against the
// caller's cap. A live connection holds a place from before its upgrade until it ends.
type conns struct {
	max    int // this process's cap; 0 for none
	limits *limits.Limits
	log    *slog.Logger
	obs    Observer // counts the open ones by channel

	open     atomic.Int64
	instance string        // names this process in connection ids
	next     atomic.Uint64 // numbers its connections

	mu   sync.Mutex
	held map[string]map[string]bool // principal → its open connections here; guarded by mu
}

func newConns(max int, l *limits.Limits, log *slog.Logger, obs Observer) *conns {
	return &conns{max: max, limits: l, log: log, obs: obs, instance: rand.Text()[:8], held: map[string]map[string]bool{}}
}

var errServerFull = &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
	Message: "this server holds as many live connections as it may; poll the status endpoint, or retry shortly"}

// acquire takes a place for a live connection of the request's caller, or answers the
// request with the refusal and reports false. The release it returns gives the place back.
func (cs *conns) acquire(c *gin.Context) (release func(), ok bool) {
	if cs.max > 0 && cs.open.Add(1) > int64(cs.max) {
		cs.open.Add(-1)
		writeError(c, cs.log, errServerFull)
		return nil, false
	} else if cs.max <= 0 {
		cs.open.Add(1)
	}
	principal := callerOf(c).principal
	id := cs.instance + ":" + strconv.FormatUint(cs.next.Add(1), 10)
	held, err := cs.limits.OpenLive(c.Request.Context(), principal, id)
	if err != nil || !held {
		cs.open.Add(-1)
		if err != nil {
			writeError(c, cs.log, err)
		} else {
			writeLimited(c, limits.Decision{RetryAfter: 10 * time.Second,
				Reason: "this key holds as many live connections as it may (" +
					strconv.Itoa(cs.limits.Config().MaxLive) + "); close one, or poll the status endpoint"})
			c.Abort()
		}
		return nil, false
	}
	cs.mu.Lock()
	if cs.held[principal] == nil {
		cs.held[principal] = map[string]bool{}
	}
	cs.held[principal][id] = true
	cs.mu.Unlock()
	closed := cs.obs.LiveOpened(liveChannels[c.FullPath()])
	var once sync.Once
	return func() {
		once.Do(func() {
			closed()
			cs.open.Add(-1)
			cs.mu.Lock()
			delete(cs.held[principal], id)
			if len(cs.held[principal]) == 0 {
				delete(cs.held, principal)
			}
			cs.mu.Unlock()
			if err := cs.limits.CloseLive(context.Background(), principal, id); err != nil {
				cs.log.Debug("live connection's place not given back; it lapses by itself", "err", err)
			}
		})
	}, true
}

// renew keeps the places of the open connections, until ctx ends.
func (cs *conns) renew(ctx context.Context) {
	t := time.NewTicker(limits.LiveLease / 3)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			cs.mu.Lock()
			open := make(map[string][]string, len(cs.held))
			for p, ids := range cs.held {
				for id := range ids {
					open[p] = append(open[p], id)
				}
			}
			cs.mu.Unlock()
			if err := cs.limits.RenewLive(ctx, open); err != nil {
				cs.log.Warn("could not renew live connections' places", "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// releaseWave is how many live connections must have opened or closed since memory was
// last given back before it is given back again: each held some 20 KiB of goroutine stacks
// and buffers while it was open, and left as much garbage behind when it upgraded.
const releaseWave = 1000

// releaseCheck is how often releaseMemory looks at the open connections; a wave has
// settled when the count moved by less than a tenth of releaseWave in one check.
const releaseCheck = time.Second

// releaser decides when memory goes back after a wave of live connections settles: a
// deploy's reconnect storm, a crowd that arrives or leaves. A closed connection's stacks and
// buffers are garbage, and so are the HTTP server's buffers of every connection that
// upgraded; the stacks that the upgrades grew only shrink in a collection. An API with
// little else to do may not collect for two minutes (Go collects as the heap grows, or
// every two), and the runtime returns free pages to the system slowly.
type releaser struct {
	most, least int64 // the most and fewest open since memory was last given back
	last        int64 // open at the previous check
}

// after reports whether, with open connections now, a wave has come and settled since
// memory was last given back; it then counts from now.
func (r *releaser) after(open int64) bool {
	r.most, r.least = max(r.most, open), min(r.least, open)
	settled := max(open-r.last, r.last-open) < releaseWave/10
	r.last = open
	if !settled || (r.most-open < releaseWave && open-r.least < releaseWave) {
		return false
	}
	r.most, r.least = open, open
	return true
}

// releaseMemory gives memory back with free (debug.FreeOSMemory: a collection, then every
// free page returned) whenever releaser says, every releaseCheck, until ctx ends.
func (cs *conns) releaseMemory(ctx context.Context, free func()) {
	t := time.NewTicker(releaseCheck)
	defer t.Stop()
	var r releaser
	for {
		select {
		case <-t.C:
			if open := cs.open.Load(); r.after(open) {
				free()
				cs.log.Debug("gave memory back after a wave of live connections", "open", open)
			}
		case <-ctx.Done():
			return
		}
	}
}
