// Calls to the REST endpoints of API.md. Every failure becomes an ApiError whose message is
// the contract's `message` when the server sent one, so the page can always say what happened.
// When the page holds an API key, every call carries it; a 401 is told to whoever listens, so
// the page can ask for a key again.
import type { ApiErrorBody, InitiateResponse, JobSnapshot, MeResponse, TicketResponse } from './types';

export type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

/** ApiError is a failed call: an error body from the API, or a network failure (status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  /** How long the server asks the client to wait before trying again (429, 503), if it said. */
  readonly retryAfterMs: number | null;

  constructor(status: number, code: string, message: string, field?: string, retryAfterMs: number | null = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfterMs = retryAfterMs;
  }
}

/** UnauthorizedListener hears of every 401, with the key the refused request carried. */
export type UnauthorizedListener = (err: ApiError, sentKey: string | null) => void;

/** FileDownload is a produced file, read whole, with the name the server gave it. */
export interface FileDownload {
  blob: Blob;
  /** The name from Content-Disposition; null when the server named none. */
  filename: string | null;
}

/** StatusResult is a fresh snapshot with its ETag, or "not modified" since the tag sent. */
export type StatusResult =
  | { kind: 'snapshot'; snapshot: JobSnapshot; etag: string | null }
  | { kind: 'not-modified' };

export const statusPath = (jobId: string) => `/v1/download/status/${encodeURIComponent(jobId)}`;
export const cancelPath = (jobId: string) => `/v1/download/${encodeURIComponent(jobId)}`;
export const eventsPath = (jobId: string) => `/v1/download/${encodeURIComponent(jobId)}/events`;
export const wsPath = (jobId: string) => `/ws/download/${encodeURIComponent(jobId)}`;
export const ticketPath = (jobId: string) => `/v1/download/${encodeURIComponent(jobId)}/ticket`;
export const mePath = '/v1/me';

/** Held is what the page holds of a job: the seq and epoch of the newest state it applied. */
export interface Held {
  seq: number;
  epoch: string | null;
}

/**
 * livePath adds to a WebSocket or event-stream path its live-channel ticket, and what the page
 * already holds of the job, so that the server repairs a record that lost writes the page saw
 * (a failover) before it sends the first snapshot.
 */
export function livePath(path: string, ticket: string | null, held: Held | null = null): string {
  const query = new URLSearchParams();
  if (ticket !== null) query.set('ticket', ticket);
  if (held) {
    query.set('seq', String(held.seq));
    if (held.epoch) query.set('epoch', held.epoch);
  }
  const q = query.toString();
  return q ? `${path}?${q}` : path;
}

interface SendOptions {
  /** The key to send instead of the held one (to check a key before keeping it). */
  key?: string | null;
  /** Whether a 401 is told to the listeners; a key being checked is not the page's key yet. */
  report401?: boolean;
}

/** Api wraps the endpoints the page uses, over an injectable fetch. */
export class Api {
  private readonly fetchFn: FetchFn;
  private readonly heldKey: () => string | null;
  private readonly unauthorized = new Set<UnauthorizedListener>();

  /** heldKey returns the API key to send, or null to send none. If omitted, no key is sent. */
  constructor(fetchFn: FetchFn, heldKey: () => string | null = () => null) {
    this.fetchFn = fetchFn;
    this.heldKey = heldKey;
  }

  /** onUnauthorized calls listener after every 401 of a call made with the held key. */
  onUnauthorized(listener: UnauthorizedListener): () => void {
    this.unauthorized.add(listener);
    return () => this.unauthorized.delete(listener);
  }

  /** me asks whether the server wants keys and, if so, whether key is one it accepts. */
  async me(key: string | null): Promise<MeResponse> {
    const res = await this.send(mePath, { headers: { Accept: 'application/json' }, cache: 'no-store' }, {
      key,
      report401: false,
    });
    return (await readJson(res)) as MeResponse;
  }

  /** ticket asks for a one-use ticket for one live connection to a job. */
  async ticket(jobId: string): Promise<TicketResponse> {
    const res = await this.send(ticketPath(jobId), { method: 'POST', headers: { Accept: 'application/json' } });
    return (await readJson(res)) as TicketResponse;
  }

  /** file reads a produced file whole, with the key, for a browser that cannot send it on a link. */
  async file(url: string): Promise<FileDownload> {
    const res = await this.send(url, {});
    let blob: Blob;
    try {
      blob = await res.blob();
    } catch {
      throw new ApiError(0, 'network', 'The download was interrupted. Try again.');
    }
    return { blob, filename: filenameFrom(res.headers.get('Content-Disposition')) };
  }

