// The demo's scenarios through the page, typed input and its validation, errors in words,
// and the page at a phone's width in the dark scheme.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  backwardsMoves,
  connLog,
  jobIdFromUrl,
  launch,
  newPage,
  pageFiles,
  screenshot,
  waitForJobStatus,
} from './lib/browser.mjs';
import { assertDownloads, assertMatchesServer, contrastProblems } from './lib/checks.mjs';
import { api, startServer } from './lib/server.mjs';

let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([startServer({ LONGHAUL_MAX_FILES: '20' }), launch()]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const scenarios = [
  { key: 'available', ids: [70000, 70007, 70014, 70021], job: 'completed' },
  { key: 'unavailable', ids: [70001, 70002, 70003, 70004], job: 'failed' },
  { key: 'mixed', ids: [70000, 70001, 70007, 70008], job: 'completed' },
];

describe('demo scenarios', () => {
  for (const sc of scenarios) {
    it(`${sc.key}: one click, live progress, the right final state and downloadable files`, async () => {
      const { context, page, problems } = await newPage(browser);
      try {
        await page.goto(server.url + '/');
        await page.locator(`button[data-scenario="${sc.key}"]`).click();
        await page.waitForURL(/\/jobs\/dl_[0-9A-Z]{26}$/, { timeout: 10_000 });
        const jobId = jobIdFromUrl(page.url());
        // Seen at once: the overall bar and one row per file, before anything finished.
        await page.getByRole('progressbar', { name: 'Overall progress' }).waitFor({ timeout: 2000 });
        assert.deepEqual((await pageFiles(page)).map((f) => f.file_id), sc.ids);

        assert.equal(await waitForJobStatus(page, ['completed', 'failed', 'canceled']), sc.job);
        await page.waitForSelector('.conn[data-state="done"]', { timeout: 10_000 });
        const job = await assertMatchesServer(page, server.url, jobId);
        for (const f of job.files) {
          assert.equal(f.status, f.file_id % 7 === 0 ? 'ready' : 'unavailable', `file ${f.file_id}`);
        }
        assert.equal(await assertDownloads(server.url, job), sc.ids.filter((id) => id % 7 === 0).length);
        if (sc.job === 'failed') {
          assert.ok(job.error?.message, 'a failed job says why');
          assert.equal((await page.locator('.job-error').textContent()).trim(), job.error.message);
        }
        for (const f of job.files.filter((x) => x.status === 'unavailable')) {
          const row = page.locator(`li.file[data-file-id="${f.file_id}"] .file-error`);
          assert.equal(await row.textContent(), f.error);
        }

        // A person's download: the link hands over the whole file.
        const ready = job.files.find((f) => f.status === 'ready');
        if (ready) {
          const [download] = await Promise.all([
            page.waitForEvent('download', { timeout: 10_000 }),
            page.getByRole('link', { name: new RegExp(`^Download file ${ready.file_id}\\b`) }).click(),
          ]);
          const path = await download.path();
          const { statSync } = await import('node:fs');
          assert.equal(statSync(path).size, ready.size);
        }

        const seen = await connLog(page);
        assert.ok(seen.includes('live:websocket') || seen[0] === 'done:none', `indicator states: ${seen.join(' → ')}`);
        assert.deepEqual(await backwardsMoves(page), []);
        assert.deepEqual(problems, []);
        await screenshot(page, `scenario-${sc.key}`);
      } finally {
        await context.close();
      }
    });
  }
});

describe('typing ids', () => {
  it('validates inline as the API does, by keyboard alone, and starts the job', async () => {
    const { context, page, problems } = await newPage(browser);
    try {
      await page.goto(server.url + '/');
      // Reach the field by keyboard.
      for (let i = 0; i < 10; i++) {
        await page.keyboard.press('Tab');
        if (await page.evaluate(() => document.activeElement?.tagName === 'TEXTAREA')) break;
      }
      assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('name')), 'file_ids');
      await page.keyboard.type('70000, 0 abc\n-5 9007199254740992 70000');
      await page.keyboard.press('Tab'); // leaving the field shows what is wrong
      const alert = page.getByRole('alert');
      await alert.waitFor({ timeout: 2000 });
      const text = await alert.textContent();
      for (const bad of ['“0”', '“abc”', '“-5”', 'and 1 more']) assert.ok(text.includes(bad), `error names ${bad}: ${text}`);
      assert.equal(await page.getByLabel('File ids').getAttribute('aria-invalid'), 'true');
      await page.keyboard.press('Enter'); // the focused Start button
      assert.ok(page.url().endsWith('/'), 'an invalid list is not sent');

      await page.getByLabel('File ids').fill('70014\n70014, 70000 70014');
      assert.match(await page.getByTestId('id-count').textContent(), /2 files, 2 duplicates removed/);
      await page.getByLabel('File ids').press('Control+Enter');
      await page.waitForURL(/\/jobs\//, { timeout: 10_000 });
      const jobId = jobIdFromUrl(page.url());
      assert.deepEqual((await pageFiles(page)).map((f) => f.file_id), [70014, 70000]);
      await waitForJobStatus(page, 'completed');
      await assertMatchesServer(page, server.url, jobId);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  it('shows the API’s own message when the server refuses a job', async () => {
    const { context, page } = await newPage(browser);
    try {
      await page.goto(server.url + '/');
      // The server is configured for at most 20 ids; the page allows the API default of 1000.
      const ids = Array.from({ length: 21 }, (_, i) => 70000 + i);
      const direct = await api(server.url, '/v1/download/initiate', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ file_ids: ids }),
      });
      assert.equal(direct.status, 400);
      await page.getByLabel('File ids').fill(ids.join(','));
      await page.getByRole('button', { name: 'Start job' }).click();
      const alert = page.getByRole('alert');
      await alert.waitFor({ timeout: 5000 });
      assert.equal((await alert.textContent()).trim(), direct.body.error.message);
      assert.ok(page.url().endsWith('/'));
    } finally {
      await context.close();
    }
  });

  it('says so when a job does not exist, instead of a blank page', async () => {
    const { context, page, problems } = await newPage(browser);
    try {
      const jobId = 'dl_01AAAAAAAAAAAAAAAAAAAAAAAA';
      const direct = await api(server.url, `/v1/download/status/${jobId}`);
      assert.equal(direct.status, 404);
      await page.goto(`${server.url}/jobs/${jobId}`);
      await page.getByRole('heading', { name: 'Job not found' }).waitFor({ timeout: 10_000 });
      assert.ok((await page.locator('.problem').textContent()).includes(direct.body.error.message));
      await screenshot(page, 'job-not-found');
      // The browser logs the 404 of the status read; nothing else may go wrong.
      assert.deepEqual(problems.filter((p) => !p.includes('404')), []);
    } finally {
      await context.close();
    }
  });
});

describe('layout', () => {
  it('fits a phone’s width in the dark scheme, with readable contrast', async () => {
    const { context, page } = await newPage(browser, {
      viewport: { width: 375, height: 740 },
      colorScheme: 'dark',
      deviceScaleFactor: 2,
    });
    try {
      await page.goto(server.url + '/');
      assert.deepEqual(await contrastProblems(page), []);
      await screenshot(page, 'phone-dark-home');
      await page.locator('button[data-scenario="mixed"]').click();
      await waitForJobStatus(page, 'completed');
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
      const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(bg, 'rgb(15, 19, 26)', 'dark background follows the system setting');
      assert.deepEqual(await contrastProblems(page), []);
      await screenshot(page, 'phone-dark-job');
    } finally {
      await context.close();
    }
  });

  it('has readable contrast in the light scheme', async () => {
    const { context, page } = await newPage(browser, { colorScheme: 'light' });
    try {
      await page.goto(server.url + '/');
      assert.deepEqual(await contrastProblems(page), []);
      await page.locator('button[data-scenario="unavailable"]').click();
      await waitForJobStatus(page, 'failed');
      assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(244, 246, 250)');
      assert.deepEqual(await contrastProblems(page), []);
    } finally {
      await context.close();
    }
  });
});
