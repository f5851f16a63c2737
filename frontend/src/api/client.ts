// Calls to the REST endpoints of API.md. Every failure becomes an ApiError whose message is
// the contract's `message` when the server sent one, so the page can always say what happened.
import type { ApiErrorBody, InitiateResponse, JobSnapshot } from './types';

export type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

/** ApiError is a failed call: an error body from the API, or a network failure (status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;

  constructor(status: number, code: string, message: string, field?: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** StatusResult is a fresh snapshot with its ETag, or "not modified" since the tag sent. */
export type StatusResult =
  | { kind: 'snapshot'; snapshot: JobSnapshot; etag: string | null }
  | { kind: 'not-modified' };

export const statusPath = (jobId: string) => `/v1/download/status/${encodeURIComponent(jobId)}`;
export const cancelPath = (jobId: string) => `/v1/download/${encodeURIComponent(jobId)}`;
export const eventsPath = (jobId: string) => `/v1/download/${encodeURIComponent(jobId)}/events`;
export const wsPath = (jobId: string) => `/ws/download/${encodeURIComponent(jobId)}`;

/** Api wraps the endpoints the page uses, over an injectable fetch. */
export class Api {
  private readonly fetchFn: FetchFn;

  constructor(fetchFn: FetchFn) {
    this.fetchFn = fetchFn;
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

  private async send(path: string, init: RequestInit): Promise<Response> {
    let res: Response;
    try {
      res = await this.fetchFn(path, init);
    } catch (err) {
      if (isAbort(err)) throw err;
      throw new ApiError(0, 'network', 'The server could not be reached. Check your connection.');
    }
    if (res.ok || res.status === 304) return res;
    throw await errorFrom(res);
  }
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
  if (e && typeof e.message === 'string' && e.message !== '') {
    return new ApiError(res.status, String(e.code ?? 'error'), e.message, e.field);
  }
  const text = res.statusText ? ` ${res.statusText}` : '';
  return new ApiError(res.status, 'http_' + res.status, `The server answered ${res.status}${text}.`);
}
