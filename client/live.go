package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// liveMessage is any message of the live channels: a snapshot, a file or job event, or an
// error. Fields that differ in shape between message types stay raw.
type liveMessage struct {
	Type        string          `json:"type"`
	Seq         int64           `json:"seq"`
	Epoch       string          `json:"epoch"`
	Job         *Job            `json:"job"`
	FileID      int64           `json:"file_id"`
	Status      Status          `json:"status"`
	Percent     float64         `json:"percent"`
	Attempt     int             `json:"attempt"`
	Size        int64           `json:"size"`
	DownloadURL string          `json:"download_url"`
	Progress    *Progress       `json:"progress"`
	Error       json.RawMessage `json:"error"`   // a string (file), a JobError (job), or {code, message} (error)
	Waiting     json.RawMessage `json:"waiting"` // absent, null, or a Waiting
}

// liveTimings tune the live channels; tests and the defaults set them.
type liveTimings struct {
	// open is how long a channel may take to deliver its first snapshot.
	open time.Duration
	// stallCheck is the silence on a live channel after which the status endpoint is asked
	// whether the channel missed news.
	stallCheck time.Duration
	// stallGrace is how long a channel that missed news gets to deliver it.
	stallGrace time.Duration
	// idle is the silence (not even a ping or a comment) after which a connection is dead.
	idle time.Duration
}

// defaultLiveTimings are the page's: the server pings at least every 25 s.
var defaultLiveTimings = liveTimings{
	open:       8 * time.Second,
	stallCheck: 5 * time.Second,
	stallGrace: 1500 * time.Millisecond,
	idle:       60 * time.Second,
}

// ended says how a live channel ended.
type ended struct {
	why  string // "error", "closed" (by the server, normally), "going-away", "not-found"
	err  error
	code int // the WebSocket close code, when there was one
}

// liveConn is one live connection being read. Its reader goroutine delivers each message
// and finally how the connection ended; close stops it.
type liveConn interface {
	close(code int)
}

// Close codes the client sends: done with the job, or gave up on the connection.
const (
	closeDone   = websocket.CloseNormalClosure
	closeGaveUp = 4000
)

// closeNotFound is the server's close code for an unknown job.
const closeNotFound = 4404

// authMode is what the client knows about the server's keys.
type authMode int

const (
	authUnknown authMode = iota
	authNone             // no tickets: the server has auth off, or predates keys
	authTickets          // a fresh ticket per live connection
)

// liveAuth finds out once per watch whether live connections need tickets: only with a key,
// and only when /v1/me does not say the server runs without auth.
func (c *Client) liveAuth(ctx context.Context) authMode {
	if c.key == "" {
		return authNone
	}
	a, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/me", ok: []int{http.StatusOK}})
	if IsNotFound(err) {
		return authNone // a server from before keys
	}
	if err != nil {
		return authTickets // the ticket request will say what is wrong
	}
	var me struct {
		Auth string `json:"auth"`
	}
	if json.Unmarshal(a.body, &me) == nil && me.Auth == "none" {
		return authNone
	}
	return authTickets
}

// ticket gets a one-time ticket for one live connection to job id. A server without the
// ticket route (404) gets none: the connection goes without.
func (c *Client) ticket(ctx context.Context, id string) (string, error) {
	a, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/download/" + id + "/ticket",
		ok: []int{http.StatusCreated, http.StatusOK}})
	if IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("get a live-connection ticket: %w", err)
	}
	var t struct {
		Ticket string `json:"ticket"`
	}
	if err := json.Unmarshal(a.body, &t); err != nil || t.Ticket == "" {
		return "", fmt.Errorf("read a live-connection ticket: the answer has none")
	}
	return t.Ticket, nil
}

// liveQuery is the query of a live connection: the ticket, when there is one, and what the
// watch holds of the job once it has a snapshot, so that a record that lost writes the
// watch saw is repaired before its first snapshot.
func liveQuery(ticket string, held *Job) url.Values {
	q := url.Values{}
	if ticket != "" {
		q.Set("ticket", ticket)
	}
	if held != nil {
		q.Set("seq", strconv.FormatInt(held.Seq, 10))
		if held.Epoch != "" {
			q.Set("epoch", held.Epoch)
		}
	}
	return q
}

// wsConn is a live WebSocket.
type wsConn struct {
	conn   *websocket.Conn
	cancel context.CancelFunc
	code   chan int
}

