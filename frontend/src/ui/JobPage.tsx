import { useEffect, useMemo, useRef, useState } from 'react';
import { ApiError } from '../api/client';
import { isTerminalJob, jobIdPattern, type JobStatus } from '../api/types';
import { EtaEstimator, elapsedMs } from '../lib/eta';
import { formatDuration, formatPercent, formatRemaining, waitingText } from '../lib/format';
import { linkClick } from '../lib/router';
import type { JobSummary } from '../state/jobStore';
import type { Session } from '../state/sessions';
import { ConnectionBadge } from './ConnectionBadge';
import { useApp } from './context';
import { FileList } from './FileList';
import { useConnection, useNow, useSummary, useSummaryPart } from './hooks';
import { ProgressBar } from './ProgressBar';

/** jobStatusLabel is how a person reads a job status. */
export function jobStatusLabel(s: JobStatus): string {
  switch (s) {
    case 'queued':
      return 'Queued';
    case 'processing':
      return 'Preparing files';
    case 'completed':
      return 'Completed';
    case 'failed':
      return 'Failed';
    case 'canceled':
      return 'Canceled';
  }
}

function jobTone(s: JobStatus): 'active' | 'ok' | 'bad' | 'muted' {
  return s === 'completed' ? 'ok' : s === 'failed' ? 'bad' : s === 'canceled' ? 'muted' : 'active';
}

/** JobPage is the page of one job: `/jobs/{job_id}`. */
export function JobPage({ jobId }: { jobId: string }) {
  if (!jobIdPattern.test(jobId)) {
    return (
      <Problem title="This is not a job id">
        <p>
          “{jobId}” does not look like a longhaul job id. Job ids start with <code>dl_</code> followed by 26
          letters and digits.
        </p>
      </Problem>
    );
  }
  return <WatchedJob key={jobId} jobId={jobId} />;
}

/** JOB_GONE_TEXT is what the page says of a job that disappeared while it was shown. */
export const JOB_GONE_TEXT = 'This job no longer exists (it expired, or the server lost it).';

/** What the page can show of a job: it, that it is gone, or that it never was found. */
const selectView = (s: JobSummary): 'job' | 'gone' | 'unknown' =>
  !s.gone ? 'job' : s.synced || s.fileIds.length > 0 ? 'gone' : 'unknown';

function WatchedJob({ jobId }: { jobId: string }) {
  const { sessions } = useApp();
  const session = useMemo(() => sessions.open(jobId), [sessions, jobId]);
  const status = useConnection(session.connection);
  const view = useSummaryPart(session.store, selectView);
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), [jobId]);

  if (view === 'gone') return <GoneJob session={session} headingRef={heading} />;
  if (view === 'unknown') {
    return (
      <Problem title="Job not found" headingRef={heading}>
        <p>{status.error ?? 'The server does not know this job.'}</p>
        <p className="muted">
          Jobs are kept for a limited time after they finish. Job id: <code>{jobId}</code>
        </p>
      </Problem>
    );
  }
  return (
    <>
      <JobOverview session={session} headingRef={heading} />
      <FileList store={session.store} />
    </>
  );
}

interface OverviewProps {
  session: Session;
  headingRef: React.RefObject<HTMLHeadingElement | null>;
}

/**
 * GoneJob is the one state of a job that disappeared while the page showed it: it says so, and
 * shows nothing that would still suggest a job (no progress, no time left, no Cancel, no links).
 */
function GoneJob({ session, headingRef }: OverviewProps) {
  const conn = useConnection(session.connection);
  useEffect(() => {
    document.title = 'Job gone · longhaul';
  }, []);
  return (
    <section className="card job" aria-labelledby="job-heading" data-gone="true">
      <div className="job-head">
        <div>
          <h1 id="job-heading" tabIndex={-1} ref={headingRef}>
            Job <code className="job-id">{session.jobId}</code>
          </h1>
          <p className="job-status tone-bad" data-status="gone" role="alert">
            {JOB_GONE_TEXT}
          </p>
        </div>
        <ConnectionBadge status={conn} />
      </div>
      <div className="actions">
        <a className="button secondary" href="/" onClick={linkClick('/')}>
          New job
        </a>
      </div>
    </section>
  );
}

function JobOverview({ session, headingRef }: OverviewProps) {
  const s = useSummary(session.store);
  const conn = useConnection(session.connection);
  const terminal = isTerminalJob(s.status);
  const p = s.progress;

  useEffect(() => {
    document.title = terminal
      ? `${jobStatusLabel(s.status)} · longhaul`
      : `${formatPercent(p.percent)} · longhaul`;
  }, [terminal, s.status, p.percent]);

  return (
    <section className="card job" aria-labelledby="job-heading">
      <div className="job-head">
        <div>
          <h1 id="job-heading" tabIndex={-1} ref={headingRef}>
            Job <code className="job-id">{s.jobId}</code>
          </h1>
          <p className={`job-status tone-${jobTone(s.status)}`} data-status={s.status} data-synced={s.synced}>
            {s.synced ? jobStatusLabel(s.status) : 'Starting…'}
          </p>
        </div>
        <ConnectionBadge status={conn} />
      </div>

      <ProgressBar
        percent={p.percent}
        label="Overall progress"
        detail={`${p.files_done} of ${p.files_total} files done`}
        tone={jobTone(s.status)}
        size="large"
      />
      <div className="job-stats">
        <p className="big-percent" aria-hidden="true">
          <Num>{formatPercent(p.percent)}</Num>
        </p>
        <dl className="stats">
          <div className="stat-wide">
            <dt>Files done</dt>
            <dd>
              <Num testId="files-done">
                {p.files_done} of {p.files_total}
              </Num>
            </dd>
          </div>
          <div>
            <dt>Ready</dt>
            <dd>
              <Num>{p.files_ready}</Num>
            </dd>
          </div>
          {p.files_unavailable > 0 ? (
            <div>
              <dt>Unavailable</dt>
              <dd>
                <Num>{p.files_unavailable}</Num>
              </dd>
            </div>
          ) : null}
          {p.files_failed > 0 ? (
            <div>
              <dt>Failed</dt>
              <dd>
                <Num>{p.files_failed}</Num>
              </dd>
            </div>
          ) : null}
          <Timing summary={s} />
        </dl>
      </div>
      <Announcer summary={s} />

      {s.error ? (
        <p className="job-error" role="alert">
          {s.error.message}
        </p>
      ) : null}
      <JobActions session={session} summary={s} />
    </section>
  );
}

