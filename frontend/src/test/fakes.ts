// Test doubles for the connection's injected dependencies: a clock that runs only when told,
// sockets and event streams the test speaks for, and an HTTP server that keeps one job.
import { Api, type FetchFn } from '../api/client';
import type { FileEntry, JobSnapshot, JobStatus } from '../api/types';
import type { ConnectionDeps, ConnectionOptions, EventSourceLike, Timers, WebSocketLike } from '../live/connection';

/** settle lets pending promise chains run (a macrotask after every queued microtask). */
export function settle(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

interface Task {
  id: number;
  at: number;
  fn: () => void;
}

/** FakeClock is a Timers whose time moves only in advance(). */
export class FakeClock implements Timers {
  // Starts at the real time, so components that read Date.now() agree with it at first.
  private t = Date.now();
  private nextId = 1;
  private tasks: Task[] = [];

  setTimeout = (fn: () => void, ms: number): unknown => {
    const task = { id: this.nextId++, at: this.t + Math.max(0, ms), fn };
    this.tasks.push(task);
    return task.id;
  };

  clearTimeout = (handle: unknown): void => {
    this.tasks = this.tasks.filter((t) => t.id !== handle);
  };

  now = (): number => this.t;

  /** pending is how many timers are waiting. */
  get pending(): number {
    return this.tasks.length;
  }

  /** advance moves time forward, running due timers in order and settling promises between. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      this.tasks.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.tasks[0];
      if (!next || next.at > end) break;
      this.tasks.shift();
      this.t = next.at;
      next.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

/** FakeWebSocket is a WebSocket whose server side the test plays. */
export class FakeWebSocket implements WebSocketLike {
  onopen: ((ev: Event) => void) | null = null;
  onmessage: ((ev: MessageEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  closedWith: number | null = null;
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  open(): void {
    this.onopen?.({} as Event);
  }

  send(msg: unknown): void {
    this.onmessage?.({ data: JSON.stringify(msg) } as MessageEvent);
  }

  /** drop is the connection failing: an error, then close 1006 (or the given code). */
  drop(code = 1006): void {
    this.onerror?.({} as Event);
    this.onclose?.({ code, reason: '' } as CloseEvent);
  }

  close(code?: number): void {
    this.closedWith = code ?? 1005;
  }
}

/** FakeEventSource is an EventSource whose server side the test plays. */
export class FakeEventSource implements EventSourceLike {
  readonly path: string;
  closed = false;
  private readonly listeners = new Map<string, ((ev: { data?: unknown }) => void)[]>();

  constructor(path: string) {
    this.path = path;
  }

  addEventListener(type: string, listener: (ev: { data?: unknown }) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.closed = true;
  }

  /** emit delivers one message under an event name, as `event:` would. */
  emit(msg: unknown, type = 'message'): void {
    for (const l of this.listeners.get(type) ?? []) l({ data: JSON.stringify(msg) });
  }

  /** fail is a network error, as EventSource reports it. */
  fail(): void {
    for (const l of this.listeners.get('error') ?? []) l({});
  }
}

/** FakeServer keeps one job and answers the status endpoint the way API.md says. */
export class FakeServer {
  job: JobSnapshot;
  /** When set, status requests fail the way a dead network does. */
  down = false;
  /** Answers requests other than the status endpoint; undefined falls through to a 404. */
  other: ((path: string, init?: RequestInit) => Response | undefined) | null = null;
  readonly requests: { path: string; method: string; ifNoneMatch: string | null }[] = [];

  constructor(jobId: string, fileIds: number[]) {
    this.job = {
      job_id: jobId,
      status: 'queued',
      seq: 0,
      progress: {
        percent: 0,
        files_total: fileIds.length,
        files_done: 0,
        files_ready: 0,
        files_unavailable: 0,
        files_failed: 0,
      },
      files: fileIds.map((id) => ({ file_id: id, status: 'queued', percent: 0 })),
      error: null,
      created_at: '2026-11-29T22:00:00Z',
      updated_at: '2026-11-29T22:00:00Z',
      finished_at: null,
      poll_after_ms: 1000,
    };
  }

  /** updateFile changes one file, as the worker would, and returns the event it publishes. */
  updateFile(fileId: number, change: Partial<FileEntry>) {
    const files = this.job.files.map((f) => (f.file_id === fileId ? { ...f, ...change } : f));
    const file = files.find((f) => f.file_id === fileId)!;
    const seq = this.job.seq + 1;
    const done = files.filter((f) => ['ready', 'unavailable', 'failed', 'canceled'].includes(f.status));
    this.job = {
      ...this.job,
      seq,
      status: 'processing',
      files,
      progress: {
        ...this.job.progress,
        percent: Math.round((files.reduce((a, f) => a + f.percent, 0) / files.length) * 10) / 10,
        files_done: done.length,
        files_ready: files.filter((f) => f.status === 'ready').length,
        files_unavailable: files.filter((f) => f.status === 'unavailable').length,
      },
    };
    return { type: 'file' as const, seq, job_id: this.job.job_id, ...file };
  }

  /** finish ends the job in a terminal status and returns the job event. */
  finish(status: JobStatus) {
    const seq = this.job.seq + 1;
    this.job = { ...this.job, seq, status, finished_at: '2026-11-29T22:01:00Z' };
    return { type: 'job' as const, seq, job_id: this.job.job_id, status, progress: this.job.progress, error: null };
  }

  snapshotEvent() {
    return { type: 'snapshot' as const, seq: this.job.seq, job: this.job };
  }

  get statusRequests() {
    return this.requests.filter((r) => r.path.startsWith('/v1/download/status/'));
  }

  fetch: FetchFn = async (input, init) => {
    const headers = new Headers(init?.headers);
    this.requests.push({ path: input, method: init?.method ?? 'GET', ifNoneMatch: headers.get('If-None-Match') });
    if (this.down) throw new TypeError('Failed to fetch');
    const answer = this.other?.(input, init);
    if (answer) return answer;
    if (input !== `/v1/download/status/${this.job.job_id}`) {
      return json(404, { error: { code: 'not_found', message: 'job not found' } });
    }
    const etag = `"${this.job.seq}"`;
    if (headers.get('If-None-Match') === etag) return new Response(null, { status: 304, headers: { ETag: etag } });
    return json(200, this.job, { ETag: etag });
  };
}

/** json is a JSON response, as the API sends them. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  });
}

/** Rig is a connection's world: the server, the clock and every socket it opened. */
export interface Rig {
  server: FakeServer;
  clock: FakeClock;
  sockets: FakeWebSocket[];
  streams: FakeEventSource[];
  deps: ConnectionDeps;
  lastSocket(): FakeWebSocket;
  lastStream(): FakeEventSource;
}

/** rig builds the fakes; random() is 0.5 unless a test says otherwise. */
export function rig(jobId: string, fileIds: number[], options?: Partial<ConnectionOptions>, sse = true): Rig {
  const server = new FakeServer(jobId, fileIds);
  const clock = new FakeClock();
  const sockets: FakeWebSocket[] = [];
  const streams: FakeEventSource[] = [];
  const deps: ConnectionDeps = {
    api: new Api(server.fetch),
    openWebSocket: (path) => {
      const ws = new FakeWebSocket(path);
      sockets.push(ws);
      return ws;
    },
    openEventSource: sse
      ? (path) => {
          const es = new FakeEventSource(path);
          streams.push(es);
          return es;
        }
      : null,
    timers: clock,
    random: () => 0.5,
    options,
  };
  return {
    server,
    clock,
    sockets,
    streams,
    deps,
    lastSocket: () => sockets[sockets.length - 1]!,
    lastStream: () => streams[streams.length - 1]!,
  };
}
