package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/live"
	"github.com/longhaul-dev/longhaul/requestid"
	"github.com/olahol/melody"
)

// CloseNotFound is the close code of a WebSocket whose job does not exist, or vanished
// while watched, after an error message that says so.
const CloseNotFound = live.CloseNotFound

// watchTimeout bounds the start of a watch: the subscription and the first snapshot.
const watchTimeout = 5 * time.Second

// wsBuffer is how many messages one WebSocket may have queued. A client further behind
// than that is closed underneath, to reconnect and start again from a snapshot. Every
// connection holds its queue for its whole life (melody's channel of 40-byte envelopes,
// 2.6 KiB at 64), but a smaller one cuts clients that keep up yet read a burst a little
// late: at 32, a client following 600 events of 16 KiB was cut in 2 of 25 runs of
// TestSlowClientIsClosedAndOthersGetEverything under the race detector, at 64 in none.
const wsBuffer = 64

// wsReadBuffer is the read buffer of one WebSocket: clients send nothing but control
// frames (pongs, close) of at most 125 bytes. Without it the connection would keep the
// HTTP server's 4 KiB reader for its whole life.
const wsReadBuffer = 256

// newMelody configures melody for live progress: pings often enough for proxies with a 30 s
// idle limit, a small read limit (clients send nothing), an Origin check, and a slow client
// closed rather than silently skipped.
func newMelody(ping time.Duration, hosts *hostCheck, hub *live.Hub) *melody.Melody {
	m := melody.New()
	m.Config.PingPeriod = ping
	m.Config.PongWait = ping + 10*time.Second
	m.Config.MaxMessageSize = 512
	m.Config.MessageBufferSize = wsBuffer
	m.Upgrader.CheckOrigin = hosts.originAllowed
	m.Upgrader.ReadBufferSize = wsReadBuffer
	// Idle connections hold no write buffer: they share a pool.
	m.Upgrader.WriteBufferPool = &sync.Pool{}
	m.Upgrader.Error = func(w http.ResponseWriter, r *http.Request, status int, reason error) {
		writeErrorTo(w, upgradeRefusal(status))
	}
	m.HandleError(func(s *melody.Session, err error) {
		if errors.Is(err, melody.ErrMessageBufferFull) {
			// melody would drop this message and carry on, and its close message would
			// queue behind the full buffer: close the connection underneath instead.
			id, _ := s.Keys["job"].(string)
			hub.ClosedSlow(channelWebSocket, id, wsBuffer)
			s.WebsocketConnection().Close()
		}
	})
	return m
}

// upgradeRefusal is the error of a handshake the upgrader refused: a foreign Origin (403),
// or a request that is not a WebSocket upgrade.
func upgradeRefusal(status int) *Error {
	if status == http.StatusForbidden {
		return errForeignOrigin
	}
	return errNotAnUpgrade
}

// wsSink is a WebSocket as the hub sees it.
type wsSink struct{ s *melody.Session }

func (w wsSink) Send(_ int64, msg []byte) { w.s.Write(msg) }

func (w wsSink) Close(code int, reason string) {
	if code == CloseNotFound {
		w.s.Write(errJobNotFound.frame())
	}
	w.s.CloseWithMsg(melody.FormatCloseMessage(code, reason))
}

// handleWebSocket checks a WebSocket request, then hands its connection off to melody in a
// goroutine of its own (see handOff), which sessions counts.
func handleWebSocket(a *access, store JobStore, cs *conns, hs handshakes, m *melody.Melody, sessions *sync.WaitGroup) gin.HandlerFunc {
	return func(c *gin.Context) {
		// The turn lasts until the hub has the connection (watchOnConnect), or until the
		// handler refuses it.
		leave, ok := hs.turn(c.Request.Context())
		if !ok {
			c.Status(statusClientLeft)
			return
		}
		handedOff := false
		defer func() {
			if !handedOff {
				leave()
			}
		}()
		hidden, ok := a.hiddenJob(c, store)
		if !ok {
			return
		}
		held, err := heldOf(c)
		if err != nil {
			writeError(c, a.log, err)
			return
		}
		if m.IsClosed() || !websocket.IsWebSocketUpgrade(c.Request) {
			// Refused here, while the HTTP server still answers the request itself.
			if m.IsClosed() {
				writeError(c, a.log, errUnavailable)
			} else {
				writeError(c, a.log, errNotAnUpgrade)
			}
			return
		}
		release, ok := cs.acquire(c)
		if !ok {
			return
		}
		keys := map[string]any{"job": c.Param("job_id"), "hidden": hidden, "held": held, "turn": leave}
		r := sessionRequest(c.Request)
		w, err := handOffFrom(c.Writer)
		if err != nil {
			release()
			a.log.DebugContext(r.Context(), "websocket not handed off", "err", err)
			return
		}
		handedOff = true
		sessions.Go(func() {
			defer release()
			defer w.conn.Close()
			defer leave() // when the upgrade was refused, and watchOnConnect never ran
			if err := m.HandleRequestWithKeys(w, r, keys); errors.Is(err, melody.ErrClosed) {
				writeErrorTo(w, errUnavailable)
			}
		})
	}
}

// handshakeHeaders are the headers of a WebSocket request that its upgrade reads.
var handshakeHeaders = []string{"Connection", "Upgrade", "Origin", "Sec-Websocket-Key", "Sec-Websocket-Version",
	"Sec-Websocket-Protocol", "Sec-Websocket-Extensions"}

// sessionRequest is what melody keeps of a WebSocket request for as long as the connection
// lasts: the handshake's headers and the request id, rather than every header a browser
// sends, the router's state and the HTTP server's context. Its
// context does not end with the handler, which returns at once.
func sessionRequest(r *http.Request) *http.Request {
	kept := &http.Request{Method: r.Method, URL: r.URL, Proto: r.Proto, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
		Host: r.Host, RemoteAddr: r.RemoteAddr, RequestURI: r.RequestURI, Header: make(http.Header, len(handshakeHeaders))}
	for _, name := range handshakeHeaders {
		if v, ok := r.Header[name]; ok {
			kept.Header[name] = v
		}
	}
	return kept.WithContext(requestid.With(context.Background(), requestid.From(r.Context())))
}

// notFoundAndClose tells a WebSocket client that its job does not exist, and closes 4404.
func notFoundAndClose(s *melody.Session) { wsSink{s}.Close(CloseNotFound, "job not found") }

// watchOnConnect starts the hub's watch of a new WebSocket's job, and stops it when the
// connection ends.
func watchOnConnect(m *melody.Melody, hub *live.Hub, log *slog.Logger) {
	m.HandleConnect(func(s *melody.Session) {
		defer s.Keys["turn"].(func())()
		id := s.Keys["job"].(string)
		if s.Keys["hidden"] == true {
			notFoundAndClose(s)
			return
		}
		ctx, cancel := context.WithTimeout(s.Request.Context(), watchTimeout)
		defer cancel()
		held, _ := s.Keys["held"].(live.Held)
		stop, err := hub.Watch(ctx, id, wsSink{s}, held)
		switch {
		case errors.Is(err, jobs.ErrNotFound):
			notFoundAndClose(s)
		case err != nil:
			log.WarnContext(s.Request.Context(), "live watch failed", "job", id, "err", err)
			s.Write(errUnavailable.frame())
			s.CloseWithMsg(melody.FormatCloseMessage(live.CloseTryAgainLate, "unavailable"))
		default:
			s.Set("stop", stop)
		}
	})
	m.HandleDisconnect(func(s *melody.Session) {
		if stop, ok := s.Get("stop"); ok {
			stop.(func())()
		}
	})
}
