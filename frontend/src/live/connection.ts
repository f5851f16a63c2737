// JobConnection keeps one job's store in step with the server and says, in its status, how.
//
// The ladder: a WebSocket first; when it cannot open, Server-Sent Events; when neither can,
// polling of the status endpoint (with If-None-Match) while live attempts go on with
// exponential backoff and jitter. A live channel that drops, or falls silent while the server
// has moved on, is replaced the same way; polling fills the gap meanwhile. A gap in seq is
// closed by a snapshot from the status endpoint. Once the job is terminal the connection
// reads the final snapshot and closes everything, so the page ends on the server's own state.
// Every live attempt after the first snapshot tells the server the seq and epoch the page
// holds: a record that lost writes the page saw (a failover) is then repaired into a new
// epoch, whose snapshot the store takes whole, instead of the page waiting for a seq that
// will never come.
//
// On a server with API keys, every live attempt (each reconnect included) first asks for a
// one-use ticket, since a browser cannot put the key on a WebSocket or an EventSource. A 401
// anywhere pauses the connection until the page has a key again; a 429 is waited out for as
// long as the server's Retry-After says.
//
// Every dependency with a side effect (WebSocket, EventSource, fetch, timers, randomness) is
// injected, so the whole ladder runs in unit tests without a network or real time.
import { ApiError, eventsPath, livePath, wsPath, type Api, type Held } from '../api/client';
import {
  isTerminalJob,
  parseLiveMessage,
  type FileEvent,
  type JobEvent,
  type JobSnapshot,
} from '../api/types';
import type { JobStore } from '../state/jobStore';

/** Channel is how the page gets its news right now. */
export type Channel = 'websocket' | 'sse' | 'polling';

/** ConnectionState is what the status indicator tells a person. */
export type ConnectionState =
  | 'connecting' // nothing has answered yet
  | 'live' // a WebSocket or an event stream delivers every event
  | 'polling' // live channels failed; polling works, a live attempt is scheduled
  | 'reconnecting' // a live attempt is under way after a failure
  | 'offline' // neither live channels nor polling reach the server
  | 'done' // the job is terminal and the page shows the server's final state
  | 'not_found' // the server does not know the job (any more)
  | 'unauthorized' // the server wants an API key; the connection waits for one
  | 'stopped'; // the page closed the connection

/** ConnectionStatus is the connection's state as the page shows it. */
export interface ConnectionStatus {
  readonly state: ConnectionState;
  /** The channel delivering state now; null while nothing does. */
  readonly channel: Channel | null;
  /** When the next live attempt starts (the injected clock's time), if one is scheduled. */
  readonly retryAt: number | null;
  /** Failed live attempts since the last success. */
  readonly attempt: number;
  /** The last failure in words, for people. */
  readonly error: string | null;
}

/** WebSocketLike is the part of the browser's WebSocket that the connection uses. */
export interface WebSocketLike {
  onopen: ((ev: Event) => void) | null;
  onmessage: ((ev: MessageEvent) => void) | null;
  onerror: ((ev: Event) => void) | null;
  onclose: ((ev: CloseEvent) => void) | null;
  close(code?: number, reason?: string): void;
}

/** EventSourceLike is the part of the browser's EventSource that the connection uses. */
export interface EventSourceLike {
  addEventListener(type: string, listener: (ev: { data?: unknown }) => void): void;
  close(): void;
}

/** Timers is an injectable clock. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

/** ConnectionOptions tunes the ladder; every field has a default. */
export interface ConnectionOptions {
  /** How long a live channel may take to deliver its first snapshot. If zero, 8 s. */
  openTimeoutMs: number;
  /** Silence on a live channel after which the status endpoint is asked if it missed news. If zero, 5 s. */
  stallCheckMs: number;
  /** How long a channel that missed news gets to deliver it before it is dropped. If zero, 1.5 s. */
  stallGraceMs: number;
  /** The first reconnect delay; it doubles per failure up to backoffMaxMs. If zero, 500 ms. */
  backoffBaseMs: number;
  /** The longest reconnect delay. If zero, 15 s. */
  backoffMaxMs: number;
  /** Poll interval when the server gives no poll_after_ms. If zero, 1 s. */
  pollMs: number;
}

