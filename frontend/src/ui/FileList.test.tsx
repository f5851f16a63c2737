import { act, cleanup, render, within } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { JobStore } from '../state/jobStore';
import { FakeServer } from '../test/fakes';
import { RenderProbe } from './context';
import { FileList } from './FileList';

afterEach(cleanup);

const JOB = 'dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB';

function setup(n: number) {
  const ids = Array.from({ length: n }, (_, i) => 100000 + i);
  const server = new FakeServer(JOB, ids);
  const store = new JobStore(JOB);
  store.applySnapshot(server.job);
  const renders = new Map<number, number>();
  const probe = (id: number) => renders.set(id, (renders.get(id) ?? 0) + 1);
  const view = render(
    <RenderProbe.Provider value={probe}>
      <FileList store={store} />
    </RenderProbe.Provider>,
  );
  return { ids, server, store, renders, view };
}

// Rendering 1,000 rows in a simulated DOM takes seconds on a busy two-core machine.
describe('FileList with 1,000 files', { timeout: 60_000 }, () => {
  it('renders one row per file', () => {
    const { ids, renders, view } = setup(1000);
    expect(view.container.querySelectorAll('li.file')).toHaveLength(1000);
    expect(renders.size).toBe(1000);
    expect([...renders.values()].every((n) => n === 1)).toBe(true);
    expect(ids).toHaveLength(1000);
  });

  it('re-renders exactly one row for one file event', () => {
    const { server, store, renders, view } = setup(1000);
    renders.clear();
    act(() => {
      store.applyEvent(server.updateFile(100500, { status: 'processing', percent: 42 }));
    });
    expect([...renders.entries()]).toEqual([[100500, 1]]);
    const row = view.container.querySelector('li.file[data-file-id="100500"]')!;
    expect(row.getAttribute('data-status')).toBe('processing');
    expect(row.querySelector('[role="progressbar"]')!.getAttribute('aria-valuenow')).toBe('42');

    renders.clear();
    act(() => {
      for (let i = 0; i < 20; i++) {
        store.applyEvent(server.updateFile(100001 + i * 50, { status: 'processing', percent: 10 }));
      }
    });
    expect(renders.size).toBe(20);
  });

  it('re-renders no row for a job event', () => {
    const { server, store, renders } = setup(1000);
    renders.clear();
    act(() => {
      store.applyEvent(server.finish('canceled'));
    });
    expect(renders.size).toBe(0);
  });

  it('shows the error and the download link a row needs', () => {
    const { server, store, view } = setup(3);
    act(() => {
      store.applyEvent(server.updateFile(100000, { status: 'ready', percent: 100, size: 2048, download_url: `/v1/download/${JOB}/files/100000` }));
      store.applyEvent(server.updateFile(100001, { status: 'failed', percent: 100, error: 'source timed out 3 times' }));
    });
    const link = view.getByRole('link', { name: 'Download file 100000, 2.0 KiB' });
    expect(link.getAttribute('href')).toBe(`/v1/download/${JOB}/files/100000`);
    expect(view.getByText('source timed out 3 times')).toBeTruthy();
    expect(view.container.querySelectorAll('a.download')).toHaveLength(1);
  });

  it('shows a file that was not produced as what it is: its outcome in words, no percent, no full bar', () => {
    const { server, store, view } = setup(4);
    act(() => {
      store.applyEvent(server.updateFile(100000, { status: 'ready', percent: 100, size: 2048, download_url: `/v1/download/${JOB}/files/100000` }));
      store.applyEvent(server.updateFile(100001, { status: 'unavailable', percent: 100, error: 'file 100001 is not available' }));
      store.applyEvent(server.updateFile(100002, { status: 'failed', percent: 100, error: 'source timed out 3 times' }));
      store.applyEvent(server.updateFile(100003, { status: 'canceled', percent: 100 }));
    });
    const row = (id: number) => view.container.querySelector<HTMLElement>(`li.file[data-file-id="${id}"]`)!;
    for (const [id, word] of [[100001, 'Unavailable'], [100002, 'Failed'], [100003, 'Canceled']] as const) {
      const bar = within(row(id)).getByRole('progressbar', { name: `File ${id}` });
      expect(bar.textContent).toBe(word);
      expect(bar.getAttribute('aria-valuetext')).toBe(word);
      expect(bar.getAttribute('aria-valuenow')).toBe('100'); // the server's percent, for tools that read it
      expect(row(id).textContent).not.toContain('%');
      expect(row(id).querySelector('.bar-fill')).toBeNull();
    }
    // A produced file still reads as done.
    expect(row(100000).textContent).toContain('100%');
    expect(row(100000).querySelector('.bar-fill')).not.toBeNull();
  });
});
