import { describe, expect, it } from 'vitest';
import { JobStore } from '../state/jobStore';
import { rateLimited, rig, settle, withAuth, type Rig } from '../test/fakes';
import { JobConnection, type ConnectionOptions } from './connection';

const JOB = 'dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB';
const IDS = [70000, 70001, 70007, 70014];

function setup(options?: Partial<ConnectionOptions>, sse = true) {
  const r = rig(JOB, IDS, options, sse);
  const store = new JobStore(JOB, r.clock.now);
  const conn = new JobConnection(JOB, store, r.deps);
  const states: string[] = [];
  conn.subscribe(() => {
    const s = conn.getStatus();
    states.push(s.channel ? `${s.state}:${s.channel}` : s.state);
  });
  return { ...r, store, conn, states };
}

/** goLive opens the current WebSocket and has it send the snapshot. */
function goLive(r: Rig) {
  const ws = r.lastSocket();
  ws.open();
  ws.send(r.server.snapshotEvent());
  return ws;
}

describe('JobConnection over WebSocket', () => {
  it('goes live on the snapshot and applies events in seq order', async () => {
    const t = setup();
    t.conn.start();
    expect(t.conn.getStatus().state).toBe('connecting');
    expect(t.lastSocket().path).toBe(`/ws/download/${JOB}`);
    const ws = goLive(t);
    expect(t.conn.getStatus()).toMatchObject({ state: 'live', channel: 'websocket' });

    ws.send(t.server.updateFile(70000, { status: 'processing', percent: 40 }));
    ws.send(t.server.updateFile(70000, { status: 'processing', percent: 80 }));
    expect(t.store.getFile(70000)).toMatchObject({ status: 'processing', percent: 80 });
    expect(t.store.getSummary().seq).toBe(2);
    expect(t.store.getSummary().progress.percent).toBe(20);
    expect(t.store.getSummary().status).toBe('processing');
  });

  it('ends on the server’s final state: closes the socket, stops every timer, reads the final snapshot', async () => {
    const t = setup();
    t.conn.start();
    const ws = goLive(t);
    await t.clock.advance(10);
    const before = t.server.statusRequests.length;
    for (const id of IDS) {
      ws.send(t.server.updateFile(id, id % 7 === 0 ? { status: 'ready', percent: 100, size: 10, download_url: `/f/${id}` } : { status: 'unavailable', percent: 100, error: `file ${id} is not available` }));
    }
    ws.send(t.server.finish('completed'));
    expect(t.conn.getStatus().state).toBe('done');
    expect(ws.closedWith).toBe(1000);
    await t.clock.advance(60_000);
    // One reconciliation read, then silence: no polling, no reconnects, no timers left.
    expect(t.server.statusRequests.length).toBe(before + 1);
    expect(t.sockets.length).toBe(1);
    expect(t.clock.pending).toBe(0);
    const s = t.store.getSummary();
    expect(s.status).toBe('completed');
    expect(s.seq).toBe(t.server.job.seq);
    expect(s.progress).toEqual(t.server.job.progress);
    for (const f of t.server.job.files) expect(t.store.getFile(f.file_id)).toEqual(f);
  });

  it('ignores the close 1000 that follows the final event', async () => {
    const t = setup();
    t.conn.start();
    const ws = goLive(t);
    ws.send(t.server.finish('canceled'));
    ws.drop(1000);
    await t.clock.advance(30_000);
    expect(t.conn.getStatus().state).toBe('done');
    expect(t.sockets.length).toBe(1);
    expect(t.streams.length).toBe(0);
  });

  it('stops at an unknown job: error message, close 4404, nothing more', async () => {
    const t = setup();
    t.conn.start();
    const ws = t.lastSocket();
    ws.open();
    ws.send({ type: 'error', error: { code: 'not_found', message: 'job dl_X not found' } });
    ws.drop(4404);
    await t.clock.advance(60_000);
    expect(t.conn.getStatus()).toMatchObject({ state: 'not_found', error: 'job dl_X not found' });
    expect(t.sockets.length).toBe(1);
    expect(t.clock.pending).toBe(0);
  });

  it('reconnects at once, with a little jitter, when the server shuts down (1001)', async () => {
    const t = setup();
    t.conn.start();
    goLive(t).drop(1001);
    expect(t.conn.getStatus().retryAt! - t.clock.now()).toBeLessThanOrEqual(250);
    await t.clock.advance(250);
    expect(t.sockets.length).toBe(2);
    goLive(t);
    expect(t.conn.getStatus()).toMatchObject({ state: 'live', channel: 'websocket' });
  });
});