const defaults: ConnectionOptions = {
  openTimeoutMs: 8000,
  stallCheckMs: 5000,
  stallGraceMs: 1500,
  backoffBaseMs: 500,
  backoffMaxMs: 15000,
  pollMs: 1000,
};

/** LiveAccess hands out what a live connection needs to be let in. */
export interface LiveAccess {
  /**
   * ticket returns a fresh one-use ticket for one live connection to the job. It returns null
   * at once when the server needs no tickets, so the channels open without delay; otherwise a
   * promise of the ticket (or of null), which fails with the ticket call's ApiError.
   */
  ticket(jobId: string): Promise<string | null> | null;
}

/** ConnectionDeps are the connection's side effects. */
export interface ConnectionDeps {
  api: Api;
  /** Tickets for the live channels. */
  access: LiveAccess;
  /** Opens a WebSocket to a server path such as /ws/download/{id}. */
  openWebSocket: (path: string) => WebSocketLike;
  /** Opens an event stream to a server path; null where EventSource does not exist. */
  openEventSource: ((path: string) => EventSourceLike) | null;
  timers: Timers;
  random: () => number;
  options?: Partial<ConnectionOptions>;
}

type LiveKind = 'websocket' | 'sse';

/** Attempt is one live channel, from opening to closing. */
interface Attempt {
  readonly kind: LiveKind;
  /** Closes the channel without telling the connection; code is a WebSocket close code. */
  close: (code: number) => void;
  live: boolean;
  lastMessageAt: number;
  openTimer: unknown;
}

const MAX_BUFFER = 10000;
// WebSocket close codes: done with the job, or (in the application range) gave up on the socket.
const CLOSE_DONE = 1000;
const CLOSE_GAVE_UP = 4000;

/** JobConnection is the live link of one job; see the file comment. */
export class JobConnection {
  private readonly jobId: string;
  private readonly store: JobStore;
  private readonly deps: ConnectionDeps;
  private readonly opt: ConnectionOptions;
  private readonly listeners = new Set<() => void>();

  private status: ConnectionStatus = {
    state: 'connecting',
    channel: null,
    retryAt: null,
    attempt: 0,
    error: null,
  };
  private running = false;
  private current: Attempt | null = null;
  private retryTimer: unknown = null;
  private retryAt: number | null = null;
  private attempt = 0;
  private everReached = false;
  /** Whether the SSE attempt under way follows a WebSocket that could not open. */
  private wsFailedToOpen = false;
  private lastError: string | null = null;
  private final: 'done' | 'not_found' | 'stopped' | null = null;
  /** Whether the connection waits for the page to get an API key (after a 401). */
  private needsKey = false;

  private polling = false;
  private pollTimer: unknown = null;
  private pollAbort: AbortController | null = null;
  private pollOk: boolean | null = null;
  private pollFailures = 0;
  private etag: string | null = null;
  private pollAfterMs: number;

  private stallTimer: unknown = null;
  private resyncing = false;
  private buffer: (FileEvent | JobEvent)[] = [];

  constructor(jobId: string, store: JobStore, deps: ConnectionDeps) {
    this.jobId = jobId;
    this.store = store;
    this.deps = deps;
    const o = deps.options ?? {};
    this.opt = {
      openTimeoutMs: o.openTimeoutMs || defaults.openTimeoutMs,
      stallCheckMs: o.stallCheckMs || defaults.stallCheckMs,
      stallGraceMs: o.stallGraceMs || defaults.stallGraceMs,
      backoffBaseMs: o.backoffBaseMs || defaults.backoffBaseMs,
      backoffMaxMs: o.backoffMaxMs || defaults.backoffMaxMs,
      pollMs: o.pollMs || defaults.pollMs,
    };
    this.pollAfterMs = this.opt.pollMs;
  }