/**
 * Num holds a figure that changes with every event. Its box has a fixed size and contains its
 * layout, so a new figure is laid out alone instead of the whole page with its 1,000 rows.
 */
export function Num({ children, testId }: { children: React.ReactNode; testId?: string }) {
  return (
    <span className="num" data-testid={testId}>
      {children}
    </span>
  );
}

/**
 * Timing shows the elapsed time and the estimate of the time left, ticking each second. While
 * the job waits for a worker there is no estimate to make: it says since when it waits instead.
 */
function Timing({ summary }: { summary: JobSummary }) {
  const terminal = isTerminalJob(summary.status);
  const { clock } = useApp();
  const now = useNow(1000, !terminal);
  const eta = useRef(new EtaEstimator());
  const percent = summary.progress.percent;
  const waiting = summary.waiting;
  useEffect(() => {
    // The rate from before a wait says nothing about the rate after it.
    eta.current = new EtaEstimator();
  }, [waiting !== null]);
  useEffect(() => {
    eta.current.add(clock(), percent);
  }, [percent, clock]);
  const elapsed = elapsedMs(summary, now);
  const elapsedStat = (
    <div className="stat-wide">
      <dt>Elapsed</dt>
      <dd>
        <Num>{elapsed === null ? '—' : formatDuration(elapsed)}</Num>
      </dd>
    </div>
  );
  if (waiting) {
    return (
      <>
        {elapsedStat}
        <div className="stat-waiting">
          <dt>Time left</dt>
          <dd data-testid="waiting">{waitingText(waiting, now)}</dd>
        </div>
      </>
    );
  }
  let left = '—';
  if (terminal) left = 'none';
  else if (summary.status === 'processing') {
    const ms = eta.current.remainingMs(now, percent, elapsed);
    left = ms === null ? 'estimating…' : formatRemaining(ms);
  } else left = 'waiting to start';
  return (
    <>
      {elapsedStat}
      <div className="stat-wide">
        <dt>Time left</dt>
        <dd>
          <Num>{left}</Num>
        </dd>
      </div>
    </>
  );
}

/**
 * Announcer tells screen readers about progress in steps a person can follow: when a file
 * finishes and when the job does, not on every tick.
 */
function Announcer({ summary }: { summary: JobSummary }) {
  const p = summary.progress;
  const text = !summary.synced
    ? ''
    : isTerminalJob(summary.status)
      ? `Job ${jobStatusLabel(summary.status).toLowerCase()}: ${p.files_ready} of ${p.files_total} files ready.`
      : summary.waiting
        ? 'Waiting for a worker.'
        : `${p.files_done} of ${p.files_total} files done.`;
  return (
    <p className="visually-hidden" aria-live="polite" aria-atomic="true">
      {text}
    </p>
  );
}

function JobActions({ session, summary }: { session: Session; summary: JobSummary }) {
  const { api } = useApp();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const terminal = isTerminalJob(summary.status);

  async function cancel() {
    setBusy(true);
    setError(null);
    try {
      const body = await api.cancel(session.jobId);
      session.connection.applySnapshot(body);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        session.connection.markNotFound(err.message); // the page now shows the job as gone
        return;
      }
      setError(err instanceof ApiError ? err.message : 'The job could not be canceled.');
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="actions">
      {!terminal ? (
        <button type="button" className="button danger" onClick={cancel} disabled={busy || !summary.synced}>
          {busy ? 'Canceling…' : 'Cancel job'}
        </button>
      ) : null}
      <a className="button secondary" href="/" onClick={linkClick('/')}>
        New job
      </a>
      {error ? (
        <p className="form-error" role="alert">
          {error}
        </p>
      ) : null}
    </div>
  );
}

interface ProblemProps {
  title: string;
  children: React.ReactNode;
  headingRef?: React.RefObject<HTMLHeadingElement | null>;
}

/** Problem is a page that says what went wrong and where to go from there. */
export function Problem({ title, children, headingRef }: ProblemProps) {
  return (
    <section className="card problem" role="alert" aria-labelledby="problem-heading">
      <h1 id="problem-heading" tabIndex={-1} ref={headingRef}>
        {title}
      </h1>
      {children}
      <p>
        <a href="/" onClick={linkClick('/')}>
          Start a new job
        </a>
      </p>
    </section>
  );
}
