// Test doubles for the connection's injected dependencies: a clock that runs only when told,
// sockets and event streams the test speaks for, and an HTTP server that keeps one job and,
// when told, wants API keys, hands out tickets, loses its worker or forgets the job.
import { Api, type FetchFn } from '../api/client';
import type { SaveDeps } from '../api/download';
import type { FileEntry, JobSnapshot, JobStatus, KeyInfo } from '../api/types';
import type {
  ConnectionDeps,
  ConnectionOptions,
  EventSourceLike,
  LiveAccess,
  Timers,
  WebSocketLike,
} from '../live/connection';
import { KeyHolder } from '../state/apiKey';
import { Auth } from '../state/auth';
import type { StorageLike } from '../state/recentJobs';

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

/** MemoryStorage is a localStorage or sessionStorage that lives in memory. */
export class MemoryStorage implements StorageLike {
  readonly data = new Map<string, string>();
  getItem = (k: string) => this.data.get(k) ?? null;
  setItem = (k: string, v: string) => void this.data.set(k, v);
  removeItem = (k: string) => void this.data.delete(k);
}

/** Request is what FakeServer saw of one request. */
export interface Request {
  path: string;
  method: string;
  ifNoneMatch: string | null;
  authorization: string | null;
}

/** FakeServer keeps one job and answers the endpoints of API.md the way it says. */
export class FakeServer {
  job: JobSnapshot;
  /** When set, status requests fail the way a dead network does. */
  down = false;
  /** Answers requests before the server's own routes do; undefined falls through to them. */
  other: ((path: string, init?: RequestInit) => Response | undefined) | null = null;
  /** "keys" makes every route ask for one of keys in the Authorization header. */
  auth: 'none' | 'keys' = 'none';
  /** The keys the server accepts, by secret. */
  readonly keys = new Map<string, KeyInfo>();
  /** false plays a server from before API keys, which has no /v1/me. */
  hasMe = true;
  /** When set, the server no longer knows the job: it expired, or the server lost it. */
  vanished = false;
  /** Every ticket handed out, in order. */
  readonly tickets: string[] = [];
  readonly requests: Request[] = [];