  getStatus = (): ConnectionStatus => this.status;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** start opens the first live channel; a job already terminal in the store only gets its final snapshot. */
  start(): void {
    if (this.running || this.final) return;
    this.running = true;
    if (isTerminalJob(this.store.getSummary().status) && this.store.getSummary().synced) {
      this.finish(true);
      return;
    }
    this.openLive('websocket');
    if (!this.store.getSummary().synced) void this.prime();
    this.publish();
  }

  /** stop closes every channel and timer; the store keeps what it has. */
  stop(): void {
    if (!this.final) this.final = 'stopped';
    this.teardown();
    this.publish();
  }

  /** retryNow skips the backoff wait, for example when the browser says it is online again. */
  retryNow(): void {
    if (!this.running || this.final || this.current || this.needsKey) return;
    this.clearRetry();
    this.openLive('websocket');
    this.publish();
  }

  /** pauseForKey closes everything until resume(): the server refused the page's key, or it signed out. */
  pauseForKey(message: string): void {
    if (!this.running || this.final) return;
    this.closeAll();
    this.needsKey = true;
    this.pollOk = null;
    this.lastError = message;
    this.publish();
  }

  /** resume starts over after a pause for a key, now that the page has one. */
  resume(): void {
    if (!this.running || this.final || !this.needsKey) return;
    this.needsKey = false;
    this.attempt = 0;
    this.lastError = null;
    this.openLive('websocket');
    if (!this.store.getSummary().synced) void this.prime();
    this.publish();
  }

  /** applySnapshot takes a status body obtained elsewhere, such as the answer to a cancel. */
  applySnapshot(snap: JobSnapshot): void {
    this.store.applySnapshot(snap);
    this.afterChange(true);
  }

  /** markNotFound ends the connection on news from elsewhere that the job is gone (a 404 to a cancel). */
  markNotFound(message: string): void {
    this.notFound(message);
  }

  // Live channels ---------------------------------------------------------------------------

  private openLive(kind: LiveKind): void {
    this.clearRetry();
    const t = this.deps.timers;
    const attempt: Attempt = {
      kind,
      close: () => undefined, // replaced once the channel exists
      live: false,
      lastMessageAt: t.now(),
      openTimer: null,
    };
    this.current = attempt;
    attempt.openTimer = t.setTimeout(() => {
      if (this.current === attempt && !attempt.live) this.failLive(attempt, 'timeout');
    }, this.opt.openTimeoutMs);
    // A ticket is good for one connection only: every attempt asks for its own.
    const ticket = this.deps.access.ticket(this.jobId);
    if (ticket === null) {
      this.connect(attempt, null);
      return;
    }
    ticket.then(
      (value) => {
        if (this.current === attempt && !this.final) this.connect(attempt, value);
      },
      (err: unknown) => {
        if (this.current === attempt && !this.final) this.ticketRefused(attempt, err);
      },
    );
  }

  private connect(attempt: Attempt, ticket: string | null): void {
    if (attempt.kind === 'websocket') this.openWebSocket(attempt, ticket);
    else this.openEventSource(attempt, ticket);
  }

  /** ticketRefused decides what a failed ticket call means for the attempt that needed it. */
  private ticketRefused(attempt: Attempt, err: unknown): void {
    if (this.stopsOn(err)) return;
    if (err instanceof ApiError && err.status === 429) {
      this.throttled(attempt, err);
      return;
    }
    this.failLive(attempt, 'error');
  }

  /**
   * throttled waits out a 429: no other channel is tried (each would need a ticket too); the
   * page polls meanwhile, and the next attempt comes no sooner than the server asked.
   */
  private throttled(attempt: Attempt, err: ApiError): void {
    if (!this.endAttempt(attempt)) return;
    this.wsFailedToOpen = false;
    this.attempt += 1;
    this.lastError = err.message;
    this.startPolling();
    this.scheduleRetry(err.retryAfterMs ?? this.backoff(this.attempt));
    this.publish();
  }

