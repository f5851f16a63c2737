import { describe, expect, it } from 'vitest';
import { json, MemoryStorage, rig, settle, withAuth } from '../test/fakes';
import { authTexts } from './auth';
import { RecentJobs } from './recentJobs';
import { followAuth, Sessions } from './sessions';

const id = (n: number) => `dl_01JH3W7ZK8Q4X9V2N6M5R0T${String(n).padStart(3, '0')}`;

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

  it('marks a watched job that disappears as gone in the recent list, and leaves it so', async () => {
    const r = rig(id(1), [7, 14]);
    const recent = new RecentJobs(new MemoryStorage());
    const sessions = new Sessions(r.deps, recent);
    sessions.open(id(1));
    r.lastSocket().send(r.server.snapshotEvent());
    r.lastSocket().send(r.server.updateFile(7, { status: 'processing', percent: 48 }));
    expect(recent.get(id(1))).toMatchObject({ status: 'processing', percent: 24 });
    r.lastSocket().drop(4404);
    expect(recent.get(id(1))).toMatchObject({ gone: true });
    // The next visit's refresh does not ask about it again, nor drop it.
    const before = r.server.requests.length;
    await new Sessions(r.deps, recent).refreshRecent();
    expect(r.server.requests.length).toBe(before);
    expect(recent.get(id(1))?.gone).toBe(true);
  });

  it('does not add a job it never listed just because it is gone', () => {
    const r = rig(id(1), [7]);
    const recent = new RecentJobs(new MemoryStorage());
    new Sessions(r.deps, recent).open(id(1));
    r.lastSocket().drop(4404);
    expect(recent.getAll()).toEqual([]);
  });

  it('pauses every watched job while the page needs a key, and resumes them with the new one', async () => {
    const r = rig(id(1), [7, 14]);
    r.server.addKey('one');
    const k = withAuth(r, 'keys', 'one');
    await k.auth.check();
    const sessions = new Sessions(r.deps, new RecentJobs(null));
    followAuth(k.auth, sessions);
    const s = sessions.open(id(1));
    await settle();
    r.lastSocket().send(r.server.snapshotEvent());
    expect(s.connection.getStatus().state).toBe('live');
    k.auth.signOut();
    expect(s.connection.getStatus()).toMatchObject({ state: 'unauthorized', error: authTexts.signedOut });
    expect(r.lastSocket().closed).toBe(true); // signed out means no more news for the old key
    await k.auth.signIn('one');
    await settle();
    r.lastSocket().send(r.server.snapshotEvent());
    expect(s.connection.getStatus().state).toBe('live');
    expect(r.sockets.map((w) => w.path.split('?')[1])).toEqual(['ticket=tk-1&seq=0&epoch=E1', 'ticket=tk-2&seq=0&epoch=E1']);
  });
});
