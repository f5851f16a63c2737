// Sessions keeps the jobs this tab watches: for each, its store and its live connection. Jobs
// keep their live state while the person looks at another one, so several jobs can run at
// once; the least recently viewed are let go when too many are open.
import { ApiError } from '../api/client';
import { isTerminalJob } from '../api/types';
import { JobConnection, type ConnectionDeps } from '../live/connection';
import { authTexts, type Auth } from './auth';
import { JobStore } from './jobStore';
import { idsLabel, type RecentJobs } from './recentJobs';

/** Session is one watched job. */
export interface Session {
  readonly jobId: string;
  readonly store: JobStore;
  readonly connection: JobConnection;
}

interface Entry extends Session {
  lastUsed: number;
  unsubscribe: () => void;
}

/**
 * followAuth keeps the watched jobs in step with the page's access: they pause when it needs
 * a key and start over once it has one, and the recent list is refreshed when the page can
 * read again. It returns the function that stops following.
 */
export function followAuth(auth: Auth, sessions: Sessions): () => void {
  let phase = auth.getState().phase;
  return auth.subscribe(() => {
    const s = auth.getState();
    if (s.phase === phase) return;
    phase = s.phase;
    if (s.phase === 'needs-key') sessions.pauseAll(s.reason ?? authTexts.needed);
    if (s.phase === 'ready') {
      sessions.resumeAll();
      void sessions.refreshRecent();
    }
  });
}

/** Sessions is the registry of watched jobs; see the file comment. */
export class Sessions {
  private readonly entries = new Map<string, Entry>();
  private readonly deps: ConnectionDeps;
  private readonly recent: RecentJobs;
  private readonly maxOpen: number;
  private tick = 0;

  /** maxOpen is how many jobs keep a connection at once. If zero, 6. */
  constructor(deps: ConnectionDeps, recent: RecentJobs, maxOpen = 0) {
    this.deps = deps;
    this.recent = recent;
    this.maxOpen = maxOpen || 6;
  }

  /** open returns the job's session, creating and connecting it on first use. */
  open(jobId: string, seedIds?: number[]): Session {
    let e = this.entries.get(jobId);
    if (!e) {
      const store = new JobStore(jobId);
      if (seedIds) store.seed(seedIds);
      const connection = new JobConnection(jobId, store, this.deps);
      const unsubscribe = this.mirror(store);
      e = { jobId, store, connection, lastUsed: 0, unsubscribe };
      this.entries.set(jobId, e);
      connection.start();
    }
    e.lastUsed = ++this.tick;
    this.evict(jobId);
    return e;
  }

  /** peek returns the session of a job if this tab watches it. */
  peek(jobId: string): Session | undefined {
    return this.entries.get(jobId);
  }

  /** retryAll asks every connection to try its live channel now (the browser is online again). */
  retryAll(): void {
    for (const e of this.entries.values()) e.connection.retryNow();
  }

  /** pauseAll has every connection wait for a key (the page signed out, or its key was refused). */
  pauseAll(reason: string): void {
    for (const e of this.entries.values()) e.connection.pauseForKey(reason);
  }

  /** resumeAll starts every connection that waited for a key over again. */
  resumeAll(): void {
    for (const e of this.entries.values()) e.connection.resume();
  }

  /**
   * refreshRecent reads, once, the state of every unfinished job in the recent list that this
   * tab does not watch, so the list never shows a job as running that finished meanwhile.
   * Jobs the server no longer knows (expired) leave the list; those already marked gone stay
   * as they are, until the person removes them.
   */
  async refreshRecent(): Promise<void> {
    const stale = this.recent
      .getAll()
      .filter((j) => !isTerminalJob(j.status) && !j.gone && !this.entries.has(j.jobId));
    await Promise.all(
      stale.map(async (j) => {
        try {
          const res = await this.deps.api.status(j.jobId);
          if (res.kind !== 'snapshot' || this.entries.has(j.jobId)) return;
          const snap = res.snapshot;
          this.recent.upsert({
            jobId: j.jobId,
            status: snap.status,
            percent: Math.floor(snap.progress.percent),
            totalFiles: snap.files.length,
          });
        } catch (err) {
          if (err instanceof ApiError && err.status === 404) this.recent.remove(j.jobId);
          // Any other failure leaves the entry as it was; opening the job tells the rest.
        }
      }),
    );
  }

  /** forget stops watching a job. */
  forget(jobId: string): void {
    const e = this.entries.get(jobId);
    if (!e) return;
    e.connection.stop();
    e.unsubscribe();
    this.entries.delete(jobId);
  }

  /** mirror keeps the job's entry in the recent list up to date, at most once per visible step. */
  private mirror(store: JobStore): () => void {
    let last = '';
    const sync = () => {
      const s = store.getSummary();
      if (s.gone) {
        this.recent.markGone(s.jobId);
        return;
      }
      if (!s.synced && s.fileIds.length === 0) return;
      const percent = Math.floor(s.progress.percent);
      const key = `${s.status}:${percent}:${s.fileIds.length}`;
      if (key === last) return;
      last = key;
      this.recent.upsert({
        jobId: s.jobId,
        status: s.status,
        percent,
        totalFiles: s.fileIds.length,
        label: idsLabel(s.fileIds),
      });
    };
    sync();
    return store.subscribe(sync);
  }

  /** evict lets go of the least recently viewed running jobs beyond maxOpen. */
  private evict(keep: string): void {
    const open = [...this.entries.values()].filter(
      (e) => e.jobId !== keep && !isTerminalJob(e.store.getSummary().status),
    );
    const excess = open.length + 1 - this.maxOpen;
    if (excess <= 0) return;
    open.sort((a, b) => a.lastUsed - b.lastUsed);
    for (const e of open.slice(0, excess)) this.forget(e.jobId);
  }
}
