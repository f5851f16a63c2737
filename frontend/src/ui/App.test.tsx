import { act, cleanup, fireEvent, render, screen, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileSaver, REVOKE_AFTER_MS } from '../api/download';
import { formatClock } from '../lib/format';
import { API_KEY_STORAGE_KEY } from '../state/apiKey';
import { RecentJobs } from '../state/recentJobs';
import { followAuth, Sessions } from '../state/sessions';
import { FakeSaveDeps, json, MemoryStorage, rateLimited, rig, settle, withAuth } from '../test/fakes';
import { App } from './App';
import { AppContext } from './context';
import { JOB_GONE_TEXT } from './JobPage';

const JOB = 'dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB';
const MIXED = [70000, 70001, 70007, 70008];

interface Options {
  /** What the server wants; "none" unless told. */
  auth?: 'none' | 'keys';
  /** The key the tab holds at start; the server accepts "secret-1". */
  held?: string | null;
}

/** setup renders the page at path, wired as main.tsx wires it, once /v1/me has answered. */
async function setup(path: string, opt: Options = {}) {
  window.history.replaceState(null, '', path);
  const r = rig(JOB, MIXED);
  r.server.addKey('secret-1');
  const { api, auth, storage } = withAuth(r, opt.auth ?? 'none', opt.held ?? null);
  await auth.check();
  const recent = new RecentJobs(new MemoryStorage());
  const sessions = new Sessions(r.deps, recent);
  followAuth(auth, sessions);
  const saves = new FakeSaveDeps(r.clock);
  const files = new FileSaver(api, () => auth.downloadsNeedKey(), saves);
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
    <AppContext.Provider value={{ api, auth, sessions, recent, files, newKey: () => `key-${++key}`, clock: () => r.clock.now() }}>
      <App />
    </AppContext.Provider>,
  );
  return { ...r, auth, storage, saves, recent, sessions, posted, view };
}

/** showJob opens the job's socket and has it send the snapshot and then events. */
function showJob(t: Awaited<ReturnType<typeof setup>>, ...events: unknown[]) {
  act(() => {
    t.lastSocket().open();
    t.lastSocket().send(t.server.snapshotEvent());
    for (const ev of events) t.lastSocket().send(ev);
  });
}

/** submitKey types a key into the prompt and sends it. */
async function submitKey(key: string) {
  const field = screen.getByLabelText('API key');
  fireEvent.change(field, { target: { value: key } });
  fireEvent.submit(field.closest('form')!);
  await act(settle);
}

beforeEach(() => window.localStorage.clear());
afterEach(cleanup);

