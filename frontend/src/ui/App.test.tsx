import { act, cleanup, fireEvent, render, screen } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RecentJobs, type StorageLike } from '../state/recentJobs';
import { Sessions } from '../state/sessions';
import { json, rig, settle } from '../test/fakes';
import { App } from './App';
import { AppContext } from './context';

const JOB = 'dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB';
const MIXED = [70000, 70001, 70007, 70008];

class MemoryStorage implements StorageLike {
  data = new Map<string, string>();
  getItem = (k: string) => this.data.get(k) ?? null;
  setItem = (k: string, v: string) => void this.data.set(k, v);
  removeItem = (k: string) => void this.data.delete(k);
}

function setup(path: string) {
  window.history.replaceState(null, '', path);
  const r = rig(JOB, MIXED);
  const recent = new RecentJobs(new MemoryStorage());
  const sessions = new Sessions(r.deps, recent);
  const posted: unknown[] = [];
  r.server.other = (p, init) => {
    if (p === '/v1/download/initiate' && init?.method === 'POST') {
      posted.push({ body: JSON.parse(String(init.body)), key: new Headers(init.headers).get('Idempotency-Key') });
      return json(202, {
        job_id: JOB,
        status: 'queued',
        total_files: 4,
        links: { status: '', ws: '', events: '', cancel: '' },
      });
    }
    if (p === `/v1/download/${JOB}` && init?.method === 'DELETE') {
      r.server.finish('canceled');
      r.server.job = {
        ...r.server.job,
        files: r.server.job.files.map((f) => (f.status === 'ready' ? f : { ...f, status: 'canceled', percent: 100 })),
      };
      return json(202, r.server.job);
    }
    return undefined;
  };
  let key = 0;
  const view = render(
    <AppContext.Provider value={{ api: r.deps.api, sessions, recent, newKey: () => `key-${++key}` }}>
      <App />
    </AppContext.Provider>,
  );
  return { ...r, recent, sessions, posted, view };
}

beforeEach(() => window.localStorage.clear());
afterEach(cleanup);

describe('the page', () => {
  it('starts a demo scenario in one click and shows the job at once, then live', async () => {
    const t = setup('/');
    fireEvent.click(screen.getByRole('button', { name: /^Mixed/ }));
    await act(settle);
    expect(t.posted).toEqual([{ body: { file_ids: MIXED }, key: 'key-1' }]);
    expect(window.location.pathname).toBe(`/jobs/${JOB}`);
    // Before the server says anything, every file is there, queued.
    const rows = t.view.container.querySelectorAll('li.file');
    expect([...rows].map((r) => r.getAttribute('data-file-id'))).toEqual(MIXED.map(String));
    expect(screen.getByRole('status').textContent).toBe('Connecting…');

    act(() => {
      t.lastSocket().open();
      t.lastSocket().send(t.server.snapshotEvent());
      t.lastSocket().send(t.server.updateFile(70001, { status: 'unavailable', percent: 100, error: 'file 70001 is not available' }));
    });
    expect(screen.getByRole('status').textContent).toBe('Live · WebSocket');
    expect(screen.getByText('file 70001 is not available')).toBeTruthy();
    expect(screen.getByRole('progressbar', { name: 'Overall progress' }).getAttribute('aria-valuenow')).toBe('25');
    expect(screen.getByTestId('files-done').textContent).toBe('1 of 4');
    // The job is in the recent list.
    expect(t.recent.getAll().map((j) => j.jobId)).toEqual([JOB]);
    expect(screen.getByRole('link', { name: /70000, 70001 \+2/ }).getAttribute('aria-current')).toBe('page');
  });

  it('validates typed ids before sending anything', async () => {
    const t = setup('/');
    const field = screen.getByLabelText('File ids');
    fireEvent.change(field, { target: { value: '70000, 12x' } });
    fireEvent.submit(field.closest('form')!);
    await act(settle);
    expect(screen.getByRole('alert').textContent).toMatch(/“12x” is not a file id/);
    expect(field.getAttribute('aria-invalid')).toBe('true');
    expect(t.posted).toEqual([]);
  });

  it('shows the API’s message when it refuses a job, and reuses the key on a retry', async () => {
    const t = setup('/');
    t.server.other = (_path, init) => {
      t.posted.push(new Headers(init?.headers).get('Idempotency-Key'));
      return json(503, { error: { code: 'unavailable', message: 'the job store is not answering; try again shortly' } });
    };
    const field = screen.getByLabelText('File ids');
    fireEvent.change(field, { target: { value: '70000' } });
    fireEvent.submit(field.closest('form')!);
    await act(settle);
    expect(screen.getByRole('alert').textContent).toBe('the job store is not answering; try again shortly');
    fireEvent.submit(field.closest('form')!);
    await act(settle);
    expect(t.posted).toEqual(['key-1', 'key-1']);
  });

  it('says a job does not exist in the server’s words', async () => {
    const t = setup(`/jobs/${JOB}`);
    act(() => {
      t.lastSocket().open();
      t.lastSocket().send({ type: 'error', error: { code: 'not_found', message: `job ${JOB} not found` } });
      t.lastSocket().drop(4404);
    });
    await act(settle);
    expect(screen.getByRole('heading', { name: 'Job not found' })).toBeTruthy();
    expect(screen.getByText(`job ${JOB} not found`)).toBeTruthy();
  });

  it('refuses a path that is not a job id without calling the API', async () => {
    const t = setup('/jobs/..%2Fetc');
    await act(settle);
    expect(screen.getByRole('heading', { name: 'This is not a job id' })).toBeTruthy();
    expect(t.sockets).toHaveLength(0);
    expect(t.server.requests).toHaveLength(0);
  });

  it('cancels a running job', async () => {
    const t = setup(`/jobs/${JOB}`);
    act(() => {
      t.lastSocket().open();
      t.lastSocket().send(t.server.snapshotEvent());
      t.lastSocket().send(t.server.updateFile(70000, { status: 'ready', percent: 100, size: 10, download_url: `/v1/download/${JOB}/files/70000` }));
    });
    fireEvent.click(screen.getByRole('button', { name: 'Cancel job' }));
    await act(settle);
    expect(t.server.requests.some((r) => r.method === 'DELETE')).toBe(true);
    expect(screen.getByText('Canceled', { selector: '.job-status' })).toBeTruthy();
    expect(screen.queryByRole('button', { name: 'Cancel job' })).toBeNull();
    expect(screen.getByRole('status').textContent).toBe('Final state');
    const statuses = [...t.view.container.querySelectorAll('li.file')].map((r) => r.getAttribute('data-status'));
    expect(statuses).toEqual(['ready', 'canceled', 'canceled', 'canceled']);
    expect(screen.getByRole('link', { name: /Download file 70000/ })).toBeTruthy();
  });

  it('says when it polls and when it will try to go live again', async () => {
    const t = setup(`/jobs/${JOB}`);
    act(() => {
      t.lastSocket().drop();
      t.lastStream().fail();
    });
    await act(settle);
    expect(screen.getByRole('status').textContent).toMatch(/^Polling — Live updates could not connect\./);
    expect(t.view.container.querySelector('.conn-retry')!.textContent).toMatch(/^live again in \d+ s$/);
  });
});
