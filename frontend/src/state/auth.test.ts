import { afterEach, describe, expect, it } from 'vitest';
import { Api } from '../api/client';
import { FakeServer, MemoryStorage } from '../test/fakes';
import { API_KEY_STORAGE_KEY, KeyHolder, tabStorage } from './apiKey';
import { Auth, authTexts } from './auth';

const JOB = 'dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB';

function setup(mode: 'none' | 'keys', stored: string | null = null) {
  const server = new FakeServer(JOB, [7]);
  server.auth = mode;
  const storage = new MemoryStorage();
  if (stored !== null) storage.setItem(API_KEY_STORAGE_KEY, stored);
  const keys = new KeyHolder(storage);
  const api = new Api(server.fetch, keys.get);
  const auth = new Auth(api, keys);
  return { server, storage, keys, api, auth };
}

afterEach(() => {
  window.sessionStorage.clear();
  window.localStorage.clear();
});

describe('Auth', () => {
  it('with auth off, asks for nothing and hands out no tickets', async () => {
    const t = setup('none', 'left-over');
    expect(t.auth.getState().phase).toBe('checking');
    await t.auth.check();
    expect(t.auth.getState()).toEqual({ mode: 'none', phase: 'ready', key: null, reason: null });
    expect(t.auth.ticket(JOB)).toBeNull();
    expect(t.keys.get()).toBeNull(); // nothing to send to a server that wants no key
    expect(t.auth.downloadsNeedKey()).toBe(false);
  });

  it('with a good key held, is ready and hands out a fresh ticket each time', async () => {
    const t = setup('keys', 'secret-1');
    const info = t.server.addKey('secret-1', 'ci runner', 'admin');
    await t.auth.check();
    expect(t.auth.getState()).toEqual({ mode: 'keys', phase: 'ready', key: info, reason: null });
    expect(await t.auth.ticket(JOB)).toBe('tk-1');
    expect(await t.auth.ticket(JOB)).toBe('tk-2');
    expect(t.auth.downloadsNeedKey()).toBe(true);
  });

  it.each([
    ['no key', null, authTexts.needed],
    ['a revoked key', 'revoked', 'The server refused the key: this API key is not valid'],
  ])('with %s, asks for a key and says why', async (_name, stored, reason) => {
    const t = setup('keys', stored);
    await t.auth.check();
    expect(t.auth.getState()).toMatchObject({ mode: 'keys', phase: 'needs-key', reason });
    expect(t.storage.data.size).toBe(0);
    await expect(t.auth.ticket(JOB)).rejects.toMatchObject({ status: 401 });
    expect(t.server.ticketRequests).toHaveLength(0);
  });

  it('checks a key before keeping it, and keeps only a good one', async () => {
    const t = setup('keys');
    t.server.addKey('good');
    await t.auth.check();
    await expect(t.auth.signIn('bad')).rejects.toMatchObject({ message: 'this API key is not valid' });
    expect(t.auth.getState().phase).toBe('needs-key');
    expect(t.keys.get()).toBeNull();
    await t.auth.signIn('  good ');
    expect(t.auth.getState()).toMatchObject({ phase: 'ready', key: { name: 'laptop' } });
    expect(t.storage.getItem(API_KEY_STORAGE_KEY)).toBe('good');
  });

  it('asks again when any call meets a 401, but not for a key it no longer holds', async () => {
    const t = setup('keys', 'one');
    t.server.addKey('one');
    t.server.addKey('two');
    await t.auth.check();
    t.server.keys.delete('one');
    const late = t.api.status(JOB).catch(() => undefined); // in flight with key "one"
    await t.auth.signIn('two');
    await late;
    expect(t.auth.getState().phase).toBe('ready');
    t.server.keys.delete('two');
    await t.api.status(JOB).catch(() => undefined);
    expect(t.auth.getState()).toMatchObject({ phase: 'needs-key', reason: 'The server refused the key: this API key is not valid' });
    expect(t.keys.get()).toBeNull();
  });

  it('forgets the key on sign-out', async () => {
    const t = setup('keys', 'one');
    t.server.addKey('one');
    await t.auth.check();
    t.auth.signOut();
    expect(t.auth.getState()).toMatchObject({ phase: 'needs-key', reason: authTexts.signedOut, key: null });
    expect(t.storage.data.size).toBe(0);
  });

  it('goes on as before keys when the server cannot be asked, and asks again for a ticket', async () => {
    const t = setup('keys', 'one');
    t.server.addKey('one');
    t.server.down = true;
    await t.auth.check();
    expect(t.auth.getState()).toMatchObject({ mode: 'unknown', phase: 'ready' });
    t.server.down = false;
    expect(await t.auth.ticket(JOB)).toBe('tk-1');
    expect(t.auth.getState().mode).toBe('keys');
  });
});

describe('KeyHolder over the tab’s storage', () => {
  it('keeps the key in sessionStorage, never in localStorage', () => {
    const keys = new KeyHolder(tabStorage());
    keys.set('secret-1');
    expect(window.sessionStorage.getItem(API_KEY_STORAGE_KEY)).toBe('secret-1');
    expect(window.localStorage.length).toBe(0);
    expect(new KeyHolder(tabStorage()).get()).toBe('secret-1'); // a reload of the tab keeps it
    keys.clear();
    expect(window.sessionStorage.getItem(API_KEY_STORAGE_KEY)).toBeNull();
  });
});
