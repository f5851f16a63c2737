// A job's page survives a reload and a shared link, several jobs run at once from the recent
// list, and a running job can be canceled.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  backwardsMoves,
  jobIdFromUrl,
  launch,
  newPage,
  pageFiles,
  screenshot,
  waitForConnection,
  waitForJobStatus,
} from './lib/browser.mjs';
import { assertDownloads, assertMatchesServer } from './lib/checks.mjs';
import { api, startServer, waitFor } from './lib/server.mjs';

// 10 available files, two at a time, 0.8-1.2 s each: about 5 s of running job.
const IDS = Array.from({ length: 10 }, (_, i) => 70070 + 7 * i);

let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([
    startServer({ LONGHAUL_FILE_TIME_MIN: '800ms', LONGHAUL_FILE_TIME_MAX: '1200ms', LONGHAUL_FILE_CONCURRENCY: '2' }),
    launch(),
  ]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function startJob(page, ids = IDS) {
  await page.getByLabel('File ids').fill(ids.join(', '));
  await page.getByRole('button', { name: 'Start job' }).click();
  await page.waitForURL(/\/jobs\//, { timeout: 10_000 });
  return jobIdFromUrl(page.url());
}

function overallPercent(page) {
  return page
    .getByRole('progressbar', { name: 'Overall progress' })
    .getAttribute('aria-valuenow')
    .then(Number);
}

describe('jobs', () => {
  it('a reload mid-job comes back to the job’s live state and completes; a shared link shows it too', async () => {
    const { context, page, problems } = await newPage(browser);
    try {
      await page.goto(server.url + '/');
      const jobId = await startJob(page);
      await waitForConnection(page, 'live', 'websocket');
      await waitFor('some progress', async () => (await overallPercent(page)) >= 20, 20_000);
      const before = await overallPercent(page);
      const { body: status } = await api(server.url, `/v1/download/status/${jobId}`);
      assert.notEqual(status.status, 'completed', 'the reload happens mid-job');

      await page.reload();
      assert.equal(jobIdFromUrl(page.url()), jobId);
      await waitForConnection(page, 'live', 'websocket');
      const after = await overallPercent(page);
      assert.ok(after >= before, `after a reload the page shows ${after}%, before it showed ${before}%`);
      // The recent list remembers the job across the reload.
      await page.getByRole('navigation', { name: 'Recent jobs' }).getByRole('link', { name: new RegExp(jobId) }).waitFor();

      // Another browser, given the link, sees the same job.
      const other = await newPage(browser);
      try {
        await other.page.goto(`${server.url}/jobs/${jobId}`);
        await waitForJobStatus(other.page, 'completed');
        await assertMatchesServer(other.page, server.url, jobId);
      } finally {
        await other.context.close();
      }

      await waitForJobStatus(page, 'completed');
      const job = await assertMatchesServer(page, server.url, jobId);
      assert.equal(await assertDownloads(server.url, job), IDS.length);
      assert.deepEqual(await backwardsMoves(page), []);
      assert.deepEqual(problems, []);
      await screenshot(page, 'reload-completed');
    } finally {
      await context.close();
    }
  });

  it('cancels a running job: unfinished files end canceled, ready ones stay downloadable', async () => {
    const { context, page, problems } = await newPage(browser);
    try {
      await page.goto(server.url + '/');
      const jobId = await startJob(page);
      await waitForConnection(page, 'live', 'websocket');
      await waitFor('a ready file', async () => (await pageFiles(page)).some((f) => f.status === 'ready'), 20_000);
      await page.getByRole('button', { name: 'Cancel job' }).click();
      assert.equal(await waitForJobStatus(page, ['completed', 'failed', 'canceled']), 'canceled');
      await waitForConnection(page, 'done');
      assert.equal(await page.getByRole('button', { name: 'Cancel job' }).count(), 0);
      const job = await assertMatchesServer(page, server.url, jobId);
      const files = await pageFiles(page);
      assert.ok(files.some((f) => f.status === 'canceled'), 'some files were canceled');
      assert.ok(files.every((f) => f.status === 'ready' || f.status === 'canceled'), JSON.stringify(files));
      assert.ok((await assertDownloads(server.url, job)) >= 1);
      // Cancelling again is refused by the server, and the page is not confused by it.
      const again = await api(server.url, `/v1/download/${jobId}`, { method: 'DELETE' });
      assert.equal(again.status, 409);
      assert.deepEqual(problems, []);
      await screenshot(page, 'cancel-final');
    } finally {
      await context.close();
    }
  });

  it('runs several jobs at once and switches between them from the recent list', async () => {
    const { context, page, problems } = await newPage(browser);
    try {
      await page.goto(server.url + '/');
      const first = await startJob(page, IDS.slice(0, 6));
      await waitForConnection(page, 'live', 'websocket');
      await page.getByRole('link', { name: 'New job', exact: true }).first().click();
      const second = await startJob(page, [70000, 70001, 70007, 70008]);
      assert.notEqual(first, second);
      const recent = page.getByRole('navigation', { name: 'Recent jobs' });
      assert.equal(await recent.getByRole('listitem').count(), 2);
      await waitForJobStatus(page, 'completed');

      // The first job kept running in the background; its entry follows it live.
      await recent.getByRole('link', { name: new RegExp(first) }).click();
      await page.waitForURL(new RegExp(`/jobs/${first}$`));
      await waitForJobStatus(page, 'completed');
      await assertMatchesServer(page, server.url, first);
      await page.goBack();
      await page.waitForURL(new RegExp(`/jobs/${second}$`));
      await assertMatchesServer(page, server.url, second);
      assert.deepEqual(problems, []);
      await screenshot(page, 'several-jobs');
    } finally {
      await context.close();
    }
  });
});