  private openWebSocket(attempt: Attempt, ticket: string | null): void {
    let ws: WebSocketLike;
    try {
      ws = this.deps.openWebSocket(livePath(wsPath(this.jobId), ticket, this.held()));
    } catch {
      this.failLive(attempt, 'error');
      return;
    }
    attempt.close = (code) => {
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try {
        ws.close(code);
      } catch {
        // Closing a socket that never opened throws in some browsers; it is gone either way.
      }
    };
    ws.onmessage = (ev) => this.onMessage(attempt, ev.data);
    ws.onerror = () => undefined; // Every error is followed by a close, which decides.
    ws.onclose = (ev) => {
      if (this.current !== attempt) return;
      if (ev.code === 4404) {
        this.notFound('This job does not exist or has expired.');
        return;
      }
      if (ev.code === 1000) {
        // The server closes with 1000 after the final event; make sure the page has it.
        this.failLive(attempt, 'closed');
        return;
      }
      this.failLive(attempt, ev.code === 1001 ? 'going-away' : 'error');
    };
  }

  private openEventSource(attempt: Attempt, ticket: string | null): void {
    const open = this.deps.openEventSource;
    if (!open) {
      this.failLive(attempt, 'error');
      return;
    }
    let es: EventSourceLike;
    try {
      es = open(livePath(eventsPath(this.jobId), ticket, this.held()));
    } catch {
      this.failLive(attempt, 'error');
      return;
    }
    let closed = false;
    attempt.close = () => {
      closed = true;
      es.close();
    };
    const onData = (ev: { data?: unknown }) => {
      if (!closed) this.onMessage(attempt, ev.data);
    };
    // The stream may name its events or not; the JSON's own type field is what counts.
    for (const type of ['message', 'snapshot', 'file', 'job']) es.addEventListener(type, onData);
    es.addEventListener('end', () => {
      if (!closed && this.current === attempt) this.failLive(attempt, 'closed');
    });
    es.addEventListener('error', (ev) => {
      if (closed || this.current !== attempt) return;
      if (typeof ev.data === 'string') {
        this.onMessage(attempt, ev.data); // an `event: error` message from the server
        if (this.final) return;
      }
      // EventSource would reconnect on its own, without telling anyone; the ladder decides instead.
      this.failLive(attempt, 'error');
    });
  }

  /** held is what the page holds of the job, for the server; null before the first snapshot. */
  private held(): Held | null {
    const s = this.store.getSummary();
    return s.synced ? { seq: s.seq, epoch: s.epoch } : null;
  }

  private onMessage(attempt: Attempt, data: unknown): void {
    if (this.current !== attempt || this.final) return;
    attempt.lastMessageAt = this.deps.timers.now();
    const msg = parseLiveMessage(data);
    if (!msg) return;
    if (msg.type === 'error') {
      if (msg.error.code === 'not_found') this.notFound(msg.error.message);
      else this.lastError = msg.error.message;
      return;
    }
    if (msg.type === 'snapshot') {
      if (!attempt.live) this.becomeLive(attempt);
      this.store.applySnapshot({ ...msg.job, seq: msg.seq, epoch: msg.epoch ?? msg.job.epoch });
      this.afterChange(true);
      return;
    }
    if (!attempt.live) return; // the snapshot always comes first; anything before it is noise
    this.applyEvent(msg);
  }

  private becomeLive(attempt: Attempt): void {
    attempt.live = true;
    this.deps.timers.clearTimeout(attempt.openTimer);
    this.attempt = 0;
    this.everReached = true;
    this.lastError = null;
    this.stopPolling();
    this.armStallCheck();
    this.publish();
  }

  /**
   * failLive ends a live attempt and decides what comes next: SSE right away when a WebSocket
   * never opened, otherwise polling and another attempt after a backoff.
   */
  private failLive(attempt: Attempt, why: 'error' | 'timeout' | 'closed' | 'going-away' | 'stalled'): void {
    if (!this.endAttempt(attempt)) return;
    const wasLive = attempt.live;
    const bothFailed = attempt.kind === 'sse' && !wasLive && this.wsFailedToOpen;
    this.lastError = bothFailed ? 'Live updates could not connect.' : describeFailure(attempt.kind, why, wasLive);
    this.wsFailedToOpen = false;
    if (!wasLive && attempt.kind === 'websocket' && this.deps.openEventSource) {
      this.wsFailedToOpen = true;
      this.startPolling();
      this.openLive('sse');
      this.publish();
      return;
    }
    this.attempt += 1;
    const delay = why === 'going-away' ? this.deps.random() * 250 : this.backoff(this.attempt);
    this.startPolling();
    this.scheduleRetry(delay);
    this.publish();
  }