// dialWebSocket opens the job's WebSocket and reads it in a goroutine until it ends or
// ctx ends, handing each message to deliver and how it ended to end. Both drop what they
// are given once the watch has moved on; deliver then reports false and reading stops.
func (c *Client) dialWebSocket(ctx context.Context, id string, query url.Values, deliver func([]byte) bool,
	end func(ended)) (liveConn, error) {
	target := c.url("/ws/download/"+id, query)
	target = "ws" + strings.TrimPrefix(target, "http") // http → ws, https → wss
	dialer := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: c.live.open,
	}
	h := http.Header{"User-Agent": {c.userAgent}}
	conn, resp, err := dialer.DialContext(ctx, target, h)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("open the WebSocket: the server answered %s", resp.Status)
		}
		return nil, fmt.Errorf("open the WebSocket: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &wsConn{conn: conn, cancel: cancel, code: make(chan int, 1)}
	conn.SetReadLimit(maxBody)
	alive := func() { conn.SetReadDeadline(time.Now().Add(c.live.idle)) }
	alive()
	conn.SetPingHandler(func(data string) error {
		alive()
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	stopAfter := context.AfterFunc(ctx, func() {
		code := closeGaveUp
		select {
		case code = <-w.code:
		default:
		}
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""),
			time.Now().Add(time.Second))
		conn.Close()
	})
	go func() {
		defer stopAfter()
		defer conn.Close()
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				end(wsEnded(err))
				return
			}
			alive()
			if !deliver(data) {
				return
			}
		}
	}()
	return w, nil
}

func (w *wsConn) close(code int) {
	select {
	case w.code <- code:
	default:
	}
	w.cancel()
}

// wsEnded says how a WebSocket read ended.
func wsEnded(err error) ended {
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		return ended{why: "error", err: err}
	}
	switch ce.Code {
	case closeNotFound:
		return ended{why: "not-found", code: ce.Code, err: err}
	case websocket.CloseNormalClosure:
		return ended{why: "closed", code: ce.Code}
	case websocket.CloseGoingAway:
		return ended{why: "going-away", code: ce.Code}
	}
	return ended{why: "error", code: ce.Code, err: err}
}

// sseConn is a live event stream.
type sseConn struct {
	cancel context.CancelFunc
}

func (s *sseConn) close(int) { s.cancel() }

// openEventStream opens the job's Server-Sent Events and reads them in a goroutine, as
// dialWebSocket does.
func (c *Client) openEventStream(ctx context.Context, id string, query url.Values, deliver func([]byte) bool,
	end func(ended)) (liveConn, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v1/download/"+id+"/events",
		query), nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open the event stream: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-store")
	req.Header.Set("User-Agent", c.userAgent)
	// The stream's answer must come within the open timeout; the body may then last.
	opened := time.AfterFunc(c.live.open, cancel)
	resp, err := c.http.Do(req)
	if !opened.Stop() && err == nil {
		resp.Body.Close()
		err = errors.New("no answer in time")
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open the event stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body.Close()
		cancel()
		// Even a 404 only fails this channel: it may come from a proxy that does not pass
		// the path on. Polling tells an unknown job from a refused channel.
		return nil, fmt.Errorf("open the event stream: the server answered %s (%s)", resp.Status,
			resp.Header.Get("Content-Type"))
	}
	// A stream that goes silent for longer than its keepalive allows is dead.
	idle := time.AfterFunc(c.live.idle, cancel)
	go func() {
		defer resp.Body.Close()
		defer idle.Stop()
		end(readEvents(bufio.NewReader(resp.Body), func() { idle.Reset(c.live.idle) }, deliver))
	}()
	return &sseConn{cancel: cancel}, nil
}

// readEvents reads an event stream, calling heard for every line and deliver for every
// message, until the stream ends. An `end` event is the server closing after the job's
// final event; an `error` event's data is delivered like a message.
func readEvents(r *bufio.Reader, heard func(), deliver func([]byte) bool) ended {
	var event string
	var data []byte
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: a snapshot of many files. Read the rest of it.
			rest, rerr := r.ReadBytes('\n')
			line, err = append(append([]byte(nil), line...), rest...), rerr
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return ended{why: "error", err: errors.New("the event stream ended")}
			}
			return ended{why: "error", err: err}
		}
		heard()
		text := strings.TrimRight(string(line), "\r\n")
		switch {
		case text == "":
			if event == "end" {
				return ended{why: "closed"}
			}
			if len(data) > 0 && !deliver(data) {
				return ended{why: "closed"}
			}
			event, data = "", nil
		case strings.HasPrefix(text, ":"): // a comment: keepalive
		case strings.HasPrefix(text, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(text, "event:"))
		case strings.HasPrefix(text, "data:"):
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(text, "data:"), " ")...)
			if len(data) > maxBody {
				return ended{why: "error", err: errors.New("an event is too large")}
			}
		}
	}
}