describe('JobConnection fallback', () => {
  it('falls back to SSE when the WebSocket cannot open, and says so', async () => {
    const t = setup();
    t.conn.start();
    t.lastSocket().drop(); // upgrade refused: error and close before any message
    expect(t.streams.length).toBe(1);
    const es = t.lastStream();
    expect(es.path).toBe(`/v1/download/${JOB}/events`);
    es.emit(t.server.snapshotEvent(), 'snapshot');
    expect(t.conn.getStatus()).toMatchObject({ state: 'live', channel: 'sse' });
    es.emit(t.server.updateFile(70007, { status: 'processing', percent: 50 }), 'file');
    expect(t.store.getFile(70007)?.percent).toBe(50);
    // Unnamed events work the same.
    es.emit(t.server.updateFile(70007, { status: 'processing', percent: 60 }));
    expect(t.store.getFile(70007)?.percent).toBe(60);
  });

  it('ends on an event stream like on a WebSocket, and does not reconnect after `end`', async () => {
    const t = setup();
    t.conn.start();
    t.lastSocket().drop();
    const es = t.lastStream();
    es.emit(t.server.snapshotEvent(), 'snapshot');
    t.server.finish('failed'); // the final event is lost on its way
    es.emit({}, 'end');
    expect(es.closed).toBe(true);
    await t.clock.advance(10);
    // A status read tells the end; nothing reconnects after it.
    expect(t.conn.getStatus().state).toBe('done');
    expect(t.store.getSummary().status).toBe('failed');
    await t.clock.advance(60_000);
    expect(t.streams).toHaveLength(1);
    expect(t.sockets).toHaveLength(1);
  });

  it('stops on an unknown job announced by the event stream', async () => {
    const t = setup();
    t.conn.start();
    t.lastSocket().drop();
    t.lastStream().emit({ type: 'error', error: { code: 'not_found', message: 'job not found' } }, 'error');
    await t.clock.advance(60_000);
    expect(t.conn.getStatus()).toMatchObject({ state: 'not_found', error: 'job not found' });
    expect(t.lastStream().closed).toBe(true);
  });

  it('tries again at once when told the network is back', async () => {
    const t = setup({ backoffBaseMs: 8000 });
    t.conn.start();
    t.lastSocket().drop();
    t.lastStream().fail();
    expect(t.conn.getStatus().retryAt! - t.clock.now()).toBe(6000);
    t.conn.retryNow();
    expect(t.sockets).toHaveLength(2);
    goLive(t);
    expect(t.conn.getStatus().state).toBe('live');
  });

  it('treats a WebSocket that never sends its snapshot as failed', async () => {
    const t = setup({ openTimeoutMs: 3000 });
    t.conn.start();
    t.lastSocket().open(); // the upgrade passed, then nothing: a proxy that buffers
    await t.clock.advance(2999);
    expect(t.streams.length).toBe(0);
    await t.clock.advance(1);
    expect(t.lastSocket().closed).toBe(true);
    expect(t.streams.length).toBe(1);
  });

  it('polls with If-None-Match while no live channel works, backing off with jitter, then goes live again', async () => {
    const t = setup({ backoffBaseMs: 1000, backoffMaxMs: 8000 });
    t.conn.start();
    await settle();
    const retryDelays: number[] = [];
    for (let round = 0; round < 4; round++) {
      t.lastSocket().drop();
      t.lastStream().fail();
      await settle();
      const s = t.conn.getStatus();
      expect(s.state).toBe('polling');
      expect(s.channel).toBe('polling');
      retryDelays.push(s.retryAt! - t.clock.now());
      await t.clock.advance(s.retryAt! - t.clock.now());
      expect(t.sockets.length).toBe(round + 2);
    }
    // Equal jitter with random() = 0.5: three quarters of base·2^n, capped.
    expect(retryDelays).toEqual([750, 1500, 3000, 6000]);
    // Polls repeat the ETag they were given; an unchanged job answers 304.
    const polls = t.server.statusRequests;
    expect(polls.length).toBeGreaterThan(3);
    expect(polls.at(-1)!.ifNoneMatch).toBe('"0"');

    // News while polling reaches the page.
    t.server.updateFile(70000, { status: 'processing', percent: 30 });
    await t.clock.advance(1000);
    expect(t.store.getFile(70000)?.percent).toBe(30);

    // The next attempt succeeds: live again, and polling stops.
    goLive(t);
    expect(t.conn.getStatus()).toMatchObject({ state: 'live', channel: 'websocket', attempt: 0 });
    const n = t.server.statusRequests.length;
    await t.clock.advance(4000);
    expect(t.server.statusRequests.length).toBe(n);
  });

  it('uses random() for jitter', async () => {
    const t = setup({ backoffBaseMs: 1000 });
    let r = 0;
    t.deps.random = () => r;
    t.conn.start();
    t.lastSocket().drop();
    t.lastStream().fail();
    expect(t.conn.getStatus().retryAt! - t.clock.now()).toBe(500);
    await t.clock.advance(500);
    r = 1;
    t.lastSocket().drop();
    t.lastStream().fail();
    expect(t.conn.getStatus().retryAt! - t.clock.now()).toBe(2000);
  });

  it('goes without SSE where EventSource does not exist', async () => {
    const t = setup({}, false);
    t.conn.start();
    t.lastSocket().drop();
    await settle();
    expect(t.conn.getStatus()).toMatchObject({ state: 'polling', channel: 'polling' });
  });

  it('reconnects with backoff when a live WebSocket is reset mid-job, polling meanwhile', async () => {
    const t = setup({ backoffBaseMs: 1000 });
    t.conn.start();
    const ws = goLive(t);
    ws.send(t.server.updateFile(70000, { status: 'processing', percent: 50 }));
    await settle();
    const pollsBefore = t.server.statusRequests.length;
    ws.drop(1006);
    await settle();
    expect(t.server.statusRequests.length).toBe(pollsBefore + 1);
    expect(t.conn.getStatus()).toMatchObject({ state: 'polling', channel: 'polling', attempt: 1 });
    expect(t.streams.length).toBe(0); // a channel that worked is tried again first

    t.server.updateFile(70000, { status: 'ready', percent: 100, size: 5, download_url: '/x' });
    await t.clock.advance(750);
    expect(t.sockets.length).toBe(2);
    expect(t.conn.getStatus()).toMatchObject({ state: 'reconnecting', channel: 'polling' });
    await t.clock.advance(250); // the next poll, while the new socket is still opening
    expect(t.store.getFile(70000)?.status).toBe('ready');
    goLive(t);
    expect(t.conn.getStatus()).toMatchObject({ state: 'live', channel: 'websocket' });
    expect(t.states).toContain('polling:polling');
  });

  it('says offline when polling cannot reach the server either, and recovers', async () => {
    const t = setup({ backoffBaseMs: 1000 });
    t.conn.start();
    goLive(t);
    t.server.down = true;
    t.lastSocket().drop();
    await settle();
    expect(t.conn.getStatus().state).toBe('offline');
    t.server.down = false;
    await t.clock.advance(750);
    goLive(t);
    expect(t.conn.getStatus().state).toBe('live');
  });

  it('drops a live channel that stalls silently while the server moves on', async () => {
    const t = setup({ stallCheckMs: 5000, stallGraceMs: 1000 });
    t.conn.start();
    const ws = goLive(t);
    await t.clock.advance(4000);
    t.server.updateFile(70000, { status: 'processing', percent: 25 }); // never delivered
    await t.clock.advance(1000);
    // The status read shows the news at once.
    expect(t.store.getFile(70000)?.percent).toBe(25);
    expect(ws.closed).toBe(false);
    await t.clock.advance(1000);
    expect(ws.closedWith).toBe(4000);
    expect(t.conn.getStatus().error).toMatch(/stopped delivering/);
    await t.clock.advance(1000);
    expect(t.sockets.length).toBe(2);
  });

  it('keeps a quiet channel when the server has no news', async () => {
    const t = setup({ stallCheckMs: 5000 });
    t.conn.start();
    const ws = goLive(t);
    await t.clock.advance(30_000);
    expect(ws.closed).toBe(false);
    expect(t.conn.getStatus().state).toBe('live');
    expect(t.server.statusRequests.length).toBeGreaterThanOrEqual(6);
  });
});

