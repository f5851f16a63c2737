// JobStore holds what the page knows of one job, keyed by file id, and tells each subscriber
// only about the part it watches: one file event re-renders one file row and the job header,
// never the whole list. It also enforces what the page promises a person, within one epoch of
// the job's record: progress never goes backwards, a finished file or job never becomes
// unfinished again, and older news (a lower seq) never replaces newer. A snapshot of another
// epoch is the record after it lost writes (a Redis failover): what the page knew may never
// have happened, so that snapshot replaces it whole, even at a lower seq. A job the server no
// longer knows is marked gone, for good.
import {
  isTerminalFile,
  isTerminalJob,
  type FileEntry,
  type FileEvent,
  type FileStatus,
  type JobError,
  type JobEvent,
  type JobSnapshot,
  type JobStatus,
  type Progress,
  type Waiting,
} from '../api/types';

/** JobSummary is everything about a job except its files' details. */
export interface JobSummary {
  readonly jobId: string;
  readonly status: JobStatus;
  /** The seq of the newest state applied; -1 before the first snapshot. */
  readonly seq: number;
  /** The epoch of the record the state is of; null before the first snapshot, or from an old server. */
  readonly epoch: string | null;
  /** Whether a snapshot from the server was applied (before that, the state is a local guess). */
  readonly synced: boolean;
  readonly progress: Progress;
  readonly error: JobError | null;
  readonly createdAt: string | null;
  readonly updatedAt: string | null;
  readonly finishedAt: string | null;
  /** When (local clock, ms) the last snapshot was applied: the anchor for elapsed time. */
  readonly snapshotAt: number | null;
  /** The file ids in the job's order. The same array as long as the set does not change. */
  readonly fileIds: readonly number[];
  /** Set while the job waits for a new worker after losing its own; null otherwise. */
  readonly waiting: Waiting | null;
  /** Whether the server said the job does not exist (any more): expired, or lost. */
  readonly gone: boolean;
}

/** ApplyResult says what an event did: applied, already known (stale), or after a gap. */
export type ApplyResult = 'applied' | 'stale' | 'gap';

type Listener = () => void;

const emptyProgress: Progress = {
  percent: 0,
  files_total: 0,
  files_done: 0,
  files_ready: 0,
  files_unavailable: 0,
  files_failed: 0,
};

function jobRank(s: JobStatus): number {
  return s === 'queued' ? 0 : s === 'processing' ? 1 : 2;
}

/** round1 rounds a percent to one decimal, the precision the API reports. */
function round1(p: number): number {
  return Math.round(p * 10) / 10;
}

/** mergeFile returns the file's next state, or prev itself when nothing visible changes. */
export function mergeFile(prev: FileEntry | undefined, next: FileEntry): FileEntry {
  if (!prev) return normaliseFile(next);
  if (isTerminalFile(prev.status) && !isTerminalFile(next.status)) return prev;
  const merged = normaliseFile({
    file_id: prev.file_id,
    status: next.status,
    percent: Math.max(prev.percent, next.percent),
    attempt: next.attempt ?? prev.attempt,
    size: next.size ?? prev.size,
    download_url: next.download_url ?? prev.download_url,
    error: next.error ?? (isTerminalFile(next.status) ? prev.error : undefined),
  });
  return sameFile(prev, merged) ? prev : merged;
}

function normaliseFile(f: FileEntry): FileEntry {
  const out: FileEntry = { file_id: f.file_id, status: f.status, percent: clampPercent(f.percent) };
  if (isTerminalFile(f.status)) out.percent = 100;
  if (f.attempt !== undefined) out.attempt = f.attempt;
  if (f.size !== undefined) out.size = f.size;
  if (f.download_url) out.download_url = f.download_url;
  if (f.error) out.error = f.error;
  return out;
}

function clampPercent(p: number): number {
  return Number.isFinite(p) ? Math.min(100, Math.max(0, p)) : 0;
}

