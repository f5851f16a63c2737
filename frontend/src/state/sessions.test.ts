import { describe, expect, it } from 'vitest';
import { json, rig, settle } from '../test/fakes';
import { RecentJobs, type StorageLike } from './recentJobs';
import { Sessions } from './sessions';

const id = (n: number) => `dl_01JH3W7ZK8Q4X9V2N6M5R0T${String(n).padStart(3, '0')}`;

class MemoryStorage implements StorageLike {
  data = new Map<string, string>();
  getItem = (k: string) => this.data.get(k) ?? null;
  setItem = (k: string, v: string) => void this.data.set(k, v);
  removeItem = (k: string) => void this.data.delete(k);
}

describe('Sessions', () => {
  it('opens a job once and mirrors its state into the recent list', () => {
    const r = rig(id(1), [7, 14]);
    const recent = new RecentJobs(new MemoryStorage());
    const sessions = new Sessions(r.deps, recent);
    const a = sessions.open(id(1), [7, 14]);
    expect(sessions.open(id(1))).toBe(a);
    expect(r.sockets).toHaveLength(1);
    r.lastSocket().send(r.server.snapshotEvent());
    r.lastSocket().send(r.server.updateFile(7, { status: 'ready', percent: 100 }));
    expect(recent.get(id(1))).toMatchObject({ status: 'processing', percent: 50, totalFiles: 2, label: '7, 14' });
  });

  it('lets go of the least recently viewed running jobs beyond its limit', () => {
    const r = rig(id(1), [7]);
    const sessions = new Sessions(r.deps, new RecentJobs(null), 2);
    sessions.open(id(1));
    sessions.open(id(2));
    sessions.open(id(1));
    sessions.open(id(3));
    expect(sessions.peek(id(2))).toBeUndefined();
    expect(sessions.peek(id(1))).toBeDefined();
    expect(r.sockets[1]!.closed).toBe(true);
  });

  it('refreshes unfinished jobs of the recent list and drops expired ones', async () => {
    const r = rig(id(1), [7, 14]);
    r.server.finish('completed');
    r.server.other = (path) =>
      path.endsWith(id(2)) ? json(404, { error: { code: 'not_found', message: 'no job with this id' } }) : undefined;
    const recent = new RecentJobs(new MemoryStorage());
    recent.upsert({ jobId: id(2), status: 'processing', percent: 10 });
    recent.upsert({ jobId: id(1), status: 'processing', percent: 40 });
    recent.upsert({ jobId: id(3), status: 'completed', percent: 100 });
    const sessions = new Sessions(r.deps, recent);
    await sessions.refreshRecent();
    await settle();
    expect(recent.getAll().map((j) => [j.jobId, j.status])).toEqual([
      [id(3), 'completed'],
      [id(1), 'completed'],
    ]);
    // Finished jobs are not asked again.
    expect(r.server.statusRequests.map((q) => q.path).sort()).toEqual([
      `/v1/download/status/${id(1)}`,
      `/v1/download/status/${id(2)}`,
    ]);
    expect(r.sockets).toHaveLength(0);
  });
});
