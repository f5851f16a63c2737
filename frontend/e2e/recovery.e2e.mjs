// Recovery as a person sees it: a job whose worker was killed says it waits for a worker
// instead of showing a time left, then resumes; a job that vanishes while watched ends in
// one coherent state on the page and in the recent list.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jobIdFromUrl, launch, newPage, waitForConnection, waitForJobStatus } from './lib/browser.mjs';
import { startRedis } from './lib/redis.mjs';
import { startServer, startWorker, waitFor } from './lib/server.mjs';

let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

describe('recovery', () => {
  it('says a job waits for a worker while its worker is lost, then resumes it', async () => {
    const redis = await startRedis();
    const files = { LONGHAUL_FILE_TIME_MIN: '2s', LONGHAUL_FILE_TIME_MAX: '2s', LONGHAUL_FILE_CONCURRENCY: '1' };
    const api = await startServer({ REDIS_URL: redis.url, LONGHAUL_AUTH: 'none', ...files }, { mode: 'api' });
    const workerEnv = { REDIS_URL: redis.url, LONGHAUL_STORAGE_DIR: api.env.LONGHAUL_STORAGE_DIR, ...files };
    let worker = startWorker(workerEnv);
    const { context, page, problems } = await newPage(browser);
    try {
      await page.goto(api.url + '/');
      await page.locator('button[data-scenario="available"]').click();
      await page.waitForURL(/\/jobs\/dl_[0-9A-Z]{26}$/, { timeout: 10_000 });
      jobIdFromUrl(page.url());
      await waitForConnection(page, 'live', 'websocket');
      await page.locator('li.file[data-status="ready"]').first().waitFor({ timeout: 20_000 });

      await worker.kill();
      const killed = Date.now();
      worker = startWorker(workerEnv);
      const waiting = page.getByTestId('waiting');
      await waiting.waitFor({ timeout: 20_000 });
      assert.match(await waiting.textContent(), /^Waiting for a worker since \d\d:\d\d:\d\d; expected to resume (by \d\d:\d\d:\d\d|any moment now)$/);
      assert.equal(await page.locator('.conn').getAttribute('data-state'), 'live', 'the connection itself is fine');

      await waiting.waitFor({ state: 'detached', timeout: 45_000 });
      const resumed = Date.now() - killed;
      assert.ok(resumed < 45_000, `resumed ${resumed} ms after the kill`);
      assert.equal(await waitForJobStatus(page, ['completed', 'failed', 'canceled'], 60_000), 'completed');
      console.log(`# the page showed the job waiting, then resumed ${Math.round(resumed / 100) / 10} s after its worker was killed`);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
      await worker.stop();
      await api.stop();
      redis.stop();
    }
  });

  it('ends a job that vanished while watched in one coherent state, the recent list too', async () => {
    const slow = { LONGHAUL_FILE_TIME_MIN: '30s', LONGHAUL_FILE_TIME_MAX: '30s' };
    let server = await startServer(slow);
    const { context, page, problems } = await newPage(browser);
    try {
      await page.goto(server.url + '/');
      await page.locator('button[data-scenario="mixed"]').click();
      await page.waitForURL(/\/jobs\/dl_[0-9A-Z]{26}$/, { timeout: 10_000 });
      await waitForConnection(page, 'live', 'websocket');
      await waitFor('some progress', async () => Number(await page.getByRole('progressbar', { name: 'Overall progress' }).getAttribute('aria-valuenow')) > 0, 20_000);

      // The embedded Redis goes with its process: the server comes back empty.
      const { port } = server;
      await server.stop();
      server = await startServer(slow, { port });
      await page.locator('.job-status[data-status="gone"]').waitFor({ timeout: 30_000 });
      assert.match(await page.locator('.job-status[data-status="gone"]').textContent(), /no longer exists/);
      const card = page.locator('section.card.job');
      assert.equal(await card.getByRole('progressbar').count(), 0, 'no progress');
      assert.equal(await page.getByRole('button', { name: 'Cancel job' }).count(), 0, 'no Cancel');
      assert.equal(await page.getByText(/Time left/).count(), 0, 'no time left');
      assert.equal(await page.locator('a.download').count(), 0, 'no download links');
      assert.equal(await page.locator('.recent-state[data-gone="true"]').count(), 1, 'the recent list says it is gone');
      // While the server is down the browser itself logs a refused WebSocket connection
      // (the page's reconnect attempt); that, and the 404 for the gone job, are expected.
      const expected = /404|Failed to load resource|WebSocket connection to '.*' failed: .*ERR_CONNECTION_REFUSED/;
      assert.deepEqual(problems.filter((p) => !expected.test(p)), []);
    } finally {
      await context.close();
      await server.stop();
    }
  });
});
