// The list of recent jobs, kept in localStorage so it survives reloads and is shared by tabs.
import { jobIdPattern, type JobStatus } from '../api/types';

/** RecentJob is what the list remembers of one job. */
export interface RecentJob {
  readonly jobId: string;
  /** When the page first saw the job (local clock, ms). */
  readonly addedAt: number;
  readonly totalFiles: number;
  /** A short reminder of the ids, such as "70000, 70007 +2". */
  readonly label: string;
  readonly status: JobStatus;
  readonly percent: number;
  /** Set once the server said, while the page watched, that the job no longer exists. */
  readonly gone?: boolean;
}

/** StorageLike is the part of localStorage the list uses. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

const KEY = 'longhaul.recentJobs.v1';
/** MAX_RECENT bounds the list; the oldest entries fall off. */
export const MAX_RECENT = 20;

const statuses: ReadonlySet<string> = new Set(['queued', 'processing', 'completed', 'failed', 'canceled']);

/** idsLabel shortens a list of ids for the recent list. */
export function idsLabel(ids: readonly number[]): string {
  const head = ids.slice(0, 2).join(', ');
  return ids.length > 2 ? `${head} +${ids.length - 2}` : head;
}

function valid(e: unknown): e is RecentJob {
  if (typeof e !== 'object' || e === null) return false;
  const r = e as Record<string, unknown>;
  return (
    typeof r.jobId === 'string' &&
    jobIdPattern.test(r.jobId) &&
    typeof r.addedAt === 'number' &&
    typeof r.totalFiles === 'number' &&
    typeof r.label === 'string' &&
    typeof r.status === 'string' &&
    statuses.has(r.status) &&
    typeof r.percent === 'number' &&
    (r.gone === undefined || typeof r.gone === 'boolean')
  );
}

/** RecentJobs is an observable list over a storage; it never throws on a full or broken storage. */
export class RecentJobs {
  private readonly storage: StorageLike | null;
  private items: readonly RecentJob[];
  private readonly listeners = new Set<() => void>();

  constructor(storage: StorageLike | null) {
    this.storage = storage;
    this.items = this.read();
  }

  getAll = (): readonly RecentJob[] => this.items;

  get(jobId: string): RecentJob | undefined {
    return this.items.find((j) => j.jobId === jobId);
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** upsert adds a job at the top, or updates it where it is. */
  upsert(job: Partial<RecentJob> & { jobId: string }): void {
    const i = this.items.findIndex((j) => j.jobId === job.jobId);
    if (i >= 0) {
      const prev = this.items[i]!;
      const next = { ...prev, ...job };
      if (
        next.status === prev.status &&
        next.percent === prev.percent &&
        next.totalFiles === prev.totalFiles &&
        next.label === prev.label &&
        next.gone === prev.gone
      ) {
        return;
      }
      const items = [...this.items];
      items[i] = next;
      this.write(items);
      return;
    }
    const entry: RecentJob = {
      addedAt: Date.now(),
      totalFiles: 0,
      label: '',
      status: 'queued',
      percent: 0,
      ...job,
    };
    this.write([entry, ...this.items].slice(0, MAX_RECENT));
  }

  /** markGone marks a listed job as no longer existing; a job not in the list stays out of it. */
  markGone(jobId: string): void {
    if (this.get(jobId)) this.upsert({ jobId, gone: true });
  }

  remove(jobId: string): void {
    this.write(this.items.filter((j) => j.jobId !== jobId));
  }

  /** reload reads the storage again, after another tab changed it. */
  reload(): void {
    this.items = this.read();
    this.emit();
  }

  private read(): readonly RecentJob[] {
    try {
      const raw = this.storage?.getItem(KEY);
      if (!raw) return [];
      const parsed: unknown = JSON.parse(raw);
      return Array.isArray(parsed) ? parsed.filter(valid).slice(0, MAX_RECENT) : [];
    } catch {
      return [];
    }
  }

  private write(items: readonly RecentJob[]): void {
    this.items = items;
    try {
      this.storage?.setItem(KEY, JSON.stringify(items));
    } catch {
      // A full or disabled storage only costs the list its memory across reloads.
    }
    this.emit();
  }

  private emit(): void {
    for (const l of [...this.listeners]) l();
  }
}

/** RECENT_STORAGE_KEY is the localStorage key, for the storage event of other tabs. */
export const RECENT_STORAGE_KEY = KEY;
