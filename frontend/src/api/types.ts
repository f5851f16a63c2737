// The wire types of the longhaul API, as shared/design/API.md defines them. Field names stay
// in the API's snake_case so that a reader can hold this file next to the contract.

/** The status of a job: queued → processing → completed | failed | canceled. */
export type JobStatus = 'queued' | 'processing' | 'completed' | 'failed' | 'canceled';

/** The status of one file of a job. */
export type FileStatus = 'queued' | 'processing' | 'ready' | 'unavailable' | 'failed' | 'canceled';

const terminalJob: ReadonlySet<string> = new Set(['completed', 'failed', 'canceled']);
const terminalFile: ReadonlySet<string> = new Set(['ready', 'unavailable', 'failed', 'canceled']);

/** isTerminalJob reports whether nothing will change a job in this status any more. */
export function isTerminalJob(status: JobStatus): boolean {
  return terminalJob.has(status);
}

/** isTerminalFile reports whether nothing will change a file in this status any more. */
export function isTerminalFile(status: FileStatus): boolean {
  return terminalFile.has(status);
}

/** Progress sums up the files of a job; percent is the mean of the files' percents. */
export interface Progress {
  percent: number;
  files_total: number;
  files_done: number;
  files_ready: number;
  files_unavailable: number;
  files_failed: number;
}

/** FileEntry is one file in a status body. */
export interface FileEntry {
  file_id: number;
  status: FileStatus;
  percent: number;
  attempt?: number;
  size?: number;
  download_url?: string;
  error?: string;
}

/** JobError says why a job failed. */
export interface JobError {
  code: string;
  message: string;
}

/**
 * Waiting says that the job's worker was lost: the job resumes from its checkpoint once another
 * worker takes it, expected by resume_by. Old servers never send it.
 */
export interface Waiting {
  reason: string;
  since: string;
  resume_by: string;
}

/**
 * An epoch names one history of a job's record. It changes when the record lost writes (a Redis
 * failover) and was repaired: what the page knew of another epoch may never have happened, so a
 * snapshot of the new one replaces it whole, even at a lower seq. Old servers send none.
 */
export type Epoch = string;

/** JobSnapshot is the body of GET /v1/download/status/{job_id} and of snapshot events. */
export interface JobSnapshot {
  job_id: string;
  status: JobStatus;
  seq: number;
  epoch?: Epoch;
  progress: Progress;
  files: FileEntry[];
  error: JobError | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
  poll_after_ms?: number;
  waiting?: Waiting | null;
}

/** InitiateResponse is the body of a 202 (or idempotent 200) from POST /v1/download/initiate. */
export interface InitiateResponse {
  job_id: string;
  status: JobStatus;
  total_files: number;
  links: { status: string; ws: string; events: string; cancel: string };
}

/** SnapshotEvent is the first message of every live connection, and a resync. */
export interface SnapshotEvent {
  type: 'snapshot';
  seq: number;
  epoch?: Epoch;
  job: JobSnapshot;
}

/** FileEvent carries every field of the file's entry in the status body at that moment. */
export interface FileEvent extends FileEntry {
  type: 'file';
  seq: number;
  epoch?: Epoch;
  job_id: string;
}

/** JobEvent tells a change of the job's own status. */
export interface JobEvent {
  type: 'job';
  seq: number;
  epoch?: Epoch;
  job_id: string;
  status: JobStatus;
  progress?: Progress;
  error: JobError | null;
  /** An object while the job waits for a worker; null (or absent, from old servers) otherwise. */
  waiting?: Waiting | null;
}

/** ErrorMessage is what a live channel sends before it closes on an unknown job. */
export interface ErrorMessage {
  type: 'error';
  error: ApiErrorBody['error'];
}

/** LiveEvent is any message of the WebSocket or the Server-Sent Events stream. */
export type LiveEvent = SnapshotEvent | FileEvent | JobEvent;

/** KeyInfo describes the API key the page holds, as GET /v1/me tells it. */
export interface KeyInfo {
  id: string;
  name: string;
  role: 'client' | 'admin';
  created_at: string;
}

/** MeResponse is the body of a 200 from GET /v1/me: auth off, or the key that was sent. */
export type MeResponse = { auth: 'none' } | { auth: 'keys'; key: KeyInfo };

/** TicketResponse is the body of a 201 from POST /v1/download/{job_id}/ticket. */
export interface TicketResponse {
  ticket: string;
  expires_at: string;
}

/** ApiErrorBody is the one shape of every error body. */
export interface ApiErrorBody {
  error: { code: string; message: string; field?: string };
}

/** jobIdPattern is "dl_" and a ULID in upper-case Crockford base32. */
export const jobIdPattern = /^dl_[0-7][0-9A-HJKMNP-TV-Z]{25}$/;

/** parseLiveMessage reads one live-channel message; it returns null for anything it cannot use. */
export function parseLiveMessage(data: unknown): LiveEvent | ErrorMessage | null {
  if (typeof data !== 'string') return null;
  let msg: unknown;
  try {
    msg = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof msg !== 'object' || msg === null) return null;
  const m = msg as { type?: unknown; seq?: unknown; job?: unknown; error?: unknown };
  switch (m.type) {
    case 'snapshot':
      return typeof m.seq === 'number' && typeof m.job === 'object' && m.job !== null
        ? (msg as SnapshotEvent)
        : null;
    case 'file':
    case 'job':
      return typeof m.seq === 'number' ? (msg as FileEvent | JobEvent) : null;
    case 'error':
      return typeof m.error === 'object' && m.error !== null ? (msg as ErrorMessage) : null;
    default:
      return null;
  }
}
