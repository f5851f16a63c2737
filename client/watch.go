package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"
)

// EventType says what an Event reports.
type EventType string

// The types of Event.
const (
	// EventSnapshot carries the whole job in Job: first, after a resync, and last.
	EventSnapshot EventType = "snapshot"
	// EventFile carries the one file that changed in File.
	EventFile EventType = "file"
	// EventJob says that the job's own status, error or waiting changed; Job is the whole job.
	EventJob EventType = "job"
	// EventChannel says that news now comes another way: Channel, and Reason why.
	EventChannel EventType = "channel"
	// EventError ends a watch that cannot go on, with Err: an unknown job (an *Error with
	// status 404), a refused key, or a server unreachable for longer than WithGiveUp.
	EventError EventType = "error"
)

// Channel is how a watch gets its news.
type Channel string

// The channels of a watch, in the order it tries them.
const (
	ChannelWebSocket Channel = "websocket"
	ChannelSSE       Channel = "sse"
	ChannelPolling   Channel = "polling"
	// ChannelNone is no channel: connecting, or nothing reaches the server right now.
	ChannelNone Channel = ""
)

// Event is one piece of news of a watched job. Status and Progress are the job's after the
// event, on every event but EventChannel and EventError.
type Event struct {
	Type     EventType
	Seq      int64
	Status   Status
	Progress Progress
	// Job is the whole job on EventSnapshot and EventJob: a copy the receiver may keep.
	Job *Job
	// File is the file that changed, on EventFile.
	File *File
	// Channel is the channel delivering news now, on EventChannel.
	Channel Channel
	// Reason says, for people, why the previous channel was left, on EventChannel.
	Reason string
	// Err is why the watch ends, on EventError.
	Err error
}

// Watch follows job id and sends its news on the returned channel until the job ends, ctx
// ends or the watch cannot go on; then the channel is closed.
//
// It follows the rules of longhaul's own page. A WebSocket first; when it cannot open,
// Server-Sent Events; when neither can, polling of the status endpoint (with If-None-Match)
// while live attempts go on with exponential backoff and jitter. The first event is always a
// snapshot. A gap in seq is closed with a snapshot read from the status endpoint; progress
// never goes backwards, and a finished file never becomes unfinished. A live channel that
// falls silent while the server has news is replaced. Once the job is terminal the watch
// stops, and its last event is a snapshot of the job in its terminal status (read from the
// server once more when the end came as an event).
//
// With WithKey, each live connection uses a fresh one-time ticket; the key itself is only
// ever sent in a header. The receiver must keep reading: a watch whose events are not read
// falls behind, and the server then resyncs or closes its connection.
func (c *Client) Watch(ctx context.Context, id string) <-chan Event {
	out := make(chan Event)
	w := &watcher{c: c, id: id, ctx: ctx, out: out, inbox: make(chan inbound),
		pollAfter: time.Second}
	go w.run()
	return out
}

// watcher is one watch. Its fields belong to the goroutine running run; the readers of live
// connections talk to it only through inbox.
type watcher struct {
	c   *Client
	id  string
	ctx context.Context
	out chan<- Event

	state jobState
	auth  authMode
	done  bool // the watch has ended: the job is terminal, unknown, or cannot be followed

	current        *attempt
	inbox          chan inbound
	wsFailedToOpen bool // the SSE attempt under way follows a WebSocket that could not open
	failures       int  // failed live attempts since the last one that went live
	retryC         <-chan time.Time
	openC          <-chan time.Time
	stallC         <-chan time.Time
	graceC         <-chan time.Time
	heardAtStall   int

	polling      bool
	pollC        <-chan time.Time
	pollOK       bool // the last poll was answered
	pollFailures int
	etag         string
	pollAfter    time.Duration

	lastContact time.Time // the last answer of the server, by any channel
	channel     Channel   // the channel last announced
	reason      string    // the last failure, in words
}

// attempt is one live connection, from opening to closing.
type attempt struct {
	kind   Channel
	ctx    context.Context
	cancel context.CancelFunc
	conn   liveConn // set once it opened
	live   bool     // it delivered its snapshot
	heard  int      // messages delivered
	lastAt time.Time
}

func (a *attempt) stop(code int) {
	if a.conn != nil {
		a.conn.close(code)
	}
	a.cancel()
}

