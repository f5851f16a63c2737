// How numbers read on the page.

/** formatPercent shows a percent with at most one decimal, never above 100. */
export function formatPercent(p: number): string {
  const v = Math.min(100, Math.max(0, p));
  return (Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1)) + '%';
}

/** formatDuration shows milliseconds as "42 s", "3 min 05 s" or "1 h 02 min". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  const h = Math.floor(m / 60);
  return `${h} h ${String(m % 60).padStart(2, '0')} min`;
}

/** formatRemaining shows an estimate of the time left, rounded the way estimates should be. */
export function formatRemaining(ms: number): string {
  if (ms < 5000) return 'a few seconds';
  if (ms < 60000) return `about ${Math.ceil(ms / 5000) * 5} s`;
  if (ms < 3600000) return `about ${Math.round(ms / 60000)} min`;
  return `about ${(ms / 3600000).toFixed(1)} h`;
}

/** formatBytes shows a size in B, KiB, MiB or GiB. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** formatTime shows an RFC 3339 time as a local date and time. */
export function formatTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** formatClock shows an RFC 3339 time as the local time of day, "14:03:07"; null if it is no time. */
export function formatClock(iso: string): string | null {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return null;
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/**
 * waitingText says since when a job waits for a worker and when it should resume: by a time
 * of day, or "any moment now" once that time has passed.
 */
export function waitingText(waiting: { since: string; resume_by: string }, now: number): string {
  const since = formatClock(waiting.since);
  const head = since ? `Waiting for a worker since ${since}` : 'Waiting for a worker';
  const resumeBy = Date.parse(waiting.resume_by);
  if (Number.isNaN(resumeBy)) return head;
  return now < resumeBy
    ? `${head}; expected to resume by ${formatClock(waiting.resume_by)}`
    : `${head}; expected to resume any moment now`;
}

/** retryAtText says when the server allows the next try, as a time of day. */
export function retryAtText(at: number): string {
  return `You can try again at ${formatClock(new Date(at).toISOString())}.`;
}

/** retryCountdown is the seconds until the next try is allowed, shown but not announced. */
export function retryCountdown(at: number, now: number): string {
  const s = Math.ceil((at - now) / 1000);
  return s > 0 ? `Try again in ${s} s` : '';
}
