import { useSyncExternalStore } from 'react';
import { isTerminalJob } from '../api/types';
import { formatPercent } from '../lib/format';
import { jobPath, linkClick } from '../lib/router';
import type { JobStore, JobSummary } from '../state/jobStore';
import type { RecentJob } from '../state/recentJobs';
import { useApp } from './context';
import { useSummaryPart } from './hooks';
import { jobStatusLabel, Num } from './JobPage';
import { ProgressBar } from './ProgressBar';

/** RecentList shows the jobs this browser started or opened, newest first. */
export function RecentList({ currentJobId }: { currentJobId: string | null }) {
  const { recent } = useApp();
  const items = useSyncExternalStore(recent.subscribe, recent.getAll);
  return (
    <nav className="card recent" aria-labelledby="recent-heading">
      <h2 id="recent-heading">Recent jobs</h2>
      {items.length === 0 ? (
        <p className="muted">Jobs you start appear here, so you can come back to them.</p>
      ) : (
        <ul>
          {items.map((j) => (
            <RecentItem key={j.jobId} job={j} current={j.jobId === currentJobId} />
          ))}
        </ul>
      )}
    </nav>
  );
}

const selectLive = (s: JobSummary) => `${s.synced ? s.status : ''}|${s.progress.percent}|${s.gone ? 'gone' : ''}`;

function RecentItem({ job, current }: { job: RecentJob; current: boolean }) {
  const { sessions, recent } = useApp();
  const session = sessions.peek(job.jobId);
  return (
    <li className={current ? 'current' : undefined}>
      <a href={jobPath(job.jobId)} onClick={linkClick(jobPath(job.jobId))} aria-current={current ? 'page' : undefined}>
        <span className="recent-label">{job.label || job.jobId}</span>
        {session ? <LiveState session={session.store} fallback={job} /> : <State job={job} />}
        <span className="recent-id">{job.jobId}</span>
      </a>
      <button
        type="button"
        className="icon-button"
        aria-label={`Remove job ${job.jobId} from the list`}
        title="Remove from the list"
        onClick={() => {
          sessions.forget(job.jobId);
          recent.remove(job.jobId);
        }}
      >
        ×
      </button>
    </li>
  );
}

function LiveState({ session, fallback }: { session: JobStore; fallback: RecentJob }) {
  const [status, percent, gone] = useSummaryPart(session, selectLive).split('|');
  if (gone) return <State job={{ ...fallback, gone: true }} />;
  if (!status) return <State job={fallback} />;
  return <State job={{ ...fallback, status: status as RecentJob['status'], percent: Number(percent) }} />;
}

function State({ job }: { job: RecentJob }) {
  if (job.gone) {
    // No percent and no bar: what the job had reached says nothing once it is gone.
    return (
      <span className="recent-state" data-gone="true">
        <span className="chip tone-muted">Gone</span>
      </span>
    );
  }
  const terminal = isTerminalJob(job.status);
  const tone = job.status === 'completed' ? 'ok' : job.status === 'failed' ? 'bad' : job.status === 'canceled' ? 'muted' : 'active';
  return (
    <span className="recent-state">
      <span className={`chip tone-${tone}`}>{jobStatusLabel(job.status)}</span>
      {!terminal ? (
        <span className="recent-percent">
          <Num>{formatPercent(job.percent)}</Num>
        </span>
      ) : null}
      <ProgressBar percent={terminal ? 100 : job.percent} label={`Job ${job.label}`} tone={tone} />
    </span>
  );
}
