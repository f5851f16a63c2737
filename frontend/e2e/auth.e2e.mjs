// The page on a server that needs API keys: it asks for a key, keeps it for the tab only,
// watches a job live with one ticket per connection, and downloads with the key.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { jobIdFromUrl, launch, newPage, waitForConnection, waitForJobStatus } from './lib/browser.mjs';
import { makeKey, startRedis } from './lib/redis.mjs';
import { api, startServer } from './lib/server.mjs';

let redis;
let server;
let browser;
let key;

before(async () => {
  redis = await startRedis();
  key = makeKey(redis.url, 'e2e', 'client');
  [server, browser] = await Promise.all([
    startServer({ REDIS_URL: redis.url, LONGHAUL_AUTH: 'keys', LONGHAUL_MAX_FILES: '20' }),
    launch(),
  ]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  redis?.stop();
});

describe('with API keys', () => {
  it('asks for a key, then watches a job live and downloads its files', async () => {
    const { context, page, problems } = await newPage(browser);
    const urls = [];
    page.on('request', (r) => urls.push(r.url()));
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    try {
      await page.goto(server.url + '/');
      await page.getByRole('heading', { name: 'API key needed' }).waitFor({ timeout: 10_000 });
      assert.match(await page.getByTestId('key-reason').textContent(), /needs an API key/);

      await page.getByRole('textbox', { name: 'API key' }).fill(key + 'x');
      await page.getByRole('button', { name: 'Use this key' }).click();
      await page.getByText('the API key is unknown or revoked').waitFor({ timeout: 10_000 });

      await page.getByRole('textbox', { name: 'API key' }).fill(key);
      await page.getByRole('button', { name: 'Use this key' }).click();
      await page.getByText('Signed in with key “e2e” (client)').waitFor({ timeout: 10_000 });
      const stored = await page.evaluate(() => ({
        session: Object.values({ ...sessionStorage }).join('\n'),
        local: Object.values({ ...localStorage }).join('\n'),
      }));
      assert.ok(stored.session.includes(key), 'the key is kept for the tab');
      assert.ok(!stored.local.includes(key), 'the key is never kept beyond the tab');

      await page.locator('button[data-scenario="mixed"]').click();
      await page.waitForURL(/\/jobs\/dl_[0-9A-Z]{26}$/, { timeout: 10_000 });
      const jobId = jobIdFromUrl(page.url());
      await waitForConnection(page, 'live', 'websocket');
      assert.equal(await waitForJobStatus(page, ['completed', 'failed', 'canceled']), 'completed');

      assert.ok(sockets.length >= 1 && sockets.every((u) => /\?ticket=lht_/.test(u)), `WebSocket URLs: ${sockets}`);
      assert.equal(new Set(sockets).size, sockets.length, 'a ticket is used once');
      assert.ok(urls.every((u) => !u.includes(key)), 'the key never sits in a URL');

      const job = await api(server.url, `/v1/download/status/${jobId}`, { headers: { Authorization: `Bearer ${key}` } });
      const ready = job.body.files.find((f) => f.status === 'ready');
      const [download] = await Promise.all([
        page.waitForEvent('download', { timeout: 10_000 }),
        page.getByRole('button', { name: new RegExp(`^Download file ${ready.file_id}\\b`) })
          .or(page.getByRole('link', { name: new RegExp(`^Download file ${ready.file_id}\\b`) }))
          .click(),
      ]);
      assert.equal(statSync(await download.path()).size, ready.size);
      assert.equal(download.suggestedFilename(), `${ready.file_id}.bin`);

      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('heading', { name: 'API key needed' }).waitFor({ timeout: 10_000 });
      assert.deepEqual(problems.filter((p) => !/401/.test(p)), []);
    } finally {
      await context.close();
    }
  });
});
