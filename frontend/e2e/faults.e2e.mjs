// Live channels broken the way networks break them, through a proxy in front of the server:
// the page falls back, says so, goes back to live when it can, and still ends on the server's
// final state.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  backwardsMoves,
  connLog,
  jobIdFromUrl,
  launch,
  newPage,
  screenshot,
  waitForConnection,
  waitForJobStatus,
} from './lib/browser.mjs';
import { assertDownloads, assertMatchesServer } from './lib/checks.mjs';
import { startFaultProxy } from './lib/faultProxy.mjs';
import { startServer, waitFor } from './lib/server.mjs';

// Long enough that faults land mid-job: 16 available files, two at a time, 1-1.6 s each.
const IDS = Array.from({ length: 16 }, (_, i) => 70000 + 7 * i);

let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([
    startServer({
      LONGHAUL_FILE_TIME_MIN: '1s',
      LONGHAUL_FILE_TIME_MAX: '1600ms',
      LONGHAUL_FILE_CONCURRENCY: '2',
    }),
    launch(),
  ]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** withProxy gives a test a fresh proxy and page, and cleans both up. */
async function withProxy(fn) {
  const proxy = await startFaultProxy(server.port);
  const { context, page, problems } = await newPage(browser);
  try {
    await fn({ proxy, page, problems });
  } finally {
    await context.close();
    await proxy.close();
  }
}

async function startJob(page, proxy) {
  await page.goto(proxy.url + '/');
  await page.getByLabel('File ids').fill(IDS.join(' '));
  await page.getByRole('button', { name: 'Start job' }).click();
  await page.waitForURL(/\/jobs\//, { timeout: 10_000 });
  return jobIdFromUrl(page.url());
}

async function filesDone(page) {
  const text = await page.getByTestId('files-done').textContent();
  return Number(text.split(' of ')[0]);
}

async function finishAndCheck(page, jobId, name) {
  assert.equal(await waitForJobStatus(page, ['completed', 'failed', 'canceled'], 60_000), 'completed');
  await waitForConnection(page, 'done');
  const job = await assertMatchesServer(page, server.url, jobId);
  assert.equal(await assertDownloads(server.url, job), IDS.length);
  assert.deepEqual(await backwardsMoves(page), []);
  await screenshot(page, name);
}

describe('broken live channels', () => {
  it('upgrade refused: falls back to SSE, says so, completes', async () => {
    await withProxy(async ({ proxy, page }) => {
      proxy.mode.ws = 'refuse';
      const jobId = await startJob(page, proxy);
      await waitForConnection(page, 'live', 'sse');
      assert.equal(await page.getByRole('status').first().textContent(), 'Live · SSE');
      assert.ok(proxy.stats.wsRefused >= 1);
      await finishAndCheck(page, jobId, 'fault-upgrade-refused');
      const seen = await connLog(page);
      assert.ok(!seen.includes('live:websocket'), `never live over WebSocket: ${seen.join(' → ')}`);
    });
  });

  it('every live channel refused: polls, says so, goes live when it can, completes', async () => {
    await withProxy(async ({ proxy, page }) => {
      proxy.mode.ws = 'refuse';
      proxy.mode.sse = 'refuse';
      const jobId = await startJob(page, proxy);
      await waitForConnection(page, 'polling', 'polling');
      assert.match(await page.locator('.conn-retry').textContent(), /live again in \d+ s|going live/);
      // Progress still arrives by polling.
      const overall = page.getByRole('progressbar', { name: 'Overall progress' });
      await waitFor('progress while polling', async () => Number(await overall.getAttribute('aria-valuenow')) > 0, 20_000);
      await screenshot(page, 'fault-polling');
      proxy.mode.ws = 'pass';
      proxy.mode.sse = 'pass';
      // Either live channel will do: a WebSocket attempt that set out just before the proxy
      // let upgrades through fails, and the ladder's next step, SSE, goes live first.
      await waitForConnection(page, 'live', undefined, 20_000);
      assert.ok(await filesDone(page) < IDS.length, 'live again before the job ended');
      await finishAndCheck(page, jobId, 'fault-polling-then-live');
    });
  });

  it('connection reset mid-job: reconnects with backoff, polling meanwhile, back to live, completes', async () => {
    await withProxy(async ({ proxy, page }) => {
      const jobId = await startJob(page, proxy);
      await waitForConnection(page, 'live', 'websocket');
      await waitFor('two files done', async () => (await filesDone(page)) >= 2, 20_000);
      const before = (await connLog(page)).length;
      proxy.resetWebSockets();
      assert.ok(proxy.stats.wsReset >= 1);
      await waitFor('a new live WebSocket', async () => {
        const seen = (await connLog(page)).slice(before);
        return seen.length >= 2 && seen.at(-1) === 'live:websocket';
      }, 15_000);
      const seen = (await connLog(page)).slice(before);
      assert.ok(seen[0] !== 'live:websocket' && /^(polling|reconnecting|offline)/.test(seen[0]), `after the reset: ${seen.join(' → ')}`);
      assert.ok(proxy.stats.wsUpgrades >= 2);
      await finishAndCheck(page, jobId, 'fault-reset');
    });
  });

  it('connection silently stalled: notices, drops it, back to live, completes', async () => {
    await withProxy(async ({ proxy, page }) => {
      const jobId = await startJob(page, proxy);
      await waitForConnection(page, 'live', 'websocket');
      await waitFor('a file done', async () => (await filesDone(page)) >= 1, 20_000);
      const before = (await connLog(page)).length;
      const stalledAt = Date.now();
      proxy.stallWebSockets();
      // The status endpoint is asked after 5 s of silence; the socket gets 1.5 s more.
      await waitFor('the stalled socket replaced', async () => {
        const seen = (await connLog(page)).slice(before);
        return seen.length >= 2 && seen.at(-1) === 'live:websocket';
      }, 20_000);
      const noticedIn = Date.now() - stalledAt;
      const seen = (await connLog(page)).slice(before);
      assert.ok(/^(polling|reconnecting)/.test(seen[0]), `after the stall: ${seen.join(' → ')}`);
      assert.ok(proxy.stats.wsUpgrades >= 2);
      console.log(`# stall noticed and replaced in ${noticedIn} ms`);
      await finishAndCheck(page, jobId, 'fault-stalled');
    });
  });
});