  /** initiate starts a job. The key makes a retried submission return the same job. */
  async initiate(fileIds: number[], idempotencyKey: string): Promise<InitiateResponse> {
    const res = await this.send('/v1/download/initiate', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': idempotencyKey },
      body: JSON.stringify({ file_ids: fileIds }),
    });
    return (await readJson(res)) as InitiateResponse;
  }

  /** status reads a job's snapshot; with an ETag it may answer "not modified". */
  async status(jobId: string, etag?: string | null, signal?: AbortSignal): Promise<StatusResult> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (etag) headers['If-None-Match'] = etag;
    const res = await this.send(statusPath(jobId), { headers, cache: 'no-store', signal });
    if (res.status === 304) return { kind: 'not-modified' };
    const snapshot = (await readJson(res)) as JobSnapshot;
    return { kind: 'snapshot', snapshot, etag: res.headers.get('ETag') };
  }

  /** cancel asks the server to cancel a job and returns its status body. */
  async cancel(jobId: string): Promise<JobSnapshot> {
    const res = await this.send(cancelPath(jobId), { method: 'DELETE' });
    return (await readJson(res)) as JobSnapshot;
  }

  private async send(path: string, init: RequestInit, opt: SendOptions = {}): Promise<Response> {
    const key = opt.key !== undefined ? opt.key : this.heldKey();
    const headers = new Headers(init.headers);
    // A key travels in this header only: never in a URL, where logs and history would keep it.
    if (key) headers.set('Authorization', `Bearer ${key}`);
    let res: Response;
    try {
      res = await this.fetchFn(path, { ...init, headers });
    } catch (err) {
      if (isAbort(err)) throw err;
      throw new ApiError(0, 'network', 'The server could not be reached. Check your connection.');
    }
    if (res.ok || res.status === 304) return res;
    const err = await errorFrom(res);
    if (err.status === 401 && opt.report401 !== false) {
      for (const l of [...this.unauthorized]) l(err, key);
    }
    throw err;
  }
}

/**
 * filenameFrom reads the file name of a Content-Disposition header: filename* (RFC 6266, in
 * UTF-8) before filename. Only the last path segment is kept, so a name can never be a path.
 */
export function filenameFrom(header: string | null): string | null {
  if (!header) return null;
  let name: string | null = null;
  const extended = /filename\*\s*=\s*([^';]*)'[^']*'([^;]+)/i.exec(header);
  if (extended) {
    try {
      name = decodeURIComponent(extended[2]!.trim());
    } catch {
      name = null; // a broken encoding: fall back to the plain name
    }
  }
  if (name === null) {
    const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(header);
    if (plain) name = plain[1] !== undefined ? plain[1].replace(/\\(.)/g, '$1') : plain[2]!;
  }
  const base = name?.split(/[\\/]/).pop()?.trim() ?? '';
  return base === '' || base === '.' || base === '..' ? null : base;
}

/**
 * retryAfterMs reads how long a refused client should wait: Retry-After in seconds or as a
 * date, else RateLimit-Reset in seconds. It returns null when the server said neither.
 */
export function retryAfterMs(headers: Headers, now: number = Date.now()): number | null {
  const after = headers.get('Retry-After')?.trim();
  if (after) {
    if (/^\d+$/.test(after)) return Number(after) * 1000;
    const at = Date.parse(after);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  const reset = headers.get('RateLimit-Reset')?.trim();
  if (reset && /^\d+$/.test(reset)) return Number(reset) * 1000;
  return null;
}

function isAbort(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: string }).name === 'AbortError';
}

async function readJson(res: Response): Promise<unknown> {
  try {
    return await res.json();
  } catch {
    throw new ApiError(res.status, 'bad_response', 'The server sent an answer the page cannot read.');
  }
}

/** errorFrom turns a failed response into an ApiError, using the contract's body when present. */
export async function errorFrom(res: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    // Not the contract's body: a proxy or a crashed server answered.
  }
  const e = (body as Partial<ApiErrorBody> | null)?.error;
  const wait = retryAfterMs(res.headers);
  if (e && typeof e.message === 'string' && e.message !== '') {
    return new ApiError(res.status, String(e.code ?? 'error'), e.message, e.field, wait);
  }
  const text = res.statusText ? ` ${res.statusText}` : '';
  return new ApiError(res.status, 'http_' + res.status, `The server answered ${res.status}${text}.`, undefined, wait);
}
