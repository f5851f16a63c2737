// Package live fans the events of jobs out to the clients that watch them live.
//
// A Hub holds one pub/sub connection, subscribed to the channels of watched jobs only
// (reference-counted), and an index from job id to watchers. Every watcher gets a snapshot
// first and then the events with a higher seq, in order. The hub subscribes before it reads
// the snapshot, so no event can fall in between; an event with a gap before it, or a lost
// pub/sub connection, resyncs the watchers with a snapshot.
//
// A job's snapshot is read and rendered once per seq, however many watchers ask: watchers
// that join while a read is in flight wait for it, and later ones get the same bytes for as
// long as no newer event of the job arrived and no events were lost since it was read. A
// reconnect storm of thousands of clients of one job costs one read of it.
//
// The hub knows nothing of HTTP or of the wire format: sinks (a WebSocket, an SSE stream)
// carry the messages, and a Renderer turns records and events into their bytes.
package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/redis/go-redis/v9"
)

// Sink is one live client as the hub sees it: a WebSocket or an SSE stream.
type Sink interface {
	// Send queues a message without blocking. A sink whose queue is full must close its
	// connection rather than drop the message, so that no client is left with a silent gap.
	// seq is the message's seq, for channels that label messages with it.
	Send(seq int64, msg []byte)
	// Close ends the connection: code 1000 after the final event, or an error.
	Close(code int, reason string)
}

// Snapshotter reads the current record of a job, and repairs one that lost writes a
// watcher saw (see jobs.Store.Regressed).
type Snapshotter interface {
	Get(ctx context.Context, id string) (*jobs.Job, error)
	Regressed(ctx context.Context, id string, seen int64) (bool, error)
}

// Renderer turns what the store holds into what clients receive. The hub renders each
// event once, however many clients watch its job.
type Renderer interface {
	// Snapshot is the first message of a watch: the job's whole record.
	Snapshot(job *jobs.Job) []byte
	// Event is an event as published by the store, as clients receive it.
	Event(jobID string, ev jobs.EventHeader, payload []byte) []byte
}

// Close codes the hub uses, beside those its callers pass.
const (
	CloseNormal       = 1000 // the job finished and its final event was sent
	CloseGoingAway    = 1001 // the server shuts down; the client reconnects elsewhere
	CloseTooSlow      = 1008 // the client fell behind; it reconnects and resyncs
	CloseInternal     = 1011 // a resync failed; the client reconnects
	CloseTryAgainLate = 1013 // the job could not be watched now
	CloseNotFound     = 4404 // the job does not exist, or no longer (it expired, or Redis lost it)
)

// Observer is told what the hub copes with, for metrics. Its methods must be safe for
// concurrent use and must not block.
type Observer interface {
	// SlowClientClosed: a client of channel (websocket, sse) was closed for falling behind.
	SlowClientClosed(channel string)
	// Resynced: a watcher is sent a fresh snapshot.
	Resynced()
	// PubSubReconnected: the pub/sub connection was lost and is back.
	PubSubReconnected()
}

