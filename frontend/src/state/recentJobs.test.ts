import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../test/fakes';
import { MAX_RECENT, RECENT_STORAGE_KEY, RecentJobs, idsLabel, type StorageLike } from './recentJobs';

const id = (n: number) => `dl_01JH3W7ZK8Q4X9V2N6M5R0T${String(n).padStart(3, '0')}`;

describe('RecentJobs', () => {
  it('keeps jobs across instances, newest first, and updates them in place', () => {
    const storage = new MemoryStorage();
    const a = new RecentJobs(storage);
    a.upsert({ jobId: id(1), totalFiles: 4, label: '70000, 70007 +2' });
    a.upsert({ jobId: id(2), totalFiles: 1, label: '70000' });
    a.upsert({ jobId: id(1), status: 'completed', percent: 100 });
    const b = new RecentJobs(storage);
    expect(b.getAll().map((j) => [j.jobId, j.status])).toEqual([
      [id(2), 'queued'],
      [id(1), 'completed'],
    ]);
  });

  it('keeps at most MAX_RECENT jobs', () => {
    const r = new RecentJobs(new MemoryStorage());
    for (let i = 0; i < MAX_RECENT + 5; i++) r.upsert({ jobId: id(i) });
    expect(r.getAll()).toHaveLength(MAX_RECENT);
    expect(r.getAll()[0]!.jobId).toBe(id(MAX_RECENT + 4));
  });

  it('survives broken or hostile storage contents', () => {
    const storage = new MemoryStorage();
    storage.setItem(RECENT_STORAGE_KEY, '{not json');
    expect(new RecentJobs(storage).getAll()).toEqual([]);
    storage.setItem(RECENT_STORAGE_KEY, JSON.stringify([{ jobId: '../../etc' }, 5, null]));
    expect(new RecentJobs(storage).getAll()).toEqual([]);
    const full: StorageLike = { ...storage, getItem: () => null, setItem: () => { throw new Error('quota'); }, removeItem: () => undefined };
    const r = new RecentJobs(full);
    r.upsert({ jobId: id(1) });
    expect(r.getAll()).toHaveLength(1);
  });

  it('notifies on change, not on a no-op update', () => {
    const r = new RecentJobs(new MemoryStorage());
    let calls = 0;
    r.subscribe(() => calls++);
    r.upsert({ jobId: id(1), percent: 10 });
    r.upsert({ jobId: id(1), percent: 10 });
    r.remove(id(1));
    expect(calls).toBe(2);
  });

  it('labels ids briefly', () => {
    expect(idsLabel([1])).toBe('1');
    expect(idsLabel([1, 2, 3, 4])).toBe('1, 2 +2');
  });

  it('marks a listed job gone across reloads, and never lists a job for being gone', () => {
    const storage = new MemoryStorage();
    const r = new RecentJobs(storage);
    r.upsert({ jobId: id(1), status: 'processing', percent: 24 });
    r.markGone(id(1));
    r.markGone(id(2));
    expect(new RecentJobs(storage).getAll()).toMatchObject([{ jobId: id(1), gone: true }]);
  });
});
