import { describe, expect, it } from 'vitest';
import { FakeServer, rateLimited } from '../test/fakes';
import { Api, ApiError, filenameFrom, livePath, retryAfterMs } from './client';

const JOB = 'dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB';

describe('Api', () => {
  it('sends the held key as a Bearer header on every call, and no header without one', async () => {
    const server = new FakeServer(JOB, [7]);
    let key: string | null = 'secret-1';
    const api = new Api(server.fetch, () => key);
    await api.status(JOB);
    key = null;
    await api.status(JOB);
    expect(server.requests.map((r) => r.authorization)).toEqual(['Bearer secret-1', null]);
  });

  it('tells listeners of a 401 with the key it carried, but not while checking a key', async () => {
    const server = new FakeServer(JOB, [7]);
    server.auth = 'keys';
    const api = new Api(server.fetch, () => 'old');
    const heard: [string, string | null][] = [];
    api.onUnauthorized((err, sent) => heard.push([err.message, sent]));
    await expect(api.status(JOB)).rejects.toMatchObject({ status: 401, code: 'unauthorized' });
    await expect(api.me('candidate')).rejects.toMatchObject({ status: 401, message: 'this API key is not valid' });
    expect(heard).toEqual([['this API key is not valid', 'old']]);
    expect(server.requests.at(-1)!.authorization).toBe('Bearer candidate');
  });

  it('reads Retry-After from a 429 along with the contract’s message', async () => {
    const api = new Api(async () => rateLimited('rate limit of 60 requests a minute reached', 17));
    const err = await api.initiate([7], 'k').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 429, code: 'rate_limited', message: 'rate limit of 60 requests a minute reached', retryAfterMs: 17_000 });
  });

  it('reads a produced file with its server-given name', async () => {
    const server = new FakeServer(JOB, [7]);
    server.updateFile(7, { status: 'ready', percent: 100, size: 10, download_url: `/v1/download/${JOB}/files/7` });
    const file = await new Api(server.fetch).file(`/v1/download/${JOB}/files/7`);
    expect(file.filename).toBe('file-7.bin');
    expect(await file.blob.text()).toBe('bytes of 7');
  });

  it('asks for a ticket with a POST', async () => {
    const server = new FakeServer(JOB, [7]);
    const res = await new Api(server.fetch).ticket(JOB);
    expect(res.ticket).toBe('tk-1');
    expect(server.requests[0]).toMatchObject({ method: 'POST', path: `/v1/download/${JOB}/ticket` });
  });

  it('says what a non-contract 401 means', async () => {
    const api = new Api(async () => new Response('no', { status: 401, statusText: 'Unauthorized' }));
    await expect(api.status(JOB)).rejects.toMatchObject({ status: 401, message: 'The server answered 401 Unauthorized.' });
  });
});

describe('livePath', () => {
  it('adds an encoded ticket, or nothing', () => {
    expect(livePath('/ws/download/x', 'a+b/c')).toBe('/ws/download/x?ticket=a%2Bb%2Fc');
    expect(livePath('/ws/download/x', null)).toBe('/ws/download/x');
  });

  it('says what the page holds of the job: its seq, and its epoch when the server sent one', () => {
    expect(livePath('/ws/download/x', 'tk', { seq: 17, epoch: '3H23UMRB' })).toBe(
      '/ws/download/x?ticket=tk&seq=17&epoch=3H23UMRB',
    );
    expect(livePath('/ws/download/x', null, { seq: 0, epoch: null })).toBe('/ws/download/x?seq=0');
  });
});

describe('retryAfterMs', () => {
  const now = Date.parse('2026-11-29T22:00:00Z');
  it.each([
    [{ 'Retry-After': '30' }, 30_000],
    [{ 'Retry-After': 'Sun, 29 Nov 2026 22:00:12 GMT' }, 12_000],
    [{ 'Retry-After': 'Sun, 29 Nov 2026 21:59:00 GMT' }, 0],
    [{ 'RateLimit-Reset': '9' }, 9_000],
    [{ 'Retry-After': 'soon', 'RateLimit-Reset': '4' }, 4_000],
    [{}, null],
  ])('reads %j as %s ms', (headers, want) => {
    expect(retryAfterMs(new Headers(headers), now)).toBe(want);
  });
});

describe('filenameFrom', () => {
  it.each([
    ['attachment; filename="file-70000.bin"', 'file-70000.bin'],
    ['attachment; filename=report.csv', 'report.csv'],
    [`attachment; filename="plain.txt"; filename*=UTF-8''na%C3%AFve%20file.txt`, 'naïve file.txt'],
    ['attachment; filename="a \\"quoted\\" name"', 'a "quoted" name'],
    ['attachment; filename="../../etc/passwd"', 'passwd'],
    ['attachment; filename="..\\\\evil.exe"', 'evil.exe'],
    ['attachment; filename=".."', null],
    ['attachment', null],
    [null, null],
  ])('reads %j as %j', (header, want) => {
    expect(filenameFrom(header)).toBe(want);
  });
});
