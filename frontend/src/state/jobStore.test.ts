import { describe, expect, it, vi } from 'vitest';
import type { FileEvent, JobSnapshot } from '../api/types';
import { FakeServer } from '../test/fakes';
import { JobStore } from './jobStore';

const JOB = 'dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB';

function synced(ids = [1, 2, 3, 4]) {
  const server = new FakeServer(JOB, ids);
  const store = new JobStore(JOB, () => 5000);
  store.applySnapshot(server.job);
  return { server, store };
}

describe('JobStore', () => {
  it('seeds a new job as all files queued, then takes the first snapshot', () => {
    const store = new JobStore(JOB, () => 0);
    store.seed([7, 14]);
    expect(store.getSummary()).toMatchObject({ synced: false, seq: -1, fileIds: [7, 14] });
    expect(store.getFile(7)).toEqual({ file_id: 7, status: 'queued', percent: 0 });
    const server = new FakeServer(JOB, [7, 14]);
    expect(store.applySnapshot(server.job)).toBe(true);
    expect(store.getSummary()).toMatchObject({ synced: true, seq: 0 });
  });

  it('applies only the event that follows its seq', () => {
    const { server, store } = synced();
    const e1 = server.updateFile(1, { status: 'processing', percent: 10 });
    const e2 = server.updateFile(1, { status: 'processing', percent: 20 });
    expect(store.applyEvent(e2)).toBe('gap');
    expect(store.getFile(1)?.percent).toBe(0);
    expect(store.applyEvent(e1)).toBe('applied');
    expect(store.applyEvent(e1)).toBe('stale');
    expect(store.applyEvent(e2)).toBe('applied');
    expect(store.getSummary().seq).toBe(2);
  });

  it('takes a snapshot of another epoch whole, even at a lower seq: the record lost writes the page saw', () => {
    const { server, store } = synced([1, 2]);
    store.applyEvent(server.updateFile(1, { status: 'processing', percent: 30 }));
    const saved = server.save();
    store.applyEvent(server.updateFile(1, { status: 'ready', percent: 100, size: 9, download_url: '/f/1' }));
    store.applyEvent(server.updateFile(2, { status: 'processing', percent: 80 }));
    expect(store.getSummary().progress).toMatchObject({ percent: 90, files_ready: 1 });
    // A failover lost the last two writes; the repaired record goes on in epoch E2 below seq 3.
    server.loseWrites(saved, 'E2', 1);
    expect(store.applySnapshot(server.job)).toBe(true);
    expect(store.getSummary()).toMatchObject({ seq: 2, epoch: 'E2', status: 'processing' });
    expect(store.getSummary().progress).toMatchObject({ percent: 15, files_ready: 0, files_done: 0 });
    expect(store.getFile(1)).toEqual({ file_id: 1, status: 'processing', percent: 30 });
    expect(store.getFile(2)).toEqual({ file_id: 2, status: 'queued', percent: 0 });
    // Within the new epoch the usual rules hold again.
    expect(store.applyEvent(server.updateFile(2, { status: 'processing', percent: 10 }))).toBe('applied');
    expect(store.applySnapshot({ ...server.job, seq: 1 })).toBe(false);
  });

  it('reports a gap for an event of another epoch, whatever its seq', () => {
    const { server, store } = synced([1]);
    for (const seq of [0, 1, 5]) {
      const ev = { ...server.updateFile(1, { status: 'ready', percent: 100 }), seq, epoch: 'E2' };
      expect(store.applyEvent(ev)).toBe('gap');
    }
    expect(store.getFile(1)).toMatchObject({ status: 'queued' });
  });

  it('reports a gap for any event before the first snapshot', () => {
    const store = new JobStore(JOB);
    store.seed([1]);
    const ev: FileEvent = { type: 'file', seq: 0, job_id: JOB, file_id: 1, status: 'processing', percent: 5 };
    expect(store.applyEvent(ev)).toBe('gap');
  });

  it('keeps progress from going backwards and finished files finished', () => {
    const { server, store } = synced();
    store.applyEvent(server.updateFile(1, { status: 'processing', percent: 80 }));
    store.applyEvent(server.updateFile(1, { status: 'processing', percent: 30, attempt: 2 }));
    expect(store.getFile(1)).toMatchObject({ percent: 80, attempt: 2 });
    store.applyEvent(server.updateFile(2, { status: 'ready', percent: 100, size: 9, download_url: '/d/2' }));
    store.applyEvent(server.updateFile(2, { status: 'processing', percent: 50 }));
    expect(store.getFile(2)).toMatchObject({ status: 'ready', percent: 100, download_url: '/d/2' });
    expect(store.getSummary().progress.percent).toBe(45);
  });

  it('ignores an older snapshot and takes a newer one', () => {
    const { server, store } = synced();
    const old = structuredClone(server.job);
    store.applyEvent(server.updateFile(3, { status: 'processing', percent: 50 }));
    expect(store.applySnapshot(old)).toBe(false);
    expect(store.getFile(3)?.percent).toBe(50);
    server.updateFile(3, { status: 'unavailable', percent: 100, error: 'file 3 is not available' });
    expect(store.applySnapshot(server.job)).toBe(true);
    expect(store.getFile(3)).toEqual({ file_id: 3, status: 'unavailable', percent: 100, error: 'file 3 is not available' });
  });

  it('counts files by status as events arrive', () => {
    const { server, store } = synced();
    store.applyEvent(server.updateFile(1, { status: 'ready', percent: 100 }));
    store.applyEvent(server.updateFile(2, { status: 'unavailable', percent: 100 }));
    store.applyEvent(server.updateFile(3, { status: 'failed', percent: 100, error: 'boom' }));
    expect(store.getSummary().progress).toEqual({
      percent: 75,
      files_total: 4,
      files_done: 3,
      files_ready: 1,
      files_unavailable: 1,
      files_failed: 1,
    });
  });

  it('never leaves a terminal job status', () => {
    const { server, store } = synced();
    store.applyEvent(server.finish('canceled'));
    const later: JobSnapshot = { ...server.job, seq: server.job.seq + 1, status: 'processing' };
    store.applySnapshot(later);
    expect(store.getSummary().status).toBe('canceled');
  });

  it('tells a file’s subscribers only about that file', () => {
    const { server, store } = synced();
    const one = vi.fn();
    const two = vi.fn();
    const summary = vi.fn();
    store.subscribeFile(1, one);
    store.subscribeFile(2, two);
    store.subscribe(summary);
    store.applyEvent(server.updateFile(1, { status: 'processing', percent: 10 }));
    expect(one).toHaveBeenCalledTimes(1);
    expect(two).not.toHaveBeenCalled();
    expect(summary).toHaveBeenCalledTimes(1);
    // A snapshot that changes nothing for file 2 leaves it alone too.
    server.updateFile(1, { status: 'processing', percent: 20 });
    store.applySnapshot(server.job);
    expect(one).toHaveBeenCalledTimes(2);
    expect(two).not.toHaveBeenCalled();
  });

  it('keeps the same file id list while the set of files is unchanged', () => {
    const { server, store } = synced();
    const ids = store.getSummary().fileIds;
    store.applyEvent(server.updateFile(4, { status: 'processing', percent: 1 }));
    store.applySnapshot(server.job);
    expect(store.getSummary().fileIds).toBe(ids);
  });

  it('shows a wait for a worker from snapshots and events, and treats the field as optional', () => {
    const { server, store } = synced();
    const w = { reason: 'worker_lost', since: '2026-11-29T22:03:07Z', resume_by: '2026-11-29T22:03:42Z' };
    store.applySnapshot({ ...server.job, status: 'processing', waiting: w });
    expect(store.getSummary().waiting).toEqual(w);
    store.applySnapshot({ ...server.job, status: 'processing' }); // an old server never sends it
    expect(store.getSummary().waiting).toBeNull();
    store.applyEvent(server.loseWorker(w.since, w.resume_by));
    expect(store.getSummary().waiting).toEqual(w);
    const { waiting: _omitted, ...oldEvent } = server.resumeWorker();
    store.applyEvent(oldEvent);
    expect(store.getSummary().waiting).toBeNull();
  });

  it('never shows a finished job as waiting', () => {
    const { server, store } = synced();
    const w = { reason: 'worker_lost', since: '2026-11-29T22:03:07Z', resume_by: '2026-11-29T22:03:42Z' };
    store.applySnapshot({ ...server.job, status: 'failed', waiting: w });
    expect(store.getSummary().waiting).toBeNull();
  });

  it('keeps a job gone: no later snapshot or event brings it back', () => {
    const { server, store } = synced();
    store.applyEvent(server.loseWorker('2026-11-29T22:03:07Z', '2026-11-29T22:03:42Z'));
    const summary = vi.fn();
    store.subscribe(summary);
    store.markGone();
    store.markGone();
    expect(summary).toHaveBeenCalledTimes(1);
    expect(store.getSummary()).toMatchObject({ gone: true, waiting: null });
    expect(store.applySnapshot({ ...server.job, seq: 99 })).toBe(false);
    expect(store.applyEvent(server.updateFile(1, { status: 'processing', percent: 50 }))).toBe('stale');
    expect(store.getFile(1)?.percent).toBe(0);
  });
});