// Hub fans the events of jobs out to the live clients that watch them.
type Hub struct {
	store  Snapshotter
	render Renderer
	feed   feed
	log    *slog.Logger
	obs    Observer

	mu     sync.Mutex
	topics map[string]*topic // job id → its watchers; guarded by mu
	// pending counts SUBSCRIBE commands whose confirmation has not arrived, per channel,
	// so a topic is ready only once its own subscription is live; guarded by mu.
	pending map[string]int

	// slowClosed counts the clients closed for falling behind, for the logs.
	slowClosed atomic.Int64

	// ctx ends the hub's background work: the receive loop and resyncs, which wg awaits.
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

type topic struct {
	watchers map[*watcher]struct{}
	ready    chan struct{} // closed once the subscription is confirmed

	// lastSeq and lastEpoch are those of the latest event dispatched to the watchers.
	lastSeq   int64
	lastEpoch string
	// losses counts the times events of the job may have been lost (see Hub.lost): a
	// snapshot read before the latest loss may be older than events nobody received.
	losses int
	// reads counts the snapshot reads begun, which numbers them.
	reads int
	// read is the job's latest snapshot read, finished or in flight, which new watchers
	// share while it suits them (see suits); nil before the first.
	read *snapshotRead
}

// snapshotRead is one read of a job's record, rendered once: every watcher that asks for the
// job's snapshot while it suits them gets the same job and the same bytes.
type snapshotRead struct {
	done   chan struct{} // closed once job, msg and err are set
	number int           // its place among the topic's reads
	losses int           // the topic's losses when it began
	job    *jobs.Job
	msg    []byte
	err    error
}

func (r *snapshotRead) finished() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// mark is where a watcher began to wait for a snapshot in its topic's history: every event
// dispatched after it reaches the watcher (held until the snapshot is sent).
type mark struct {
	reads int    // the reads begun by then
	seq   int64  // the seq and epoch of the latest event dispatched by then
	epoch string // (empty before any)
}

func (t *topic) mark() mark { return mark{reads: t.reads, seq: t.lastSeq, epoch: t.lastEpoch} }

// suits reports whether read r, finished, may be the snapshot of a watcher that waits since
// m: it began after the topic's latest loss, and either after m too, or it is not older than
// the latest event dispatched before m (so no event falls between the two). Epochs have no
// order: a read of another epoch than that event's is not taken.
func (t *topic) suits(r *snapshotRead, m mark) bool {
	return r.err == nil && r.losses == t.losses &&
		(r.number > m.reads || m.epoch == "" || (r.job.Epoch == m.epoch && r.job.Seq >= m.seq))
}

// NewHub returns a hub on rdb, which tells obs what it copes with (nobody if obs is nil). It
// delivers nothing until Start.
func NewHub(rdb redis.UniversalClient, store Snapshotter, render Renderer, log *slog.Logger, obs Observer) *Hub {
	ctx, stop := context.WithCancel(context.Background())
	if obs == nil {
		obs = unobserved{}
	}
	h := &Hub{store: store, render: render, log: log, obs: obs,
		topics: map[string]*topic{}, pending: map[string]int{}, ctx: ctx, stop: stop}
	h.feed = newFeed(rdb, h, log)
	return h
}

// unobserved is the Observer of a hub that nobody observes.
type unobserved struct{}

func (unobserved) SlowClientClosed(string) {}
func (unobserved) Resynced()               {}
func (unobserved) PubSubReconnected()      {}

// resyncTimeout bounds one snapshot read of a resync or a new watcher.
const resyncTimeout = 5 * time.Second

// Start receives events in the background until Shutdown.
func (h *Hub) Start() {
	h.feed.start()
}

// Shutdown stops the hub and closes every watcher with code (CloseGoingAway when the server
// shuts down), then waits for the hub's goroutines.
func (h *Hub) Shutdown(code int, reason string) {
	h.stop()
	h.feed.close()
	h.mu.Lock()
	for _, t := range h.topics {
		for w := range t.watchers {
			w.sink.Close(code, reason)
		}
	}
	h.topics = map[string]*topic{}
	h.mu.Unlock()
	h.wg.Wait()
}

// message, confirmed and lost make the hub its feed's listener.
func (h *Hub) message(channel string, payload []byte) {
	h.dispatch(jobs.JobIDOfChannel(channel), payload)
}

func (h *Hub) confirmed(channel string) { h.confirm(channel) }

func (h *Hub) lost(channels []string) {
	h.obs.PubSubReconnected()
	h.mu.Lock()
	for id, t := range h.topics {
		if channels == nil || slices.Contains(channels, jobs.Channel(id)) {
			t.losses++
		}
	}
	h.mu.Unlock()
	if channels == nil {
		h.resyncAll()
		return
	}
	for _, ch := range channels {
		h.resyncTopic(jobs.JobIDOfChannel(ch))
	}
}

// Held is what a client that comes back holds of a job: the seq and the epoch of the
// newest message it applied. The zero Held is a client that holds nothing; an empty Epoch
// with a Seq is one that knows only the seq (an SSE Last-Event-ID).
type Held struct {
	Seq   int64
	Epoch string
}

// Watch starts sending the events of job id to sink: a snapshot first, then every later
// event in seq order. A record below the seq the client holds, in its epoch (or, when it
// names none, in any), lost writes the client saw: it is repaired first, so the snapshot is
// of a new epoch and above that seq. It returns jobs.ErrNotFound for an unknown job, having
// sent nothing. The returned function stops the watch; call it when the client goes away.
func (h *Hub) Watch(ctx context.Context, id string, sink Sink, held Held) (stop func(), err error) {
	w := &watcher{hub: h, job: id, sink: sink, seq: held.Seq, epoch: held.Epoch}
	ready, since, err := h.add(ctx, w)
	stop = func() { h.remove(w) }
	if err != nil {
		stop()
		return nil, err
	}
	select {
	case <-ready:
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	case <-time.After(resyncTimeout):
		stop()
		return nil, fmt.Errorf("subscribe to job %s: no confirmation in %v", id, resyncTimeout)
	}
	snap, err := h.snapshot(ctx, id, &since, false)
	if err != nil {
		stop()
		return nil, err
	}
	w.start(snap)
	return stop, nil
}

// maxSnapshotReads bounds the reads one watcher waits for: the second always suits unless
// events were lost meanwhile.
const maxSnapshotReads = 3

// errUnwatched: a snapshot was asked for a job nobody watches any more.
var errUnwatched = errors.New("nobody watches it any more")

// snapshot returns a snapshot of job id for a watcher of its topic, whose subscription is
// live, that waits since m (or since now, if m is nil): the topic's latest read when it
// suits the watcher, or the one in flight (concurrent callers wait on one read), or a new
// one. With fresh, it reads anew: the record was just repaired.
func (h *Hub) snapshot(ctx context.Context, id string, m *mark, fresh bool) (*snapshotRead, error) {
	for reads := 1; ; reads++ {
		h.mu.Lock()
		t := h.topics[id]
		if t == nil {
			h.mu.Unlock()
			return nil, fmt.Errorf("snapshot of job %s: %w", id, errUnwatched)
		}
		if m == nil {
			now := t.mark()
			m = &now
		}
		r := t.read
		if r == nil || fresh || r.losses != t.losses || (r.finished() && !t.suits(r, *m)) {
			r = h.startRead(t, id)
		}
		fresh = false
		h.mu.Unlock()
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if r.err != nil {
			return nil, r.err
		}
		h.mu.Lock()
		ok := t.suits(r, *m)
		h.mu.Unlock()
		if ok || reads == maxSnapshotReads {
			return r, nil
		}
	}
}

// startRead reads job id's record and renders its snapshot in the background, as the
// topic's latest read; h.mu must be held.
func (h *Hub) startRead(t *topic, id string) *snapshotRead {
	t.reads++
	r := &snapshotRead{done: make(chan struct{}), number: t.reads, losses: t.losses}
	t.read = r
	h.wg.Go(func() {
		defer close(r.done)
		ctx, cancel := context.WithTimeout(h.ctx, resyncTimeout)
		defer cancel()
		if r.job, r.err = h.store.Get(ctx, id); r.err == nil {
			r.msg = h.render.Snapshot(r.job)
		}
	})
	return r
}

// add makes w a watcher of its job's topic, and returns when the topic's subscription is
// ready and the mark from which w receives every event.
func (h *Hub) add(ctx context.Context, w *watcher) (<-chan struct{}, mark, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.topics[w.job]
	if ok {
		t.watchers[w] = struct{}{}
		return t.ready, t.mark(), nil
	}
	t = &topic{watchers: map[*watcher]struct{}{w: {}}, ready: make(chan struct{})}
	h.topics[w.job] = t
	ch := jobs.Channel(w.job)
	if err := h.feed.subscribe(ctx, ch); err != nil {
		return nil, mark{}, fmt.Errorf("subscribe to job %s: %w", w.job, err)
	}
	h.pending[ch]++
	return t.ready, t.mark(), nil
}

func (h *Hub) remove(w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.topics[w.job]
	if !ok {
		return
	}
	delete(t.watchers, w)
	if len(t.watchers) > 0 {
		return
	}
	delete(h.topics, w.job)
	if err := h.feed.unsubscribe(h.ctx, jobs.Channel(w.job)); err != nil && h.ctx.Err() == nil {
		h.log.Warn("unsubscribe failed", "job", w.job, "err", err)
	}
}

// confirm marks a channel's topic ready once its latest SUBSCRIBE is confirmed.
// Confirmations that arrive after a reconnect, unasked for, leave the count at zero.
func (h *Hub) confirm(channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending[channel] > 1 {
		h.pending[channel]--
		return
	}
	delete(h.pending, channel)
	if t, ok := h.topics[jobs.JobIDOfChannel(channel)]; ok {
		select {
		case <-t.ready:
		default:
			close(t.ready)
		}
	}
}

// dispatch renders one event and hands it to the watchers of its job.
func (h *Hub) dispatch(id string, payload []byte) {
	var ev jobs.EventHeader
	if err := json.Unmarshal(payload, &ev); err != nil {
		h.log.Error("unreadable event", "job", id, "err", err)
		return
	}
	h.mu.Lock()
	t := h.topics[id]
	var ws []*watcher
	if t != nil {
		t.lastSeq, t.lastEpoch = ev.Seq, ev.Epoch
		ws = make([]*watcher, 0, len(t.watchers))
		for w := range t.watchers {
			ws = append(ws, w)
		}
	}
	h.mu.Unlock()
	if len(ws) == 0 {
		return
	}
	msg := h.render.Event(id, ev, payload)
	for _, w := range ws {
		w.deliver(ev, msg)
	}
}

// resyncTopic resyncs the watchers of one job.
func (h *Hub) resyncTopic(id string) {
	h.mu.Lock()
	var ws []*watcher
	if t := h.topics[id]; t != nil {
		for w := range t.watchers {
			ws = append(ws, w)
		}
	}
	h.mu.Unlock()
	for _, w := range ws {
		w.resync()
	}
}

func (h *Hub) resyncAll() {
	h.mu.Lock()
	var ws []*watcher
	for _, t := range h.topics {
		for w := range t.watchers {
			ws = append(ws, w)
		}
	}
	h.mu.Unlock()
	for _, w := range ws {
		w.resync()
	}
}

// ClosedSlow records that a client was closed for falling behind, and logs it with the
// running count.
func (h *Hub) ClosedSlow(channel, job string, buffered int) {
	h.obs.SlowClientClosed(channel)
	h.log.Warn("slow live client closed; it will reconnect and resync", "channel", channel, "job", job,
		"buffered", buffered, "slow_clients_closed", h.slowClosed.Add(1))
}

// Watchers counts the live clients, for logs and tests.
func (h *Hub) Watchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, t := range h.topics {
		n += len(t.watchers)
	}
	return n
}