describe('the page', () => {
  it('starts a demo scenario in one click and shows the job at once, then live', async () => {
    const t = await setup('/');
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
    const t = await setup('/');
    const field = screen.getByLabelText('File ids');
    fireEvent.change(field, { target: { value: '70000, 12x' } });
    fireEvent.submit(field.closest('form')!);
    await act(settle);
    expect(screen.getByRole('alert').textContent).toMatch(/“12x” is not a file id/);
    expect(field.getAttribute('aria-invalid')).toBe('true');
    expect(t.posted).toEqual([]);
  });

  it('shows the API’s message when it refuses a job, and reuses the key on a retry', async () => {
    const t = await setup('/');
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
    const t = await setup(`/jobs/${JOB}`);
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
    const t = await setup('/jobs/..%2Fetc');
    await act(settle);
    expect(screen.getByRole('heading', { name: 'This is not a job id' })).toBeTruthy();
    expect(t.sockets).toHaveLength(0);
    expect(t.server.requests.map((r) => r.path)).toEqual(['/v1/me']); // the start-up check only
  });

  it('cancels a running job', async () => {
    const t = await setup(`/jobs/${JOB}`);
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
    const t = await setup(`/jobs/${JOB}`);
    act(() => {
      t.lastSocket().drop();
      t.lastStream().fail();
    });
    await act(settle);
    expect(screen.getByRole('status').textContent).toMatch(/^Polling — Live updates could not connect\./);
    expect(t.view.container.querySelector('.conn-retry')!.textContent).toMatch(/^live again in \d+ s$/);
  });

  it('ends a job that disappears in one coherent state, and marks it gone in the recent list', async () => {
    const t = await setup(`/jobs/${JOB}`);
    showJob(
      t,
      t.server.updateFile(70000, { status: 'ready', percent: 100, size: 10, download_url: `/v1/download/${JOB}/files/70000` }),
      t.server.updateFile(70007, { status: 'processing', percent: 24 }),
    );
    const main = screen.getByRole('main');
    expect(within(main).getByRole('button', { name: 'Cancel job' })).toBeTruthy();
    act(() => {
      t.lastSocket().send({ type: 'error', error: { code: 'not_found', message: `job ${JOB} not found` } });
      t.lastSocket().drop(4404);
    });
    await act(settle);
    expect(within(main).getByRole('alert').textContent).toBe(JOB_GONE_TEXT);
    expect(within(main).getByRole('heading', { level: 1 }).textContent).toBe(`Job ${JOB}`);
    expect(within(main).queryAllByRole('progressbar')).toEqual([]);
    expect(main.textContent).not.toMatch(/%|Time left|Preparing files|Elapsed/);
    expect(within(main).queryByRole('button', { name: 'Cancel job' })).toBeNull();
    expect(within(main).queryAllByRole('link', { name: /Download/ })).toEqual([]);
    expect(screen.getByRole('status').textContent).toBe('Job gone');
    expect(document.title).toBe('Job gone · longhaul');
    const recentNav = screen.getByRole('navigation', { name: 'Recent jobs' });
    expect(within(recentNav).getByText('Gone')).toBeTruthy();
    expect(recentNav.textContent).not.toMatch(/%/);
    expect(within(recentNav).queryAllByRole('progressbar')).toEqual([]);
    expect(t.recent.get(JOB)?.gone).toBe(true);
  });

  it('shows a job as gone when a cancel finds it no longer exists', async () => {
    const t = await setup(`/jobs/${JOB}`);
    showJob(t, t.server.updateFile(70007, { status: 'processing', percent: 24 }));
    t.server.other = null;
    t.server.vanished = true;
    fireEvent.click(screen.getByRole('button', { name: 'Cancel job' }));
    await act(settle);
    expect(within(screen.getByRole('main')).getByRole('alert').textContent).toBe(JOB_GONE_TEXT);
  });

  it('shows the wait for a worker instead of the time left, then the estimate again', async () => {
    const t = await setup(`/jobs/${JOB}`);
    const since = new Date(Date.now() - 5_000).toISOString();
    const resumeBy = new Date(Date.now() + 60_000).toISOString();
    showJob(t, t.server.updateFile(70000, { status: 'processing', percent: 40 }), t.server.loseWorker(since, resumeBy));
    expect(screen.getByTestId('waiting').textContent).toBe(
      `Waiting for a worker since ${formatClock(since)}; expected to resume by ${formatClock(resumeBy)}`,
    );
    expect(screen.queryByText(/estimating|^about |a few seconds/)).toBeNull();
    act(() => t.lastSocket().send(t.server.resumeWorker()));
    expect(screen.queryByTestId('waiting')).toBeNull();
    expect(screen.getByText('Time left')).toBeTruthy();
  });

  it('says “any moment now” once the expected resume time has passed', async () => {
    const t = await setup(`/jobs/${JOB}`);
    const since = new Date(Date.now() - 60_000).toISOString();
    const resumeBy = new Date(Date.now() - 25_000).toISOString();
    t.server.loseWorker(since, resumeBy);
    showJob(t);
    expect(screen.getByTestId('waiting').textContent).toBe(
      `Waiting for a worker since ${formatClock(since)}; expected to resume any moment now`,
    );
  });

  it('shows a rate limit’s message and when to try again, and sends nothing until then', async () => {
    const t = await setup('/');
    t.server.other = (path) => {
      if (path !== '/v1/download/initiate') return undefined;
      t.posted.push(path);
      return rateLimited('rate limit of 10 new jobs a minute reached', 30);
    };
    const field = screen.getByLabelText('File ids');
    fireEvent.change(field, { target: { value: '70000' } });
    fireEvent.submit(field.closest('form')!);
    await act(settle);
    const alert = screen.getByRole('alert');
    expect(alert.textContent).toMatch(/^rate limit of 10 new jobs a minute reached/);
    expect(screen.getByTestId('retry-at').textContent).toMatch(/^You can try again at \d\d:\d\d:\d\d\.$/);
    expect(t.view.container.querySelector('.retry-count')!.textContent).toMatch(/^Try again in (29|30) s$/);
    expect(screen.getByRole('button', { name: 'Start job' }).hasAttribute('disabled')).toBe(true);
    expect(screen.getByRole('button', { name: /^Mixed/ }).hasAttribute('disabled')).toBe(true);
    fireEvent.submit(field.closest('form')!);
    await act(settle);
    expect(t.posted).toHaveLength(1);
  });

  it('keeps today’s plain file links when the server wants no keys', async () => {
    const t = await setup(`/jobs/${JOB}`);
    showJob(t, t.server.updateFile(70000, { status: 'ready', percent: 100, size: 10, download_url: `/v1/download/${JOB}/files/70000` }));
    const link = screen.getByRole('link', { name: /Download file 70000/ });
    let followed = false;
    const note = (e: Event) => {
      followed = !e.defaultPrevented;
      e.preventDefault(); // the test's document has nowhere to go
    };
    window.addEventListener('click', note);
    fireEvent.click(link);
    window.removeEventListener('click', note);
    await act(settle);
    expect(followed).toBe(true);
    expect(link.getAttribute('href')).toBe(`/v1/download/${JOB}/files/70000`);
    expect(t.saves.saved).toEqual([]);
    expect(t.server.requests.some((r) => r.path.includes('/files/'))).toBe(false);
  });
});