  constructor(jobId: string, fileIds: number[]) {
    this.job = {
      job_id: jobId,
      status: 'queued',
      seq: 0,
      epoch: 'E1',
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
    return { type: 'file' as const, seq, epoch: this.job.epoch, job_id: this.job.job_id, ...file };
  }

  /** finish ends the job in a terminal status and returns the job event. */
  finish(status: JobStatus) {
    const seq = this.job.seq + 1;
    this.job = { ...this.job, seq, status, finished_at: '2026-11-29T22:01:00Z' };
    const { epoch, progress } = this.job;
    return { type: 'job' as const, seq, epoch, job_id: this.job.job_id, status, progress, error: null };
  }

  /** loseWorker has the job wait for a new worker and returns the job event that says so. */
  loseWorker(since: string, resumeBy: string) {
    return this.jobEvent({ status: 'processing', waiting: { reason: 'worker_lost', since, resume_by: resumeBy } });
  }

  /** resumeWorker has another worker take the job from its checkpoint; it returns the job event. */
  resumeWorker() {
    return this.jobEvent({ status: 'processing', waiting: null });
  }

  private jobEvent(change: Pick<JobSnapshot, 'status' | 'waiting'>) {
    const seq = this.job.seq + 1;
    this.job = { ...this.job, ...change, seq };
    const { status, progress, error, waiting, epoch } = this.job;
    return { type: 'job' as const, seq, epoch, job_id: this.job.job_id, status, progress, error, waiting };
  }

  snapshotEvent() {
    return { type: 'snapshot' as const, seq: this.job.seq, epoch: this.job.epoch, job: this.job };
  }

  /** save keeps a copy of the job's record, as a replica that lags behind has it. */
  save(): JobSnapshot {
    return structuredClone(this.job);
  }

  /**
   * loseWrites plays a failover that lost the writes since saved: the record is the saved copy
   * again, then repaired (a client showed that it saw more) into a new epoch with a seq above
   * aboveSeq, as the server does. Events after it carry the new epoch.
   */
  loseWrites(saved: JobSnapshot, epoch: string, aboveSeq: number) {
    this.job = { ...structuredClone(saved), epoch, seq: aboveSeq + 1 };
  }

  /** addKey makes the server accept a key. */
  addKey(secret: string, name = 'laptop', role: KeyInfo['role'] = 'client'): KeyInfo {
    const info: KeyInfo = { id: `key_${this.keys.size + 1}`, name, role, created_at: '2026-11-29T21:00:00Z' };
    this.keys.set(secret, info);
    return info;
  }

  get statusRequests() {
    return this.requests.filter((r) => r.path.startsWith('/v1/download/status/'));
  }

  get ticketRequests() {
    return this.requests.filter((r) => r.path.endsWith('/ticket'));
  }

  fetch: FetchFn = async (input, init) => {
    const headers = new Headers(init?.headers);
    const method = init?.method ?? 'GET';
    const authorization = headers.get('Authorization');
    this.requests.push({ path: input, method, ifNoneMatch: headers.get('If-None-Match'), authorization });
    if (this.down) throw new TypeError('Failed to fetch');
    const answer = this.other?.(input, init);
    if (answer) return answer;
    if (input === '/v1/me' && !this.hasMe) return notFound('no such route');
    const key = this.keys.get(authorization?.replace(/^Bearer /, '') ?? '');
    if (this.auth === 'keys' && !key) {
      return json(401, { error: { code: 'unauthorized', message: authorization ? 'this API key is not valid' : 'an API key is required' } }, { 'WWW-Authenticate': 'Bearer' });
    }
    if (input === '/v1/me') return json(200, this.auth === 'keys' ? { auth: 'keys', key } : { auth: 'none' });
    const base = `/v1/download/${this.job.job_id}`;
    if (this.vanished) return notFound('job not found');
    if (input === `${base}/ticket` && method === 'POST') {
      const ticket = `tk-${this.tickets.length + 1}`;
      this.tickets.push(ticket);
      return json(201, { ticket, expires_at: '2026-11-29T22:00:30Z' });
    }
    const file = new RegExp(`^${base}/files/(\\d+)$`).exec(input);
    if (file && this.job.files.some((f) => f.status === 'ready' && String(f.file_id) === file[1])) {
      return new Response(`bytes of ${file[1]}`, {
        status: 200,
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Disposition': `attachment; filename="file-${file[1]}.bin"` },
      });
    }
    if (input !== `/v1/download/status/${this.job.job_id}`) return notFound('job not found');
    const etag = `"${this.job.seq}"`;
    if (headers.get('If-None-Match') === etag) return new Response(null, { status: 304, headers: { ETag: etag } });
    return json(200, this.job, { ETag: etag });
  };
}

function notFound(message: string): Response {
  return json(404, { error: { code: 'not_found', message } });
}

/** rateLimited is the 429 of API.md: the contract's body, Retry-After and the RateLimit headers. */
export function rateLimited(message: string, retryAfterS: number): Response {
  return json(429, { error: { code: 'rate_limited', message } }, {
    'Retry-After': String(retryAfterS),
    'RateLimit-Limit': '60',
    'RateLimit-Remaining': '0',
    'RateLimit-Reset': String(retryAfterS),
  });
}

/** json is a JSON response, as the API sends them. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  });
}

/** FakeSaveDeps saves nothing: it records what the page asked the browser to save and revoke. */
export class FakeSaveDeps implements SaveDeps {
  readonly saved: { url: string; name: string; blob: Blob }[] = [];
  readonly revoked: string[] = [];
  private readonly clock: FakeClock;
  private readonly blobs = new Map<string, Blob>();

  constructor(clock: FakeClock) {
    this.clock = clock;
  }

  createObjectURL = (blob: Blob): string => {
    const url = `blob:fake/${this.blobs.size + 1}`;
    this.blobs.set(url, blob);
    return url;
  };

  revokeObjectURL = (url: string): void => void this.revoked.push(url);

  follow = (url: string, name: string): void => void this.saved.push({ url, name, blob: this.blobs.get(url)! });

  setTimeout = (fn: () => void, ms: number): unknown => this.clock.setTimeout(fn, ms);
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

/** noTickets is the access of a server that wants no keys, known from the start. */
export const noTickets: LiveAccess = { ticket: () => null };

/**
 * withAuth gives the rig the page's real Auth over its server, which wants keys (or, with
 * "none", does not), the page holding key (or none): the Auth's api and access become the
 * rig's. Call auth.check() next, as the page does at start.
 */
export function withAuth(r: Rig, mode: 'none' | 'keys', key: string | null = null) {
  r.server.auth = mode;
  const storage = new MemoryStorage();
  const keys = new KeyHolder(storage);
  if (key !== null) keys.set(key);
  const api = new Api(r.server.fetch, keys.get);
  const auth = new Auth(api, keys);
  r.deps.api = api;
  r.deps.access = auth;
  return { api, auth, keys, storage };
}

/** rig builds the fakes; random() is 0.5 unless a test says otherwise. */
export function rig(jobId: string, fileIds: number[], options?: Partial<ConnectionOptions>, sse = true): Rig {
  const server = new FakeServer(jobId, fileIds);
  const clock = new FakeClock();
  const sockets: FakeWebSocket[] = [];
  const streams: FakeEventSource[] = [];
  const deps: ConnectionDeps = {
    api: new Api(server.fetch),
    access: noTickets,
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