// inbound is what a live connection's goroutines tell the watch: it opened, a message, or
// how it ended.
type inbound struct {
	a    *attempt
	conn liveConn
	data []byte
	end  *ended
}

func (w *watcher) run() {
	defer close(w.out)
	defer w.teardown()
	if err := checkJobID(w.id); err != nil {
		w.fatal(err)
		return
	}
	w.lastContact = time.Now()
	w.auth = w.c.liveAuth(w.ctx)
	w.openLive(ChannelWebSocket)
	for !w.done {
		select {
		case <-w.ctx.Done():
			return
		case in := <-w.inbox:
			w.onInbound(in)
		case <-w.openC:
			w.openC = nil
			if a := w.current; a != nil && !a.live {
				w.failLive(a, "timeout", nil)
			}
		case <-w.retryC:
			w.retryC = nil
			if w.current == nil {
				w.openLive(ChannelWebSocket)
			}
		case <-w.pollC:
			w.pollC = nil
			w.poll()
		case <-w.stallC:
			w.stallC = nil
			w.checkStall()
		case <-w.graceC:
			w.graceC = nil
			w.checkGrace()
		}
	}
}

// emit sends ev, unless ctx ends first.
func (w *watcher) emit(ev Event) {
	if w.done {
		return
	}
	select {
	case w.out <- ev:
	case <-w.ctx.Done():
		w.done = true
	}
}

func (w *watcher) fatal(err error) {
	w.emit(Event{Type: EventError, Err: err})
	w.done = true
}

// Live channels -------------------------------------------------------------------------------

func (w *watcher) openLive(kind Channel) {
	w.retryC = nil
	ctx, cancel := context.WithCancel(w.ctx)
	a := &attempt{kind: kind, ctx: ctx, cancel: cancel}
	w.current = a
	w.openC = time.After(w.c.live.open)
	send := func(in inbound) bool {
		select {
		case w.inbox <- in:
			return true
		case <-ctx.Done():
			return false
		}
	}
	deliver := func(data []byte) bool { return send(inbound{a: a, data: data}) }
	end := func(e ended) { send(inbound{a: a, end: &e}) }
	auth := w.auth
	var held *Job
	if w.state.synced {
		held = w.state.job.clone()
	}
	go func() {
		ticket := ""
		if auth == authTickets {
			t, err := w.c.ticket(ctx, w.id)
			if err != nil {
				end(ended{why: "error", err: err})
				return
			}
			ticket = t
		}
		open := w.c.dialWebSocket
		if kind == ChannelSSE {
			open = w.c.openEventStream
		}
		conn, err := open(ctx, w.id, liveQuery(ticket, held), deliver, end)
		if err != nil {
			end(ended{why: "error", err: err})
			return
		}
		send(inbound{a: a, conn: conn})
	}()
}

func (w *watcher) onInbound(in inbound) {
	a := in.a
	if a != w.current {
		return // an attempt given up on; its context is cancelled, so it closes itself
	}
	switch {
	case in.conn != nil:
		a.conn = in.conn
	case in.end != nil:
		if in.end.why == "not-found" {
			w.fatal(&Error{StatusCode: http.StatusNotFound, Code: "not_found",
				Message: "no job with this id (it may have expired)"})
			return
		}
		w.failLive(a, in.end.why, in.end.err)
	default:
		w.onMessage(a, in.data)
	}
}

func (w *watcher) onMessage(a *attempt, data []byte) {
	a.heard++
	a.lastAt = time.Now()
	w.lastContact = a.lastAt
	var m liveMessage
	if json.Unmarshal(data, &m) != nil {
		return
	}
	switch m.Type {
	case "error":
		var e struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		json.Unmarshal(m.Error, &e)
		if e.Code == "not_found" {
			w.fatal(&Error{StatusCode: http.StatusNotFound, Code: e.Code, Message: e.Message})
		} else if e.Message != "" {
			w.reason = e.Message
		}
		return
	case "snapshot":
		if m.Job == nil {
			return
		}
		if !a.live {
			w.becomeLive(a)
		}
		m.Job.Seq = m.Seq
		if m.Epoch != "" {
			m.Job.Epoch = m.Epoch
		}
		w.applySnapshot(m.Job)
		return
	case "file", "job":
		if a.live { // the snapshot always comes first; anything before it is noise
			w.applyEvent(&m)
		}
	}
}