describe('the page on a server with API keys', () => {
  it('asks for a key, checks it with the server, and keeps it for the tab only', async () => {
    const t = await setup('/', { auth: 'keys' });
    expect(screen.getByRole('heading', { name: 'API key needed' })).toBeTruthy();
    expect(screen.getByTestId('key-reason').textContent).toBe('This server needs an API key.');
    expect(screen.queryByLabelText('File ids')).toBeNull();
    const field = screen.getByLabelText('API key');
    expect(field.getAttribute('type')).toBe('password');

    await submitKey('  ');
    expect(screen.getByRole('alert').textContent).toBe('Enter an API key.');
    await submitKey('wrong');
    expect(screen.getByRole('alert').textContent).toBe('this API key is not valid');
    expect(field.getAttribute('aria-invalid')).toBe('true');
    expect(t.storage.data.size).toBe(0);

    await submitKey('secret-1');
    expect(screen.getByLabelText('File ids')).toBeTruthy();
    expect(t.storage.getItem(API_KEY_STORAGE_KEY)).toBe('secret-1');
    expect(window.localStorage.length).toBe(0);
    expect(window.location.href).not.toContain('secret-1');
    const me = t.server.requests.filter((r) => r.path === '/v1/me').map((r) => r.authorization);
    expect(me).toEqual([null, 'Bearer wrong', 'Bearer secret-1']);
    expect(screen.getByText('Signed in with key “laptop” (client)')).toBeTruthy();

    fireEvent.click(screen.getByRole('button', { name: 'Sign out' }));
    expect(screen.getByTestId('key-reason').textContent).toBe('You signed out. Enter a key to use this server again.');
    expect(t.storage.data.size).toBe(0);
    expect(screen.queryByText(/Signed in with key/)).toBeNull();
  });

  it('asks again, saying why, when the key is revoked while a job is watched, then carries on live', async () => {
    const t = await setup(`/jobs/${JOB}`, { auth: 'keys', held: 'secret-1' });
    await act(settle);
    showJob(t);
    expect(screen.getByRole('status').textContent).toBe('Live · WebSocket');
    t.server.keys.delete('secret-1');
    act(() => t.lastSocket().drop());
    await act(settle);
    expect(screen.getByTestId('key-reason').textContent).toBe('The server refused the key: this API key is not valid');

    t.server.addKey('secret-2');
    await submitKey('secret-2');
    await act(settle);
    expect(t.lastSocket().path).toMatch(/\?ticket=tk-\d+&seq=\d+&epoch=E1$/);
    showJob(t);
    expect(screen.getByRole('status').textContent).toBe('Live · WebSocket');
  });

  /** downloadWithKey shows file 70000 ready at url, on a server with keys, and clicks its link. */
  async function downloadWithKey(url: string) {
    const t = await setup(`/jobs/${JOB}`, { auth: 'keys', held: 'secret-1' });
    await act(settle);
    showJob(t, t.server.updateFile(70000, { status: 'ready', percent: 100, size: 10, download_url: url }));
    fireEvent.click(screen.getByRole('link', { name: /Download file 70000/ }));
    await act(settle);
    return t;
  }

  it('fetches a file with the key and saves it under the server’s name, revoking the URL after', async () => {
    const t = await downloadWithKey(`/v1/download/${JOB}/files/70000`);
    expect(t.saves.saved.map(({ url, name }) => ({ url, name }))).toEqual([{ url: 'blob:fake/1', name: 'file-70000.bin' }]);
    expect(await t.saves.saved[0]!.blob.text()).toBe('bytes of 70000');
    const fileCall = t.server.requests.find((r) => r.path.endsWith('/files/70000'))!;
    expect(fileCall.authorization).toBe('Bearer secret-1');
    expect(t.saves.revoked).toEqual([]);
    await act(() => t.clock.advance(REVOKE_AFTER_MS));
    expect(t.saves.revoked).toEqual(['blob:fake/1']);
  });

  it('says so in the row when a file is no longer there', async () => {
    const t = await downloadWithKey(`/v1/download/${JOB}/files/70099`);
    const row = t.view.container.querySelector('li.file[data-file-id="70000"]')!;
    expect(within(row as HTMLElement).getByRole('alert').textContent).toBe('This file is no longer available.');
    expect(t.saves.saved).toEqual([]);
  });
});