// watcher is one client of one job. Its fields are guarded by mu, which also orders what
// reaches the sink: the hub's receive loop and resyncs both go through it.
type watcher struct {
	hub  *Hub
	job  string
	sink Sink

	mu      sync.Mutex
	started bool   // a snapshot was sent; events follow it
	seq     int64  // the seq of the last message sent, or that the client came back with
	epoch   string // the epoch of the last message sent, or that the client came back with
	held    []held // events that arrived before the snapshot, in order
	spilled bool   // more events arrived than held keeps
	done    bool   // the final event was sent
	// checking: a read of the record, to tell a stale event from lost writes, is under way.
	checking bool
}

type held struct {
	ev  jobs.EventHeader
	msg []byte
}

// maxHeld bounds the events a watcher holds while its snapshot is read; past it, they are
// dropped and another snapshot covers them.
const maxHeld = 256

// start sends a snapshot, then the events held meanwhile that are newer. A snapshot older
// than what the client already has, in the same epoch (or the client knows no epoch), is a
// record that lost writes (a failover): it is repaired, and its new epoch sent instead.
func (w *watcher) start(snap *snapshotRead) {
	job := snap.job
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	if job.Seq < w.seq && (job.Epoch == w.epoch || w.epoch == "") {
		w.repairLocked(w.seq)
		return
	}
	w.started, w.seq, w.epoch = true, job.Seq, job.Epoch
	w.sink.Send(job.Seq, snap.msg)
	if job.Status.Terminal() {
		w.finish()
		return
	}
	held, spilled := w.held, w.spilled
	w.held, w.spilled = nil, false
	for _, e := range held {
		w.forward(e.ev, e.msg, false)
	}
	if spilled {
		w.resyncLocked()
	}
}

