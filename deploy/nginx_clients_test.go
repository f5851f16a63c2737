package deploy_test

// The live clients of the tests: a WebSocket follower, a Server-Sent Events reader and a
// poller, which record what every connection delivered; a WebSocket client that reconnects
// after a connection breaks; and a client that falls back from one channel to the next.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/longhaul-dev/longhaul/internal/livetest"
	"github.com/longhaul-dev/longhaul/jobs"
)

// The channels a client can follow a job on.
const (
	viaWebSocket = "websocket"
	viaSSE       = "sse"
	viaPolling   = "polling"
)

// upstreamHeader is set by the tests' nginx (not by the reference configuration) to the
// API instance it passed a request to, so that a test knows which instance a client is on.
const upstreamHeader = "X-Upstream-Addr"

// quietLimit is the longest a live connection may stay silent (no event, no ping, no
// comment) before a client gives up on it: well past the 25 s that longhaul's keepalive
// never exceeds.
const quietLimit = time.Minute

// session is what one connection (or one run of polling) delivered.
type session struct {
	via        string
	upstream   string // the instance nginx chose, from upstreamHeader; the last one it tried
	msgs       []livetest.Message
	keepalives int      // WebSocket pings or SSE comments
	closeCode  int      // the WebSocket close code, if the server closed with one
	end        string   // how it ended, for messages; empty while it is open
	problems   []string // breaches of the contract seen on the wire
}

// recorder keeps the sessions of one client, in order, for the test to watch while the
// client's goroutine fills them.
type recorder struct {
	// slim drops the error text of events as they arrive, for tests whose events carry
	// bulk that only the server needs to move.
	slim bool

	mu       sync.Mutex
	sessions []*session
	notes    []string         // what the client tried that did not work
	latest   livetest.Message // the last message of any session
	any      bool             // latest is set
}

func (r *recorder) begin(via, upstream string) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := strings.LastIndex(upstream, ","); i >= 0 {
		upstream = upstream[i+1:]
	}
	s := &session{via: via, upstream: strings.TrimSpace(upstream)}
	r.sessions = append(r.sessions, s)
	return s
}

