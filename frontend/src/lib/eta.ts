// Estimating elapsed time and the time left of a job.
import type { JobSummary } from '../state/jobStore';

/**
 * elapsedMs is how long the job has run. It counts on the server's clock (updated_at minus
 * created_at) plus the local time since that snapshot arrived, so a browser whose clock is off
 * still shows the right figure.
 */
export function elapsedMs(s: JobSummary, now: number): number | null {
  if (!s.createdAt) return null;
  const created = Date.parse(s.createdAt);
  if (Number.isNaN(created)) return null;
  if (s.finishedAt) {
    const fin = Date.parse(s.finishedAt);
    if (!Number.isNaN(fin)) return Math.max(0, fin - created);
  }
  const updated = s.updatedAt ? Date.parse(s.updatedAt) : NaN;
  if (Number.isNaN(updated) || s.snapshotAt === null) return null;
  return Math.max(0, updated - created + (now - s.snapshotAt));
}

interface Sample {
  t: number;
  p: number;
}

/**
 * EtaEstimator guesses the time left from the recent rate of progress (the last 30 s), and
 * from the average rate since the start while too few recent samples exist.
 */
export class EtaEstimator {
  private samples: Sample[] = [];
  private readonly windowMs: number;

  constructor(windowMs = 30000) {
    this.windowMs = windowMs;
  }

  /** add records the job's percent at local time t. */
  add(t: number, percent: number): void {
    const last = this.samples[this.samples.length - 1];
    if (last && percent <= last.p) return;
    this.samples.push({ t, p: percent });
    const cutoff = t - this.windowMs;
    while (this.samples.length > 2 && this.samples[0]!.t < cutoff) this.samples.shift();
  }

  /** remainingMs is the estimate, or null while there is nothing to base it on. */
  remainingMs(now: number, percent: number, elapsed: number | null): number | null {
    if (percent >= 100) return 0;
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    let rate = 0; // percent per ms
    if (first && last && last.t - first.t >= 2000) rate = (last.p - first.p) / (last.t - first.t);
    if (rate <= 0 && elapsed !== null && elapsed > 0 && percent > 0) rate = percent / elapsed;
    if (rate <= 0) return null;
    const since = last ? Math.max(0, now - last.t) : 0;
    return Math.max(0, (100 - percent) / rate - since);
  }
}