func (w *watcher) deliver(ev jobs.EventHeader, msg []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	if !w.started {
		if len(w.held) < maxHeld {
			w.held = append(w.held, held{ev, msg})
		} else {
			w.spilled = true
		}
		return
	}
	w.forward(ev, msg, true)
}

// forward sends an event in seq order; w.mu must be held. An event of another epoch begins a
// new history of the record: the client gets its snapshot. An event no newer than what was
// sent is one the snapshot already has; when it comes live rather than held during the
// snapshot's read, it may also be the first write after a failover that lost the last ones,
// which the record then tells.
func (w *watcher) forward(ev jobs.EventHeader, msg []byte, live bool) {
	switch {
	case ev.Epoch != w.epoch:
		w.resyncLocked()
		return
	case ev.Seq <= w.seq:
		if live {
			w.checkLocked()
		}
		return
	case ev.Seq > w.seq+1:
		w.resyncLocked()
		return
	}
	w.seq = ev.Seq
	w.sink.Send(ev.Seq, msg)
	if ev.Final() {
		w.finish()
	}
}

func (w *watcher) finish() {
	w.done = true
	w.sink.Close(CloseNormal, "job finished")
}

func (w *watcher) resync() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.resyncLocked()
}

// resyncLocked reads a fresh snapshot in the background; events hold until it is sent.
func (w *watcher) resyncLocked() {
	if !w.started || w.done {
		return // a snapshot is on its way already
	}
	w.started = false
	w.refresh(0)
}