func (w *watcher) becomeLive(a *attempt) {
	a.live = true
	w.openC = nil
	w.failures = 0
	w.reason = ""
	w.stopPolling()
	w.stallC = time.After(w.c.live.stallCheck)
	w.announce()
}

// failLive ends a live attempt and decides what comes next: SSE at once when a WebSocket
// never opened, otherwise polling and another attempt after a backoff.
func (w *watcher) failLive(a *attempt, why string, err error) {
	if w.current != a || w.done {
		return
	}
	w.current = nil
	w.openC, w.stallC, w.graceC = nil, nil, nil
	a.stop(closeGaveUp)
	bothFailed := a.kind == ChannelSSE && !a.live && w.wsFailedToOpen
	w.reason = describeFailure(a.kind, why, a.live, err)
	if bothFailed {
		w.reason = "live updates could not connect: " + w.reason
	}
	w.wsFailedToOpen = false
	if !a.live && a.kind == ChannelWebSocket {
		w.wsFailedToOpen = true
		w.startPolling()
		w.openLive(ChannelSSE)
		w.announce()
		return
	}
	w.failures++
	delay := w.c.backoff.delay(w.failures)
	if why == "going-away" { // the server is restarting: another instance can take us now
		delay = rand.N(250 * time.Millisecond)
	}
	w.startPolling()
	w.retryC = time.After(delay)
	w.announce()
}

func describeFailure(kind Channel, why string, wasLive bool, err error) string {
	name := "WebSocket"
	if kind == ChannelSSE {
		name = "event stream"
	}
	var s string
	switch why {
	case "timeout":
		s = name + " did not answer in time"
	case "stalled":
		s = name + " stopped delivering updates"
	case "going-away":
		s = "the server is restarting"
	case "closed":
		s = name + " was closed by the server"
	default:
		s = name + " could not connect"
		if wasLive {
			s = name + " connection was lost"
		}
	}
	if err != nil {
		s += ": " + err.Error()
	}
	return s
}

// announce tells the receiver when the channel delivering news changed.
func (w *watcher) announce() {
	ch := ChannelNone
	switch {
	case w.current != nil && w.current.live:
		ch = w.current.kind
	case w.polling && w.pollOK:
		ch = ChannelPolling
	}
	if ch == w.channel {
		return
	}
	w.channel = ch
	w.emit(Event{Type: EventChannel, Channel: ch, Reason: w.reason})
}

// Stall detection: a live channel that is silent while the server has news is dropped. -----

func (w *watcher) checkStall() {
	a := w.current
	if a == nil || !a.live {
		return
	}
	if silent := time.Since(a.lastAt); silent < w.c.live.stallCheck {
		w.stallC = time.After(w.c.live.stallCheck - silent)
		return
	}
	heard, seqBefore := a.heard, w.state.job.Seq
	job, etag, err := w.c.status(w.ctx, w.id, w.etag, false)
	if IsNotFound(err) {
		w.fatal(err)
		return
	}
	if w.current != a || w.done {
		return
	}
	if err != nil || job == nil || job.Seq <= seqBefore {
		w.stallC = time.After(w.c.live.stallCheck)
		return
	}
	// The server is ahead of the channel. Take its state now; give the channel a moment to
	// deliver what is in flight, and drop it if it stays silent.
	w.etag = etag
	w.applySnapshot(job)
	if w.done {
		return
	}
	w.heardAtStall = heard
	w.graceC = time.After(w.c.live.stallGrace)
}

func (w *watcher) checkGrace() {
	a := w.current
	if a == nil || !a.live {
		return
	}
	if a.heard == w.heardAtStall {
		w.failLive(a, "stalled", nil)
		return
	}
	w.stallC = time.After(w.c.live.stallCheck)
}

// Snapshots, events and resync ---------------------------------------------------------------

// applySnapshot takes a snapshot and tells the receiver when it was news.
func (w *watcher) applySnapshot(job *Job) {
	first, before, epoch := !w.state.synced, w.state.job.Seq, w.state.job.Epoch
	if !w.state.applySnapshot(job) {
		return
	}
	if first || w.state.job.Seq > before || w.state.job.Epoch != epoch {
		w.emitSnapshot()
	}
	if w.state.terminal() {
		w.finish(true)
	}
}

