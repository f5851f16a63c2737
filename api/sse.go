package api

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/live"
)

// sseBuffer is how many messages one SSE stream may have queued before it is ended, for
// the client to reconnect and start again from a snapshot.
const sseBuffer = 64

// sseWriteTimeout bounds one write to a stream, so a client that stopped reading cannot
// hold its handler forever.
const sseWriteTimeout = 10 * time.Second

type sseMessage struct {
	seq int64
	msg []byte
}

// sseSink is an SSE stream as the hub sees it. The hub sends into a bounded queue that the
// stream's handler drains.
type sseSink struct {
	msgs chan sseMessage
	once sync.Once
	done chan struct{} // closed by Close or by an overflow
	code int           // written before done is closed
}

func newSSESink() *sseSink {
	return &sseSink{msgs: make(chan sseMessage, sseBuffer), done: make(chan struct{})}
}

func (s *sseSink) Send(seq int64, msg []byte) {
	select {
	case s.msgs <- sseMessage{seq, msg}:
	default:
		s.Close(live.CloseTooSlow, "client too slow")
	}
}

func (s *sseSink) Close(code int, _ string) {
	s.once.Do(func() {
		s.code = code
		close(s.done)
	})
}

func handleEvents(a *access, store JobStore, cs *conns, hs handshakes, hub *live.Hub, ping time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		// The turn lasts until the hub has the stream, or until the handler refuses it.
		leave, ok := hs.turn(ctx)
		if !ok {
			c.Status(statusClientLeft)
			return
		}
		defer leave()
		hidden, ok := a.hiddenJob(c, store)
		if !ok {
			return
		}
		if hidden {
			a.writeJobError(c, jobs.ErrNotFound)
			return
		}
		held, err := heldOf(c)
		if err != nil {
			writeError(c, a.log, err)
			return
		}
		release, ok := cs.acquire(c)
		if !ok {
			return
		}
		defer release()
		sink := newSSESink()
		stop, err := hub.Watch(ctx, c.Param("job_id"), sink, held)
		if err != nil {
			a.writeJobError(c, err)
			return
		}
		defer stop()
		h := c.Writer.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
		c.Status(http.StatusOK)
		stream := &sseStream{w: c.Writer, rc: http.NewResponseController(c.Writer)}
		// The server's ReadTimeout is for reading requests; past it net/http would end this
		// stream's context. The stream's own writes have their deadlines.
		stream.rc.SetReadDeadline(time.Time{})
		// A comment at once gets the headers through proxies before the first event.
		if stream.write(": connected\n\n") != nil {
			return
		}
		leave() // set up: the snapshot is queued
		keepalive := time.NewTicker(ping)
		defer keepalive.Stop()
		for {
			select {
			case m := <-sink.msgs:
				if stream.event(m) != nil {
					return
				}
			case <-keepalive.C:
				if stream.write(": keepalive\n\n") != nil {
					return
				}
			case <-sink.done:
				stream.drain(sink)
				switch sink.code {
				case live.CloseNormal:
					stream.write("event: end\ndata: {}\n\n")
				case live.CloseNotFound:
					// The job vanished while watched: the same error message as on a
					// WebSocket, then the end, so the client stops reconnecting.
					stream.write("data: " + string(errJobNotFound.frame()) + "\n\nevent: end\ndata: {}\n\n")
				case live.CloseTooSlow:
					hub.ClosedSlow(channelSSE, c.Param("job_id"), sseBuffer)
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}
}

type sseStream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s *sseStream) write(text string) error {
	s.rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
	if _, err := fmt.Fprint(s.w, text); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *sseStream) event(m sseMessage) error {
	return s.write(fmt.Sprintf("id: %d\ndata: %s\n\n", m.seq, m.msg))
}

// drain writes what was queued before the sink closed: the final event among it.
func (s *sseStream) drain(sink *sseSink) {
	for {
		select {
		case m := <-sink.msgs:
			if s.event(m) != nil {
				return
			}
		default:
			return
		}
	}
}