func (r *recorder) add(s *session, m livetest.Message) {
	if r.slim && m.Type != "snapshot" {
		m.Error = nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s.msgs = append(s.msgs, m)
	r.latest, r.any = m, true
}

// last is the last message the client received, on any connection.
func (r *recorder) last() (livetest.Message, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.latest, r.any
}

func (r *recorder) keepalive(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.keepalives++
}

func (r *recorder) problem(s *session, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

func (r *recorder) finish(s *session, closeCode int, how string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.closeCode, s.end = closeCode, how
}

func (r *recorder) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// view is a copy of what a client recorded so far.
type view struct {
	sessions []session
	notes    []string
}

func (r *recorder) view() view {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := view{notes: append([]string(nil), r.notes...)}
	for _, s := range r.sessions {
		c := *s
		c.msgs = append([]livetest.Message(nil), s.msgs...)
		c.problems = append([]string(nil), s.problems...)
		v.sessions = append(v.sessions, c)
	}
	return v
}

// finished reports whether the client has seen a terminal status.
func (r *recorder) finished() bool {
	m, ok := r.last()
	return ok && terminal(m)
}

// waitUntil waits for cond over what the client recorded, failing the test after limit.
func (r *recorder) waitUntil(t *testing.T, limit time.Duration, what string, cond func(view) bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		v := r.view()
		if cond(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; the client saw:\n%s", limit, what, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// last is the last message of the last session that has one.
func (v view) last() (livetest.Message, bool) {
	for i := len(v.sessions) - 1; i >= 0; i-- {
		if ms := v.sessions[i].msgs; len(ms) > 0 {
			return ms[len(ms)-1], true
		}
	}
	return livetest.Message{}, false
}

func (v view) vias() []string {
	var out []string
	for _, s := range v.sessions {
		out = append(out, s.via)
	}
	return out
}

func (v view) String() string {
	var b strings.Builder
	for _, n := range v.notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	for i, s := range v.sessions {
		fmt.Fprintf(&b, "  session %d over %s (upstream %q): %d messages %s, %d keepalives, ended %q\n",
			i, s.via, s.upstream, len(s.msgs), seqSummary(s.msgs), s.keepalives, s.end)
	}
	return b.String()
}

// seqSummary is the first and last few messages of a session, as type:seq.
func seqSummary(msgs []livetest.Message) string {
	var parts []string
	for i, m := range msgs {
		if i < 4 || i >= len(msgs)-4 {
			parts = append(parts, fmt.Sprintf("%s:%d", m.Type, m.Seq))
		} else if i == 4 {
			parts = append(parts, "...")
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// terminal reports whether a message says that its job is finished.
func terminal(m livetest.Message) bool {
	if m.Type == "snapshot" {
		return m.Job != nil && m.Job.Status.Terminal()
	}
	return m.Type == "job" && jobs.Status(m.Status).Terminal()
}

// statusOf is the job status a message carries (for a file event, the file's).
func statusOf(m livetest.Message) string {
	if m.Type == "snapshot" && m.Job != nil {
		return string(m.Job.Status)
	}
	return m.Status
}

// orderErrors checks the contract's ordering rules over all the sessions of one client:
// every connection starts with a snapshot; within a connection every event has the seq
// after the one before (a newer snapshot may come between, as a resync); and no message,
// on any later connection, is older than one already seen.
func orderErrors(v view) []string {
	var errs []string
	last := int64(-1)
	for i, s := range v.sessions {
		for _, p := range s.problems {
			errs = append(errs, fmt.Sprintf("session %d (%s): %s", i, s.via, p))
		}
		for j, m := range s.msgs {
			switch {
			case j == 0 && m.Type != "snapshot":
				errs = append(errs, fmt.Sprintf("session %d (%s): first message is %q seq %d, want a snapshot", i, s.via, m.Type, m.Seq))
			case m.Type == "snapshot" && m.Seq < last:
				errs = append(errs, fmt.Sprintf("session %d (%s): snapshot seq %d is older than seq %d already seen", i, s.via, m.Seq, last))
			case m.Type != "snapshot" && j > 0 && m.Seq != last+1:
				errs = append(errs, fmt.Sprintf("session %d (%s): %s event seq %d after seq %d: a gap or a repeat", i, s.via, m.Type, m.Seq, last))
			}
			last = max(last, m.Seq)
		}
	}
	return errs
}

// checkOrder fails the test for every breach of the ordering rules.
func checkOrder(t *testing.T, who string, v view) {
	t.Helper()
	for _, e := range orderErrors(v) {
		t.Errorf("%s: %s", who, e)
	}
}

// dialLive opens the live WebSocket of job id through base, with the Origin a browser on
// base would send.
func dialLive(ctx context.Context, d *websocket.Dialer, base, id string) (*websocket.Conn, *http.Response, error) {
	url := "ws" + strings.TrimPrefix(base, "http") + "/ws/download/" + id
	return d.DialContext(ctx, url, http.Header{"Origin": {base}})
}

// followWS records the messages of a WebSocket until it closes, it stays silent for longer
// than quiet, or ctx ends. It answers pings as a browser does, and counts them.
func followWS(ctx context.Context, conn *websocket.Conn, rec *recorder, s *session, quiet time.Duration) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetPingHandler(func(data string) error {
		rec.keepalive(s)
		conn.SetReadDeadline(time.Now().Add(quiet))
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	for {
		conn.SetReadDeadline(time.Now().Add(quiet))
		_, data, err := conn.ReadMessage()
		var ce *websocket.CloseError
		switch {
		case errors.As(err, &ce):
			rec.finish(s, ce.Code, fmt.Sprintf("close %d %s", ce.Code, ce.Text))
			return
		case err != nil:
			rec.finish(s, 0, "broken: "+err.Error())
			return
		}
		var m livetest.Message
		if err := json.Unmarshal(data, &m); err != nil {
			rec.problem(s, "message is not JSON: %.200q", data)
			continue
		}
		rec.add(s, m)
	}
}

// openSSE opens the event stream of job id through base.
func openSSE(ctx context.Context, client *http.Client, base, id string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/download/"+id+"/events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		return nil, fmt.Errorf("event stream answered HTTP %d with Content-Type %q", resp.StatusCode, ct)
	}
	return resp, nil
}

// followSSE records the events of a stream until it ends. quiet bounds the silence between
// two lines (events or comments); first, unless zero, bounds the wait for the first event,
// whatever comments come before it: a buffering proxy may let comments through late, or not
// at all, and a client that waits for its snapshot longer than that should move on.
func followSSE(body io.ReadCloser, rec *recorder, s *session, quiet, first time.Duration) {
	defer body.Close()
	var silent atomic.Bool
	limit := quiet
	if first > 0 {
		limit = first
	}
	watchdog := time.AfterFunc(limit, func() { silent.Store(true); body.Close() })
	defer watchdog.Stop()
	started := first == 0
	br := bufio.NewReader(body)
	var id, event string
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if silent.Load() {
				rec.finish(s, 0, fmt.Sprintf("silent for %v", limit))
			} else {
				rec.finish(s, 0, "broken: "+err.Error())
			}
			return
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if event == "end" {
				rec.finish(s, 0, "event: end")
				return
			}
			if len(data) > 0 {
				sseEvent(rec, s, id, strings.Join(data, "\n"))
				started, limit = true, quiet
			}
			id, event, data = "", "", nil
		case strings.HasPrefix(line, ":"):
			rec.keepalive(s)
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id = value
			case "event":
				event = value
			case "data":
				data = append(data, value)
			}
		}
		if started {
			watchdog.Reset(quiet)
		}
	}
}

// sseEvent records one event, whose id must be its seq.
func sseEvent(rec *recorder, s *session, id, data string) {
	var m livetest.Message
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		rec.problem(s, "event data is not JSON: %.200q", data)
		return
	}
	if id != fmt.Sprint(m.Seq) {
		rec.problem(s, "event id %q differs from its seq %d", id, m.Seq)
	}
	rec.add(s, m)
}

// pollStatus follows a job through the status endpoint with If-None-Match, recording every
// new status as a snapshot, until the job is finished.
func pollStatus(ctx context.Context, client *http.Client, base, id string, rec *recorder, s *session) {
	etag := ""
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/download/status/"+id, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := client.Do(req)
		if err != nil {
			rec.finish(s, 0, "broken: "+err.Error())
			return
		}
		var body struct {
			jobs.Job
			PollAfterMS int `json:"poll_after_ms"`
		}
		switch resp.StatusCode {
		case http.StatusNotModified:
			rec.keepalive(s)
		case http.StatusOK:
			err = json.NewDecoder(resp.Body).Decode(&body)
			etag = resp.Header.Get("ETag")
		default:
			err = fmt.Errorf("status answered HTTP %d", resp.StatusCode)
		}
		resp.Body.Close()
		if err != nil {
			rec.finish(s, 0, "broken: "+err.Error())
			return
		}
		if resp.StatusCode == http.StatusOK {
			m := livetest.Message{Type: "snapshot", Seq: body.Seq, Job: &body.Job}
			rec.add(s, m)
			if terminal(m) {
				rec.finish(s, 0, "terminal status")
				return
			}
		}
		wait := time.Duration(body.PollAfterMS) * time.Millisecond
		if wait <= 0 || wait > 5*time.Second {
			wait = time.Second
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			rec.finish(s, 0, "canceled")
			return
		}
	}
}

// reconnectingClient follows a job over WebSocket and, whenever a connection breaks before
// the job is finished, connects again (a reconnect starts with a fresh snapshot).
func reconnectingClient(ctx context.Context, base, id string, rec *recorder) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil && !rec.finished() {
		conn, resp, err := dialLive(ctx, websocket.DefaultDialer, base, id)
		if err != nil {
			rec.note("reconnect: %v%s", err, httpStatus(resp))
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		followWS(ctx, conn, rec, rec.begin(viaWebSocket, resp.Header.Get(upstreamHeader)), quietLimit)
	}
}

// fallbackClient follows a job as the browser UI does when a network breaks live channels:
// WebSocket first, then Server-Sent Events, then polling, each tried when the one before
// cannot deliver.
type fallbackClient struct {
	base string
	rec  *recorder
	// sseFirst bounds the wait for an event stream's snapshot. A proxy that buffers the
	// stream holds it back; the client then polls instead.
	sseFirst time.Duration
}

func (c *fallbackClient) follow(ctx context.Context, id string) {
	conn, resp, err := dialLive(ctx, websocket.DefaultDialer, c.base, id)
	if err == nil {
		followWS(ctx, conn, c.rec, c.rec.begin(viaWebSocket, resp.Header.Get(upstreamHeader)), quietLimit)
		if c.rec.finished() {
			return
		}
	} else {
		c.rec.note("websocket failed: %v%s", err, httpStatus(resp))
	}
	if c.followSSE(ctx, id) {
		return
	}
	pollStatus(ctx, &http.Client{Timeout: 10 * time.Second}, c.base, id, c.rec, c.rec.begin(viaPolling, ""))
}

// followSSE follows the job's event stream and reports whether it saw the job finish. A
// stream whose response or first event does not come within sseFirst is abandoned.
func (c *fallbackClient) followSSE(ctx context.Context, id string) bool {
	s := c.rec.begin(viaSSE, "")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A proxy that holds the stream back may hold its headers back too.
	noHeaders := time.AfterFunc(c.sseFirst, cancel)
	resp, err := openSSE(ctx, &http.Client{}, c.base, id)
	if !noHeaders.Stop() {
		err = fmt.Errorf("no response within %v", c.sseFirst)
	}
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		c.rec.finish(s, 0, "failed: "+err.Error())
		return false
	}
	followSSE(resp.Body, c.rec, s, quietLimit, c.sseFirst)
	return c.rec.finished()
}

func httpStatus(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	return fmt.Sprintf(" (HTTP %d)", resp.StatusCode)
}

// tinyReceiveBuffer is a dialer hook that shrinks the socket's receive buffer, so that a
// client that stops reading pushes back on the server after a few KiB, not after the
// megabytes that loopback sockets buffer by default.
func tinyReceiveBuffer(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
	return errors.Join(err, serr)
}

// stuckDialer dials connections whose reader never reads.
func stuckDialer() *net.Dialer {
	return &net.Dialer{Control: tinyReceiveBuffer, Timeout: 10 * time.Second}
}