func (w *watcher) emitSnapshot() {
	j := w.state.job.clone()
	w.emit(Event{Type: EventSnapshot, Seq: j.Seq, Status: j.Status, Progress: j.Progress, Job: j})
}

func (w *watcher) applyEvent(m *liveMessage) {
	if w.take(m) == appliedGap {
		w.resync(m)
	}
}

// take applies an event if it follows the state, and tells the receiver what changed.
func (w *watcher) take(m *liveMessage) applied {
	r := w.state.applyEvent(m)
	if r == appliedChanged {
		w.emitEvent(m)
		if w.state.terminal() {
			w.finish(false)
		}
	}
	return r
}

func (w *watcher) emitEvent(m *liveMessage) {
	s := &w.state.job
	ev := Event{Type: EventType(m.Type), Seq: s.Seq, Status: s.Status, Progress: s.Progress}
	if m.Type == "file" {
		f, _ := w.state.file(m.FileID)
		ev.File = &f
	} else {
		ev.Job = s.clone()
	}
	w.emit(ev)
}

// resync reads a snapshot to close a seq gap, then applies the event that showed it. The
// live channel's later events wait in its connection meanwhile.
func (w *watcher) resync(m *liveMessage) {
	a := w.current
	job, _, err := w.c.status(w.ctx, w.id, "", false)
	if IsNotFound(err) {
		w.fatal(err)
		return
	}
	if err != nil {
		if w.ctx.Err() == nil && a != nil {
			// No snapshot to be had over HTTP: a fresh live connection starts with one.
			w.failLive(a, "error", fmt.Errorf("resync after missed events: %w", err))
		}
		return
	}
	w.applySnapshot(job)
	if !w.done && w.take(m) == appliedGap && a != nil {
		w.failLive(a, "error", errors.New("events are still missing after a resync"))
	}
}

// Polling -------------------------------------------------------------------------------------

func (w *watcher) startPolling() {
	if w.polling {
		return
	}
	w.polling = true
	w.pollC = time.After(0)
}

func (w *watcher) stopPolling() {
	w.polling = false
	w.pollC = nil
}

func (w *watcher) poll() {
	if !w.polling {
		return
	}
	job, etag, err := w.c.status(w.ctx, w.id, w.etag, false)
	if err != nil {
		w.pollFailed(err)
		return
	}
	w.pollOK, w.pollFailures, w.lastContact = true, 0, time.Now()
	w.announce() // before the snapshot, so the receiver knows how it came
	if job != nil {
		w.etag = etag
		if job.PollAfterMS > 0 {
			w.pollAfter = max(100*time.Millisecond, time.Duration(job.PollAfterMS)*time.Millisecond)
		}
		w.applySnapshot(job)
	}
	if w.polling && !w.done {
		w.pollC = time.After(w.pollAfter)
	}
}

func (w *watcher) pollFailed(err error) {
	if w.ctx.Err() != nil {
		return
	}
	var e *Error
	if errors.As(err, &e) {
		switch e.StatusCode {
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			w.fatal(err) // asking again will not change the answer
			return
		}
	}
	if time.Since(w.lastContact) > w.c.giveUp {
		w.fatal(fmt.Errorf("no channel reached the server for %s: %w", w.c.giveUp.Round(time.Second), err))
		return
	}
	w.pollOK = false
	w.pollFailures++
	w.reason = err.Error()
	w.pollC = time.After(min(w.c.backoff.max, w.pollAfter<<min(w.pollFailures, 5)))
	w.announce()
}

// Terminal states -----------------------------------------------------------------------------

// finish closes every channel. When the terminal state came from an event, it reads the
// final snapshot once more, so the watch ends exactly on the server's record; either way
// the last event is a snapshot.
func (w *watcher) finish(fromSnapshot bool) {
	w.teardown()
	if !fromSnapshot {
		for try := 1; try <= 3; try++ {
			job, _, err := w.c.status(w.ctx, w.id, "", false)
			if err == nil {
				w.state.applySnapshot(job)
				break
			}
			if IsNotFound(err) || sleep(w.ctx, w.c.backoff.delay(try)) != nil {
				break
			}
		}
		w.emitSnapshot()
	}
	w.done = true
}

func (w *watcher) teardown() {
	if a := w.current; a != nil {
		a.stop(closeDone)
	}
	w.current = nil
	w.openC, w.retryC, w.stallC, w.graceC = nil, nil, nil, nil
	w.stopPolling()
}