describe('JobConnection seq rules', () => {
  it('resyncs from a snapshot on a gap, then replays what came meanwhile', async () => {
    const t = setup();
    t.conn.start();
    const ws = goLive(t);
    await settle();
    ws.send(t.server.updateFile(70000, { status: 'processing', percent: 10 })); // seq 1
    t.server.updateFile(70001, { status: 'unavailable', percent: 100, error: 'no' }); // seq 2, lost
    t.server.updateFile(70007, { status: 'processing', percent: 30 }); // seq 3, lost
    const e4 = t.server.updateFile(70014, { status: 'processing', percent: 40 }); // seq 4
    const before = t.server.statusRequests.length;
    ws.send(e4);
    const e5 = t.server.updateFile(70014, { status: 'processing', percent: 45 });
    ws.send(e5); // arrives while the snapshot is on its way
    expect(t.server.statusRequests.length).toBe(before + 1);
    await settle();
    expect(t.store.getSummary().seq).toBe(5);
    expect(t.store.getFile(70001)).toMatchObject({ status: 'unavailable', error: 'no' });
    expect(t.store.getFile(70007)?.percent).toBe(30);
    expect(t.store.getFile(70014)?.percent).toBe(45);
    expect(t.conn.getStatus().state).toBe('live');
  });

  it('never goes backwards: stale snapshots and lower percents are ignored', async () => {
    const t = setup();
    t.conn.start();
    const ws = goLive(t);
    ws.send(t.server.updateFile(70000, { status: 'processing', percent: 60 }));
    const stale = t.server.snapshotEvent();
    ws.send(t.server.updateFile(70000, { status: 'processing', percent: 70 }));
    ws.send(stale); // an older snapshot (seq 1) after seq 2
    expect(t.store.getFile(70000)?.percent).toBe(70);
    // A retried file reports a lower percent: the page keeps the higher one.
    ws.send(t.server.updateFile(70000, { status: 'processing', percent: 20, attempt: 2 }));
    expect(t.store.getFile(70000)).toMatchObject({ percent: 70, attempt: 2 });
    // A duplicate seq is dropped.
    ws.send({ ...t.server.updateFile(70001, { status: 'processing', percent: 5 }), seq: 3 });
    expect(t.store.getSummary().seq).toBe(3);
    expect(t.store.getFile(70001)).toMatchObject({ status: 'queued', percent: 0 });
  });

  it('resumes from a reconnect snapshot without going backwards', async () => {
    const t = setup();
    t.conn.start();
    let ws = goLive(t);
    ws.send(t.server.updateFile(70000, { status: 'processing', percent: 90 }));
    ws.drop();
    await t.clock.advance(1000);
    ws = t.lastSocket();
    ws.open();
    // The new connection's snapshot is older than what the page has (a lagging replica).
    ws.send({ ...t.server.snapshotEvent(), seq: 0, job: { ...t.server.job, seq: 0, files: t.server.job.files.map((f) => ({ ...f, percent: 0, status: 'queued' })) } });
    expect(t.store.getFile(70000)?.percent).toBe(90);
    expect(t.conn.getStatus().state).toBe('live');
  });
});