function sameFile(a: FileEntry, b: FileEntry): boolean {
  return (
    a.status === b.status &&
    a.percent === b.percent &&
    a.attempt === b.attempt &&
    a.size === b.size &&
    a.download_url === b.download_url &&
    a.error === b.error
  );
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

/** Tally keeps the sums that progress is made of, updated per file in constant time. */
class Tally {
  sum = 0;
  done = 0;
  ready = 0;
  unavailable = 0;
  failed = 0;

  add(f: FileEntry, sign: 1 | -1): void {
    this.sum += sign * f.percent;
    if (isTerminalFile(f.status)) this.done += sign;
    if (f.status === 'ready') this.ready += sign;
    if (f.status === 'unavailable') this.unavailable += sign;
    if (f.status === 'failed') this.failed += sign;
  }

  progress(total: number, floor: Progress): Progress {
    const percent = total > 0 ? round1(this.sum / total) : 0;
    return {
      percent: Math.max(floor.percent, percent),
      files_total: total,
      files_done: Math.max(floor.files_done, this.done),
      files_ready: Math.max(floor.files_ready, this.ready),
      files_unavailable: Math.max(floor.files_unavailable, this.unavailable),
      files_failed: Math.max(floor.files_failed, this.failed),
    };
  }
}

/** JobStore is the page's state of one job; see the file comment. */
export class JobStore {
  private summary: JobSummary;
  private readonly files = new Map<number, FileEntry>();
  private tally = new Tally();
  private readonly listeners = new Set<Listener>();
  private readonly fileListeners = new Map<number, Set<Listener>>();

  private readonly now: () => number;

  constructor(jobId: string, now: () => number = Date.now) {
    this.now = now;
    this.summary = {
      jobId,
      status: 'queued',
      seq: -1,
      epoch: null,
      synced: false,
      progress: emptyProgress,
      error: null,
      createdAt: null,
      updatedAt: null,
      finishedAt: null,
      snapshotAt: null,
      fileIds: [],
      waiting: null,
      gone: false,
    };
  }

  getSummary = (): JobSummary => this.summary;

  getFile = (fileId: number): FileEntry | undefined => this.files.get(fileId);

  /** subscribe calls listener after every change of the summary. */
  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** subscribeFile calls listener after every change of one file. */
  subscribeFile(fileId: number, listener: Listener): () => void {
    let set = this.fileListeners.get(fileId);
    if (!set) {
      set = new Set();
      this.fileListeners.set(fileId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.fileListeners.delete(fileId);
    };
  }

  /**
   * seed shows a job the page has just created, before the server's first snapshot: every file
   * queued. It does nothing once the store holds real state.
   */
  seed(fileIds: number[]): void {
    if (this.summary.synced || this.summary.fileIds.length > 0) return;
    const changed: number[] = [];
    for (const id of fileIds) {
      const f: FileEntry = { file_id: id, status: 'queued', percent: 0 };
      this.files.set(id, f);
      this.tally.add(f, 1);
      changed.push(id);
    }
    const at = new Date(this.now()).toISOString();
    this.summary = {
      ...this.summary,
      createdAt: at,
      updatedAt: at,
      snapshotAt: this.now(),
      fileIds: [...fileIds],
      progress: this.tally.progress(fileIds.length, emptyProgress),
    };
    this.emit(changed);
  }

  /** markGone records that the server no longer knows the job; nothing changes it after. */
  markGone(): void {
    if (this.summary.gone) return;
    this.summary = { ...this.summary, gone: true, waiting: null };
    this.emit([]);
  }

  /** applySnapshot takes a snapshot that is not older than what the store has, or one of another epoch. */
  applySnapshot(snap: JobSnapshot): boolean {
    if (this.summary.gone) return false;
    const epoch = snap.epoch ?? null;
    if (this.summary.synced && epoch !== this.summary.epoch) this.forget();
    if (snap.seq < this.summary.seq) return false;
    const changed: number[] = [];
    const ids = snap.files.map((f) => f.file_id);
    const keep = new Set(ids);
    for (const id of [...this.files.keys()]) {
      if (!keep.has(id)) {
        this.tally.add(this.files.get(id)!, -1);
        this.files.delete(id);
        changed.push(id);
      }
    }
    for (const f of snap.files) {
      if (this.putFile(f)) changed.push(f.file_id);
    }
    const prev = this.summary;
    const fileIds = sameIds(prev.fileIds, ids) ? prev.fileIds : ids;
    const server = snap.progress ?? emptyProgress;
    const local = this.tally.progress(ids.length, emptyProgress);
    const progress: Progress = {
      ...server,
      percent: Math.max(prev.progress.percent, server.percent ?? 0, local.percent),
      files_total: ids.length,
    };
    const status = this.nextJobStatus(snap.status);
    this.summary = {
      ...prev,
      status,
      waiting: waitingOf(status, snap.waiting),
      seq: snap.seq,
      epoch,
      synced: true,
      progress,
      error: snap.error ?? null,
      createdAt: snap.created_at ?? prev.createdAt,
      updatedAt: snap.updated_at ?? prev.updatedAt,
      finishedAt: snap.finished_at ?? prev.finishedAt,
      snapshotAt: this.now(),
      fileIds,
    };
    this.emit(changed);
    return true;
  }

  /** applyEvent applies the event that directly follows the store's seq. */
  applyEvent(ev: FileEvent | JobEvent): ApplyResult {
    const seq = this.summary.seq;
    if (this.summary.gone) return 'stale';
    if (!this.summary.synced) return 'gap';
    // Only a snapshot of its epoch can begin another history of the record.
    if ((ev.epoch ?? null) !== this.summary.epoch) return 'gap';
    if (ev.seq <= seq) return 'stale';
    if (ev.seq > seq + 1) return 'gap';
    if (ev.type === 'file') this.applyFileEvent(ev);
    else this.applyJobEvent(ev);
    return 'applied';
  }

  private applyFileEvent(ev: FileEvent): void {
    const entry: FileEntry = {
      file_id: ev.file_id,
      status: ev.status,
      percent: ev.percent,
      attempt: ev.attempt,
      size: ev.size,
      download_url: ev.download_url,
      error: ev.error,
    };
    const known = this.files.has(ev.file_id);
    const changed = this.putFile(entry);
    const prev = this.summary;
    const fileIds = known ? prev.fileIds : [...prev.fileIds, ev.file_id];
    this.summary = {
      ...prev,
      seq: ev.seq,
      status: prev.status === 'queued' ? this.nextJobStatus('processing') : prev.status,
      fileIds,
      progress: this.tally.progress(fileIds.length, prev.progress),
    };
    this.emit(changed ? [ev.file_id] : []);
  }

  private applyJobEvent(ev: JobEvent): void {
    const prev = this.summary;
    const status = this.nextJobStatus(ev.status);
    let progress = prev.progress;
    if (ev.progress) {
      progress = {
        ...ev.progress,
        percent: Math.max(prev.progress.percent, ev.progress.percent),
        files_total: prev.fileIds.length || ev.progress.files_total,
      };
    }
    this.summary = {
      ...prev,
      seq: ev.seq,
      status,
      progress,
      error: ev.error ?? prev.error,
      waiting: waitingOf(status, ev.waiting),
    };
    this.emit([]);
  }

  /**
   * forget drops what the store knows of the job but its id, before a snapshot of another epoch:
   * the files (their rows re-render from the snapshot) and the status, which may go back.
   */
  private forget(): void {
    this.files.clear();
    this.tally = new Tally();
    this.summary = {
      ...this.summary,
      status: 'queued',
      seq: -1,
      synced: false,
      progress: emptyProgress,
      error: null,
      waiting: null,
    };
  }

  /** putFile merges one file and keeps the tally; it reports whether the file changed. */
  private putFile(f: FileEntry): boolean {
    const prev = this.files.get(f.file_id);
    const next = mergeFile(prev, f);
    if (next === prev) return false;
    if (prev) this.tally.add(prev, -1);
    this.tally.add(next, 1);
    this.files.set(f.file_id, next);
    return true;
  }

  private nextJobStatus(next: JobStatus): JobStatus {
    const cur = this.summary.status;
    if (isTerminalJob(cur)) return cur;
    return jobRank(next) >= jobRank(cur) ? next : cur;
  }

  private emit(changedFiles: number[]): void {
    for (const id of changedFiles) {
      const set = this.fileListeners.get(id);
      if (set) for (const l of [...set]) l();
    }
    for (const l of [...this.listeners]) l();
  }
}

/**
 * waitingOf is the waiting state a job in this status shows: the server's object while the job
 * runs, nothing once it is over, and nothing from an old server that never sends the field.
 */
function waitingOf(status: JobStatus, waiting: Waiting | null | undefined): Waiting | null {
  if (isTerminalJob(status) || !waiting || typeof waiting !== 'object') return null;
  return typeof waiting.since === 'string' && typeof waiting.resume_by === 'string' ? waiting : null;
}

/** fileStatusLabel is how a person reads a file status. */
export function fileStatusLabel(s: FileStatus): string {
  switch (s) {
    case 'queued':
      return 'Queued';
    case 'processing':
      return 'Preparing';
    case 'ready':
      return 'Ready';
    case 'unavailable':
      return 'Unavailable';
    case 'failed':
      return 'Failed';
    case 'canceled':
      return 'Canceled';
  }
}
