import { useId, useMemo, useRef, useState } from 'react';
import { ApiError } from '../api/client';
import { MAX_FILES, parseFileIds, scenarios, type Scenario } from '../lib/fileIds';
import { retryAtText, retryCountdown } from '../lib/format';
import { jobPath, navigate } from '../lib/router';
import { idsLabel } from '../state/recentJobs';
import { useApp } from './context';
import { useRetryAfter } from './hooks';

/** NewJob is the form that starts a job: typed ids, or one of the demo's scenarios in one click. */
export function NewJob() {
  const { api, sessions, recent, newKey } = useApp();
  const [text, setText] = useState('');
  const [touched, setTouched] = useState(false);
  const [busy, setBusy] = useState(false);
  const [serverError, setServerError] = useState<string | null>(null);
  const retry = useRetryAfter();
  const blocked = busy || retry.waiting;
  const key = useRef<{ ids: string; key: string } | null>(null);
  const inputId = useId();
  const hintId = useId();
  const errorId = useId();
  const parsed = useMemo(() => parseFileIds(text), [text]);
  const showErrors = touched && parsed.errors.length > 0;

  async function start(ids: number[]) {
    setBusy(true);
    setServerError(null);
    // The same ids resubmitted (a double click, a retry after a network error) reuse the key,
    // so the server returns the job it already made instead of a second one.
    const sig = ids.join(',');
    if (key.current?.ids !== sig) key.current = { ids: sig, key: newKey() };
    try {
      const res = await api.initiate(ids, key.current.key);
      key.current = null;
      recent.upsert({ jobId: res.job_id, totalFiles: res.total_files, label: idsLabel(ids), status: res.status });
      sessions.open(res.job_id, ids);
      navigate(jobPath(res.job_id));
    } catch (err) {
      setServerError(err instanceof ApiError ? err.message : 'The job could not be started.');
      retry.note(err);
      setBusy(false);
    }
  }

  function onSubmit(e: React.FormEvent) {
    e.preventDefault();
    setTouched(true);
    if (parsed.errors.length > 0 || blocked) return;
    void start(parsed.ids);
  }

  function runScenario(s: Scenario) {
    if (blocked) return;
    setText(s.ids.join(', '));
    setTouched(false);
    void start([...s.ids]);
  }

  const describedBy = [hintId, showErrors || serverError ? errorId : ''].filter(Boolean).join(' ');
  return (
    <section className="card new-job" aria-labelledby="new-job-heading">
      <h1 id="new-job-heading">Prepare files for download</h1>
      <p className="lead">
        Enter the ids of the files you need. longhaul prepares them in the background and shows every file’s
        progress live; you can close the page and come back.
      </p>
      <form onSubmit={onSubmit} noValidate>
        <label htmlFor={inputId}>File ids</label>
        <textarea
          id={inputId}
          name="file_ids"
          rows={4}
          value={text}
          spellCheck={false}
          autoComplete="off"
          inputMode="numeric"
          placeholder="70000, 70007, 70014"
          aria-invalid={showErrors}
          aria-describedby={describedBy}
          onChange={(e) => {
            setText(e.target.value);
            setServerError(null);
          }}
          onBlur={() => setTouched(text.trim() !== '')}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) onSubmit(e);
          }}
        />
        <p id={hintId} className="hint">
          Separate ids with commas, spaces or new lines: 1 to {MAX_FILES} whole numbers. Repeated ids count once.
          {parsed.ids.length > 0 ? (
            <span className="hint-count" data-testid="id-count">
              {' '}
              {parsed.ids.length} {parsed.ids.length === 1 ? 'file' : 'files'}
              {parsed.duplicates > 0
                ? `, ${parsed.duplicates} duplicate${parsed.duplicates === 1 ? '' : 's'} removed`
                : ''}
              .
            </span>
          ) : null}
        </p>
        {showErrors || serverError ? (
          <div id={errorId} className="form-error" role="alert">
            {showErrors ? parsed.errors.map((m) => <p key={m}>{m}</p>) : null}
            {serverError ? <p>{serverError}</p> : null}
            {serverError && retry.at !== null ? <p data-testid="retry-at">{retryAtText(retry.at)}</p> : null}
          </div>
        ) : null}
        <div className="actions">
          <button type="submit" className="button primary" disabled={blocked}>
            {busy ? 'Starting…' : 'Start job'}
          </button>
          {retry.waiting && retry.at !== null ? (
            <span className="retry-count" aria-hidden="true">
              {retryCountdown(retry.at, retry.now)}
            </span>
          ) : null}
        </div>
      </form>
      <div className="scenarios">
        <h2 id="scenario-heading">Or try a demo scenario</h2>
        <ul aria-labelledby="scenario-heading">
          {scenarios.map((s) => (
            <li key={s.key}>
              <button
                type="button"
                className="button scenario"
                disabled={blocked}
                onClick={() => runScenario(s)}
                data-scenario={s.key}
              >
                <span className="scenario-name">{s.label}</span>
                <span className="scenario-ids">{s.ids.join(', ')}</span>
                <span className="scenario-desc">{s.description}</span>
              </button>
            </li>
          ))}
        </ul>
      </div>
    </section>
  );
}