  /** endAttempt forgets the attempt and closes its channel; it reports whether the connection goes on. */
  private endAttempt(attempt: Attempt): boolean {
    if (this.current !== attempt) return false;
    this.current = null;
    this.deps.timers.clearTimeout(attempt.openTimer);
    this.clearStallCheck();
    attempt.close(CLOSE_GAVE_UP);
    return !this.final;
  }

  private backoff(n: number): number {
    const ceiling = Math.min(this.opt.backoffMaxMs, this.opt.backoffBaseMs * 2 ** Math.max(0, n - 1));
    // Equal jitter: half the delay is fixed, so retries spread out but never bunch at zero.
    return ceiling / 2 + this.deps.random() * (ceiling / 2);
  }

  private scheduleRetry(delay: number): void {
    this.clearRetry();
    const t = this.deps.timers;
    this.retryAt = t.now() + delay;
    this.retryTimer = t.setTimeout(() => {
      this.retryTimer = null;
      this.retryAt = null;
      if (!this.final && !this.current) {
        this.openLive('websocket');
        this.publish();
      }
    }, delay);
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) this.deps.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = null;
  }

  // Stall detection: a live channel that is silent while the server has news is dropped. ---

  private armStallCheck(delay = this.opt.stallCheckMs): void {
    this.clearStallCheck();
    this.stallTimer = this.deps.timers.setTimeout(() => this.checkStall(), delay);
  }

  private clearStallCheck(): void {
    if (this.stallTimer !== null) this.deps.timers.clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }

  private async checkStall(): Promise<void> {
    this.stallTimer = null;
    const attempt = this.current;
    if (!attempt || !attempt.live || this.final) return;
    const silent = this.deps.timers.now() - attempt.lastMessageAt;
    if (silent < this.opt.stallCheckMs) {
      this.armStallCheck(this.opt.stallCheckMs - silent);
      return;
    }
    const heardAt = attempt.lastMessageAt;
    const { seq: seqBefore, epoch: epochBefore } = this.store.getSummary();
    let snap: JobSnapshot | null = null;
    try {
      const res = await this.deps.api.status(this.jobId, this.etag);
      if (res.kind === 'snapshot') {
        this.etag = res.etag;
        snap = res.snapshot;
      }
    } catch (err) {
      if (this.stopsOn(err)) return;
    }
    if (this.current !== attempt || this.final) return;
    if (!snap || (snap.seq <= seqBefore && (snap.epoch ?? null) === epochBefore)) {
      this.armStallCheck();
      return;
    }
    // The server is ahead of the channel. Show its state now; give the channel a moment to
    // deliver what is in flight, and drop it if it stays silent.
    this.store.applySnapshot(snap);
    this.afterChange(false);
    if (this.final) return;
    this.stallTimer = this.deps.timers.setTimeout(() => {
      this.stallTimer = null;
      if (this.current !== attempt || this.final) return;
      if (attempt.lastMessageAt === heardAt) this.failLive(attempt, 'stalled');
      else this.armStallCheck();
    }, this.opt.stallGraceMs);
  }

  // Events and resync ------------------------------------------------------------------------

  private applyEvent(ev: FileEvent | JobEvent): void {
    if (this.resyncing) {
      if (this.buffer.length < MAX_BUFFER) this.buffer.push(ev);
      return;
    }
    const r = this.store.applyEvent(ev);
    if (r === 'gap') {
      this.resync(ev);
      return;
    }
    if (r === 'applied') this.afterChange(false);
  }

  /** resync reads a snapshot to close a seq gap, then replays the events that came meanwhile. */
  private async resync(first: FileEvent | JobEvent): Promise<void> {
    this.resyncing = true;
    this.buffer = [first];
    let ok = false;
    try {
      const res = await this.deps.api.status(this.jobId, null);
      if (res.kind === 'snapshot') {
        this.store.applySnapshot(res.snapshot);
        ok = true;
      }
    } catch (err) {
      if (err instanceof ApiError && (err.status === 404 || err.status === 401)) {
        this.resyncing = false;
        this.stopsOn(err);
        return;
      }
    }
    const pending = this.buffer.sort((a, b) => a.seq - b.seq);
    this.resyncing = false;
    this.buffer = [];
    if (this.final) return;
    if (!ok) {
      // No snapshot to be had over HTTP: a fresh live connection starts with one.
      if (this.current) this.failLive(this.current, 'error');
      return;
    }
    this.afterChange(true);
    for (const ev of pending) {
      if (this.final) break;
      this.applyEvent(ev); // a new gap starts a new resync, which buffers the rest
    }
  }

  // Polling -----------------------------------------------------------------------------------

  private startPolling(): void {
    if (this.polling) return;
    this.polling = true;
    void this.poll();
  }

  private stopPolling(): void {
    this.polling = false;
    if (this.pollTimer !== null) this.deps.timers.clearTimeout(this.pollTimer);
    this.pollTimer = null;
    this.pollAbort?.abort();
    this.pollAbort = null;
  }

  private schedulePoll(delay: number): void {
    if (this.pollTimer !== null) this.deps.timers.clearTimeout(this.pollTimer);
    this.pollTimer = this.deps.timers.setTimeout(() => {
      this.pollTimer = null;
      void this.poll();
    }, delay);
  }

  private async poll(): Promise<void> {
    if (!this.polling || this.pollAbort) return;
    const abort = new AbortController();
    this.pollAbort = abort;
    try {
      const res = await this.deps.api.status(this.jobId, this.etag, abort.signal);
      if (this.pollAbort !== abort) return; // polling stopped meanwhile
      this.pollAbort = null;
      this.pollOk = true;
      this.pollFailures = 0;
      if (res.kind === 'snapshot') {
        this.etag = res.etag;
        const after = res.snapshot.poll_after_ms;
        if (typeof after === 'number' && after > 0) this.pollAfterMs = Math.max(100, after);
        this.store.applySnapshot(res.snapshot);
        this.afterChange(true);
      }
      if (!this.polling || this.final) return;
      this.schedulePoll(this.pollAfterMs);
      this.publish();
    } catch (err) {
      if (this.pollAbort !== abort) return;
      this.pollAbort = null;
      if (this.stopsOn(err)) return;
      this.pollFailures += 1;
      const backoff = Math.min(this.opt.backoffMaxMs, this.pollAfterMs * 2 ** Math.min(this.pollFailures, 5));
      if (err instanceof ApiError) this.lastError = err.message;
      if (err instanceof ApiError && err.status === 429) {
        this.pollOk = true; // the server answers; it only asks for patience
        this.schedulePoll(err.retryAfterMs ?? backoff);
      } else {
        this.pollOk = false;
        this.schedulePoll(backoff);
      }
      this.publish();
    }
  }

  // Terminal states ---------------------------------------------------------------------------

  /** afterChange finishes the connection once the job is terminal. */
  private afterChange(fromSnapshot: boolean): void {
    if (this.final) return;
    const s = this.store.getSummary();
    if (s.synced && isTerminalJob(s.status)) this.finish(fromSnapshot);
    else this.publish();
  }

  /**
   * finish closes every channel. When the terminal state came from an event, it reads the
   * final snapshot once more, so the page ends exactly on the server's record.
   */
  private finish(fromSnapshot: boolean): void {
    this.final = 'done';
    this.teardown();
    this.publish();
    if (!fromSnapshot) void this.reconcile(0);
  }

  /**
   * prime reads the status once at start, so the page shows the job (or that it does not
   * exist) even when the live channel is slow to answer.
   */
  private async prime(): Promise<void> {
    try {
      const res = await this.deps.api.status(this.jobId, null);
      if (this.final || res.kind !== 'snapshot') return;
      this.store.applySnapshot(res.snapshot);
      this.afterChange(true);
    } catch (err) {
      this.stopsOn(err);
      // Other failures are the ladder's business: it polls when live channels fail.
    }
  }

  private async reconcile(tries: number): Promise<void> {
    try {
      const res = await this.deps.api.status(this.jobId, null);
      if (res.kind === 'snapshot') this.store.applySnapshot(res.snapshot);
    } catch (err) {
      const hopeless = err instanceof ApiError && (err.status === 404 || err.status === 401);
      if (tries < 2 && !hopeless) {
        const wait = err instanceof ApiError && err.retryAfterMs !== null ? err.retryAfterMs : this.backoff(tries + 1);
        this.deps.timers.setTimeout(() => void this.reconcile(tries + 1), wait);
      }
    }
  }

  /**
   * stopsOn handles the answers that stop the ladder, whatever asked: 404 (the job is gone)
   * and 401 (the page needs a key). It reports whether err was one of them.
   */
  private stopsOn(err: unknown): boolean {
    if (!(err instanceof ApiError)) return false;
    if (err.status === 404) this.notFound(err.message);
    else if (err.status === 401) this.pauseForKey(err.message);
    else return false;
    return true;
  }

  private notFound(message: string): void {
    if (this.final) return;
    this.final = 'not_found';
    this.lastError = message;
    this.needsKey = false;
    this.teardown();
    this.store.markGone();
    this.publish();
  }

  private teardown(): void {
    this.running = false;
    this.closeAll();
  }

  /** closeAll closes every channel and timer. */
  private closeAll(): void {
    const cur = this.current;
    this.current = null;
    if (cur) {
      this.deps.timers.clearTimeout(cur.openTimer);
      cur.close(CLOSE_DONE);
    }
    this.clearRetry();
    this.clearStallCheck();
    this.stopPolling();
    this.buffer = [];
  }

  // Status --------------------------------------------------------------------------------------

  private publish(): void {
    const next = this.computeStatus();
    const prev = this.status;
    if (
      prev.state === next.state &&
      prev.channel === next.channel &&
      prev.retryAt === next.retryAt &&
      prev.attempt === next.attempt &&
      prev.error === next.error
    ) {
      return;
    }
    this.status = next;
    for (const l of [...this.listeners]) l();
  }

  private computeStatus(): ConnectionStatus {
    const base = { retryAt: this.retryAt, attempt: this.attempt, error: this.lastError };
    if (this.final === 'done') return { ...base, state: 'done', channel: null, retryAt: null, error: null };
    if (this.final === 'not_found') return { ...base, state: 'not_found', channel: null, retryAt: null };
    if (this.final === 'stopped') return { ...base, state: 'stopped', channel: null, retryAt: null };
    if (this.needsKey) return { ...base, state: 'unauthorized', channel: null, retryAt: null };
    const cur = this.current;
    if (cur?.live) return { ...base, state: 'live', channel: cur.kind, error: null };
    if (this.pollOk === true && this.polling) {
      return { ...base, state: cur ? 'reconnecting' : 'polling', channel: 'polling' };
    }
    if (this.pollOk === false) return { ...base, state: 'offline', channel: null };
    if (!this.everReached) return { ...base, state: 'connecting', channel: null };
    return { ...base, state: 'reconnecting', channel: null };
  }
}

function describeFailure(kind: LiveKind, why: string, wasLive: boolean): string {
  const name = kind === 'websocket' ? 'WebSocket' : 'Event stream';
  switch (why) {
    case 'timeout':
      return `${name} did not answer in time.`;
    case 'stalled':
      return `${name} stopped delivering updates.`;
    case 'going-away':
      return 'The server is restarting.';
    case 'closed':
      return `${name} was closed by the server.`;
    default:
      return wasLive ? `${name} connection was lost.` : `${name} could not connect.`;
  }
}