// checkLocked reads the record in the background and repairs it if it is below the seq sent
// in the same epoch, or finished at that very seq (this watcher never sent an end): it lost
// writes the client saw, and the events that follow reuse their seqs. A stale event that
// was only in flight while a snapshot was read finds the record as new as the snapshot, and
// changes nothing.
func (w *watcher) checkLocked() {
	if w.checking {
		return
	}
	w.checking = true
	h, seen, epoch := w.hub, w.seq, w.epoch
	h.wg.Go(func() {
		ctx, cancel := context.WithTimeout(h.ctx, resyncTimeout)
		defer cancel()
		job, err := h.store.Get(ctx, w.job)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.checking = false
		if err != nil || !w.started || w.done || w.seq != seen || w.epoch != epoch {
			return // the next event or resync finds out again
		}
		switch {
		case job.Epoch != epoch:
		case job.Seq < seen:
			w.started = false
			w.repairLocked(seen)
		case job.Seq == seen && job.Status.Terminal():
			w.started = false
			w.repairLocked(seen + 1) // a seq above the record's, so that it takes a new epoch
		}
	})
}

// repairLocked repairs a record that lost writes this watcher saw (it is below seen), then
// sends it; w.mu must be held, and no snapshot on its way.
func (w *watcher) repairLocked(seen int64) {
	w.hub.log.Warn("a job's record lost writes a client saw (a failover?); giving it a new epoch", "job", w.job, "seen", w.seq)
	w.refresh(seen)
}

// refresh reads a snapshot in the background, after repairing the record when it is below
// repairBelow (0: no repair), and starts the watcher from it; events hold meanwhile.
func (w *watcher) refresh(repairBelow int64) {
	w.held, w.spilled = nil, false
	h := w.hub
	h.obs.Resynced()
	h.wg.Go(func() {
		snap, err := h.resnapshot(w.job, repairBelow)
		if err != nil {
			code, reason := CloseInternal, "resync failed"
			if errors.Is(err, jobs.ErrNotFound) {
				// The job vanished while watched (Redis restarted empty, or someone removed
				// it): the client is told so, rather than kept at its old progress.
				code, reason = CloseNotFound, "job not found"
			} else {
				h.log.Warn("resync failed; closing the client so it reconnects", "job", w.job, "err", err)
			}
			w.mu.Lock()
			w.done = true
			w.mu.Unlock()
			w.sink.Close(code, reason)
			return
		}
		w.start(snap)
	})
}

// resyncRetryWindow is how long a resync retries a snapshot that Redis cannot give (a
// restart, a failover under way): the client keeps its connection and gets the snapshot
// once Redis answers, rather than being closed only to reconnect into the same outage.
const resyncRetryWindow = 15 * time.Second

// resnapshot gets job id's snapshot for a resync, after repairing the record when it is
// below repairBelow (0: no repair), retrying through an outage of Redis for
// resyncRetryWindow. The store's refusals (the job is gone) are not retried, nor a job
// nobody watches any more.
func (h *Hub) resnapshot(id string, repairBelow int64) (*snapshotRead, error) {
	deadline := time.Now().Add(resyncRetryWindow)
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		snap, err := h.tryResnapshot(id, repairBelow)
		if err == nil || jobs.Refused(err) || errors.Is(err, errUnwatched) || h.ctx.Err() != nil ||
			time.Now().After(deadline) {
			return snap, err
		}
		sleep(h.ctx, delay)
	}
}

// tryResnapshot is one try of resnapshot. A repair that went through and a read that then
// failed are tried again whole: a record repaired already has nothing left to repair. A
// repaired record is read anew, not taken from a read shared with other watchers.
func (h *Hub) tryResnapshot(id string, repairBelow int64) (*snapshotRead, error) {
	ctx, cancel := context.WithTimeout(h.ctx, resyncTimeout)
	defer cancel()
	if repairBelow > 0 {
		if _, err := h.store.Regressed(ctx, id, repairBelow); err != nil {
			return nil, err
		}
	}
	return h.snapshot(ctx, id, nil, repairBelow > 0)
}