describe('JobConnection after a failover lost writes the page saw', () => {
  it('comes back saying the seq and epoch it holds, and takes the new epoch’s snapshot whole', async () => {
    const t = setup();
    t.conn.start();
    let ws = goLive(t);
    await settle();
    ws.send(t.server.updateFile(70000, { status: 'processing', percent: 30 })); // seq 1
    const saved = t.server.save();
    ws.send(t.server.updateFile(70000, { status: 'ready', percent: 100, size: 9, download_url: '/f/70000' })); // seq 2, lost
    ws.send(t.server.updateFile(70001, { status: 'processing', percent: 50 })); // seq 3, lost
    ws.drop(); // the failover cuts the connection
    await t.clock.advance(1000);
    ws = t.lastSocket();
    expect(ws.path).toBe(`/ws/download/${JOB}?seq=3&epoch=E1`);
    // The server finds the record below seq 3 and repairs it into a new epoch first.
    t.server.loseWrites(saved, 'E2', 3);
    ws.open();
    ws.send(t.server.snapshotEvent());
    expect(t.store.getSummary()).toMatchObject({ seq: 4, epoch: 'E2' });
    expect(t.store.getFile(70000)).toEqual({ file_id: 70000, status: 'processing', percent: 30 });
    expect(t.store.getFile(70001)).toEqual({ file_id: 70001, status: 'queued', percent: 0 });
    for (const id of IDS) ws.send(t.server.updateFile(id, { status: 'unavailable', percent: 100, error: 'gone' }));
    ws.send(t.server.finish('completed'));
    await settle();
    expect(t.conn.getStatus().state).toBe('done');
    expect(t.store.getSummary()).toMatchObject({ status: 'completed', seq: t.server.job.seq, epoch: 'E2' });
    for (const f of t.server.job.files) expect(t.store.getFile(f.file_id)).toEqual(f);
  });

  it('live through the loss: an event of the new epoch brings the snapshot that begins it', async () => {
    const t = setup();
    t.conn.start();
    const ws = goLive(t);
    await settle();
    const saved = t.server.save();
    ws.send(t.server.updateFile(70000, { status: 'processing', percent: 60 })); // seq 1, lost
    ws.send(t.server.updateFile(70000, { status: 'processing', percent: 80 })); // seq 2, lost
    t.server.loseWrites(saved, 'E2', 2);
    const before = t.server.statusRequests.length;
    ws.send(t.server.updateFile(70001, { status: 'processing', percent: 10 })); // seq 4 of E2
    expect(t.server.statusRequests.length).toBe(before + 1);
    await settle();
    expect(t.store.getSummary()).toMatchObject({ seq: 4, epoch: 'E2' });
    expect(t.store.getFile(70000)).toEqual({ file_id: 70000, status: 'queued', percent: 0 });
    expect(t.store.getFile(70001)).toMatchObject({ status: 'processing', percent: 10 });
    expect(t.conn.getStatus().state).toBe('live');
  });

  it('a stall check that finds another epoch shows it, even at a seq no higher', async () => {
    const t = setup({ stallCheckMs: 1000 });
    t.conn.start();
    const ws = goLive(t);
    await settle();
    const saved = t.server.save();
    ws.send(t.server.updateFile(70000, { status: 'processing', percent: 60 })); // seq 1
    ws.send(t.server.updateFile(70000, { status: 'processing', percent: 80 })); // seq 2
    t.server.loseWrites({ ...saved, seq: -1 }, 'E2', -1); // repaired to seq 0 by someone who saw less
    await t.clock.advance(1000);
    await settle();
    expect(t.store.getSummary()).toMatchObject({ seq: 0, epoch: 'E2' });
    expect(t.store.getFile(70000)).toMatchObject({ percent: 0 });
  });
});

/** keysSetup is setup() on a server that wants keys, the page holding an accepted one. */
async function keysSetup(options?: Partial<ConnectionOptions>) {
  const t = setup(options);
  t.server.addKey('secret-1');
  const k = withAuth(t, 'keys', 'secret-1');
  await k.auth.check();
  return { ...t, ...k };
}

describe('JobConnection on a server with API keys', () => {
  it('asks for a ticket before the WebSocket and passes it in the URL, the key only in a header', async () => {
    const t = await keysSetup();
    t.conn.start();
    expect(t.sockets).toHaveLength(0); // nothing opens before the ticket is there
    await settle();
    expect(t.lastSocket().path).toBe(`/ws/download/${JOB}?ticket=tk-1&seq=0&epoch=E1`);
    goLive(t);
    expect(t.conn.getStatus()).toMatchObject({ state: 'live', channel: 'websocket' });
    const ticketCall = t.server.ticketRequests[0]!;
    expect(ticketCall).toMatchObject({ method: 'POST', path: `/v1/download/${JOB}/ticket`, authorization: 'Bearer secret-1' });
    for (const r of t.server.requests) {
      expect(r.authorization).toBe('Bearer secret-1');
      expect(r.path).not.toContain('secret-1');
    }
  });

  it('asks for a new ticket for every attempt: the SSE fallback and each reconnect', async () => {
    const t = await keysSetup({ backoffBaseMs: 1000 });
    t.conn.start();
    await settle();
    t.lastSocket().drop(); // a used or expired ticket is refused before the upgrade
    await settle();
    expect(t.lastStream().path).toBe(`/v1/download/${JOB}/events?ticket=tk-2&seq=0&epoch=E1`);
    t.lastStream().fail();
    await settle();
    expect(t.conn.getStatus()).toMatchObject({ state: 'polling', channel: 'polling' });
    await t.clock.advance(750);
    expect(t.lastSocket().path).toBe(`/ws/download/${JOB}?ticket=tk-3&seq=0&epoch=E1`);
    goLive(t).drop(1001);
    await t.clock.advance(250);
    expect(t.sockets.map((s) => s.path)).toEqual([
      `/ws/download/${JOB}?ticket=tk-1&seq=0&epoch=E1`,
      `/ws/download/${JOB}?ticket=tk-3&seq=0&epoch=E1`,
      `/ws/download/${JOB}?ticket=tk-4&seq=0&epoch=E1`,
    ]);
    expect(t.server.tickets).toEqual(['tk-1', 'tk-2', 'tk-3', 'tk-4']);
  });

  it('ends on a ticket refused with 404: the job does not exist, or is not this key’s', async () => {
    const t = await keysSetup();
    t.server.vanished = true;
    t.conn.start();
    await t.clock.advance(60_000);
    expect(t.conn.getStatus()).toMatchObject({ state: 'not_found', error: 'job not found' });
    expect(t.store.getSummary().gone).toBe(true);
    expect(t.sockets).toHaveLength(0);
    expect(t.clock.pending).toBe(0);
  });

  it('waits for a key after a 401, asks the page for one, and starts over with the new key', async () => {
    const t = await keysSetup();
    t.conn.start();
    await settle();
    goLive(t);
    t.server.keys.delete('secret-1'); // the key the page holds is revoked
    t.lastSocket().drop(1006);
    await t.clock.advance(60_000);
    expect(t.conn.getStatus()).toMatchObject({ state: 'unauthorized', channel: null, error: 'this API key is not valid' });
    expect(t.auth.getState()).toMatchObject({ phase: 'needs-key', reason: 'The server refused the key: this API key is not valid' });
    expect(t.keys.get()).toBeNull();
    // Nothing hammers a server that refuses: no timers, no more requests.
    const n = t.server.requests.length;
    await t.clock.advance(60_000);
    expect(t.server.requests.length).toBe(n);
    expect(t.clock.pending).toBe(0);

    t.server.addKey('secret-2');
    await t.auth.signIn('secret-2');
    t.conn.resume();
    await settle();
    expect(t.lastSocket().path).toBe(`/ws/download/${JOB}?ticket=tk-2&seq=0&epoch=E1`);
    expect(t.server.ticketRequests.at(-1)!.authorization).toBe('Bearer secret-2');
    goLive(t);
    expect(t.conn.getStatus()).toMatchObject({ state: 'live', error: null });
  });

  it('backs off for Retry-After when the ticket call is rate limited, polling meanwhile', async () => {
    const t = await keysSetup({ backoffBaseMs: 500 });
    let limited = true;
    t.server.other = (path) => (limited && path.endsWith('/ticket') ? rateLimited('too many live connections for this key (cap 20)', 7) : undefined);
    t.conn.start();
    await settle();
    const s = t.conn.getStatus();
    expect(s).toMatchObject({ state: 'polling', channel: 'polling', error: 'too many live connections for this key (cap 20)' });
    expect(s.retryAt! - t.clock.now()).toBe(7000);
    expect(t.sockets).toHaveLength(0);
    expect(t.streams).toHaveLength(0); // no other channel: it would need a ticket too
    limited = false;
    await t.clock.advance(6999);
    expect(t.server.ticketRequests).toHaveLength(1);
    await t.clock.advance(1);
    expect(t.lastSocket().path).toBe(`/ws/download/${JOB}?ticket=tk-1&seq=0&epoch=E1`);
  });

  it('polls no sooner than Retry-After when polling is rate limited', async () => {
    const t = setup({ backoffBaseMs: 60_000, backoffMaxMs: 60_000 });
    let limited = false;
    t.server.other = (path) => (limited && path.startsWith('/v1/download/status/') ? rateLimited('slow down', 12) : undefined);
    t.conn.start();
    t.lastSocket().drop();
    t.lastStream().fail();
    await settle();
    limited = true;
    await t.clock.advance(1000); // the next poll is refused
    const refusedAt = t.server.statusRequests.length;
    expect(t.conn.getStatus()).toMatchObject({ state: 'polling', error: 'slow down' });
    await t.clock.advance(11_999);
    expect(t.server.statusRequests.length).toBe(refusedAt);
    limited = false;
    await t.clock.advance(1);
    expect(t.server.statusRequests.length).toBe(refusedAt + 1);
  });
});

describe('JobConnection on a server without keys', () => {
  it('asks for no ticket once /v1/me says auth is off, and opens at once as before', async () => {
    const t = setup();
    const k = withAuth(t, 'none');
    await k.auth.check();
    t.conn.start();
    expect(t.lastSocket().path).toBe(`/ws/download/${JOB}`);
    t.lastSocket().drop();
    expect(t.lastStream().path).toBe(`/v1/download/${JOB}/events`);
    await settle();
    expect(t.server.ticketRequests).toHaveLength(0);
    expect(t.server.requests.every((r) => r.authorization === null)).toBe(true);
  });

  it('treats a server from before keys (no /v1/me) the same way', async () => {
    const t = setup();
    const k = withAuth(t, 'none');
    t.server.hasMe = false;
    await k.auth.check();
    expect(k.auth.getState()).toMatchObject({ mode: 'none', phase: 'ready' });
    t.conn.start();
    expect(t.lastSocket().path).toBe(`/ws/download/${JOB}`);
  });
});

describe('JobConnection when the job disappears', () => {
  it.each([
    ['a 4404 close', (t: ReturnType<typeof setup>) => t.lastSocket().drop(4404)],
    ['a not_found message', (t: ReturnType<typeof setup>) => t.lastSocket().send({ type: 'error', error: { code: 'not_found', message: 'job not found' } })],
  ])('marks the job gone after %s, though the page had shown it', async (_name, vanish) => {
    const t = setup();
    t.conn.start();
    const ws = goLive(t);
    ws.send(t.server.updateFile(70000, { status: 'processing', percent: 24 }));
    vanish(t);
    await t.clock.advance(60_000);
    expect(t.conn.getStatus().state).toBe('not_found');
    expect(t.store.getSummary()).toMatchObject({ gone: true, synced: true });
    expect(t.clock.pending).toBe(0);
  });

  it('marks the job gone when polling meets a 404', async () => {
    const t = setup();
    t.conn.start();
    t.lastSocket().drop();
    t.lastStream().fail();
    await settle();
    expect(t.store.getSummary().synced).toBe(true);
    t.server.vanished = true;
    await t.clock.advance(1000);
    expect(t.conn.getStatus().state).toBe('not_found');
    expect(t.store.getSummary().gone).toBe(true);
    expect(t.clock.pending).toBe(0);
  });
});

describe('JobConnection while the job waits for a worker', () => {
  it('shows the wait from a job event and clears it when the job resumes', async () => {
    const t = setup();
    t.conn.start();
    const ws = goLive(t);
    ws.send(t.server.updateFile(70000, { status: 'processing', percent: 40 }));
    ws.send(t.server.loseWorker('2026-11-29T22:03:07Z', '2026-11-29T22:03:42Z'));
    expect(t.store.getSummary().waiting).toEqual({ reason: 'worker_lost', since: '2026-11-29T22:03:07Z', resume_by: '2026-11-29T22:03:42Z' });
    expect(t.store.getSummary().status).toBe('processing');
    ws.send(t.server.resumeWorker());
    expect(t.store.getSummary().waiting).toBeNull();
  });

  it('takes the wait from a snapshot, such as a reconnect’s or a poll’s', async () => {
    const t = setup();
    t.conn.start();
    t.server.loseWorker('2026-11-29T22:03:07Z', '2026-11-29T22:03:42Z');
    goLive(t);
    expect(t.store.getSummary().waiting?.since).toBe('2026-11-29T22:03:07Z');
  });
});
