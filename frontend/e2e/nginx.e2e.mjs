// The page behind a real nginx that does not pass WebSocket upgrades on (the reference
// deploy/nginx.conf with the Upgrade and Connection headers emptied for /ws/): the handshake
// fails, the page falls back, says so in its connection indicator, never has an open
// WebSocket, and still ends on the server's final state with every file downloadable through
// nginx. Needs nginx (scripts/ensure-nginx.sh; make e2e runs it).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import {
  backwardsMoves,
  connLog,
  jobIdFromUrl,
  launch,
  newPage,
  pageFiles,
  screenshot,
  waitForConnection,
  waitForJobStatus,
} from './lib/browser.mjs';
import { assertDownloads, assertMatchesServer } from './lib/checks.mjs';
import { requireNginx, startNginx } from './lib/nginx.mjs';
import { startServer, waitFor } from './lib/server.mjs';

// The "available" scenario: four files, one at a time, 1-1.6 s each, so that the fallback
// is seen while the job still runs.
const IDS = [70000, 70007, 70014, 70021];
// What the indicator says on each fallback channel (ConnectionBadge's connectionLabel).
const FALLBACK_LABELS = {
  'live:sse': 'Live · SSE',
  'polling:polling': 'Polling',
  'reconnecting:polling': 'Polling · reconnecting…',
};

let server;
let browser;
let nginx;

before(async () => {
  requireNginx(); // fails the file at once, saying to run scripts/ensure-nginx.sh
  [server, browser] = await Promise.all([
    startServer({
      LONGHAUL_FILE_TIME_MIN: '1s',
      LONGHAUL_FILE_TIME_MAX: '1600ms',
      LONGHAUL_FILE_CONCURRENCY: '1',
    }),
    launch(),
  ]);
  nginx = await startNginx(server.url, { stripUpgrade: true });
});

after(async () => {
  // Every step runs, whichever fails.
  const results = await Promise.allSettled([browser?.close(), nginx?.stop()]);
  await server?.stop();
  for (const r of results) if (r.status === 'rejected') throw r.reason;
});

/**
 * handshake sends a WebSocket opening handshake from Node and returns the answer's status
 * (101 when it upgraded) and body.
 */
function handshake(base, path, origin) {
  const u = new URL(base);
  return new Promise((ok, fail) => {
    const req = http.request({
      host: u.hostname,
      port: u.port,
      path,
      agent: false,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
        Origin: origin,
      },
    });
    req.setTimeout(5000, () => req.destroy(new Error(`no answer to the handshake at ${base}${path}`)));
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      ok({ status: res.statusCode, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => ok({ status: res.statusCode, body }));
    });
    req.on('error', fail);
    req.end();
  });
}

/**
 * recordWebSockets runs in the page before its scripts: every WebSocket the page creates is
 * logged with whether it ever reached the open state and how it closed.
 */
function recordWebSockets() {
  const log = [];
  window.__wsLog = log;
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      const entry = { url: String(args[0]), opened: false, error: false, closeCode: null };
      log.push(entry);
      this.addEventListener('open', () => (entry.opened = true));
      this.addEventListener('error', () => (entry.error = true));
      this.addEventListener('close', (e) => (entry.closeCode = e.code));
    }
  };
}

describe('behind an nginx that strips the WebSocket upgrade', () => {
  it('refuses the handshake with the server’s 400, where the reference config upgrades', async () => {
    const path = `/ws/download/dl_0${'A'.repeat(25)}`;
    // The reference configuration, unchanged but for its addresses, passes the upgrade on:
    // Host and Origin agree, so only the stripping below can make the page fall back.
    const reference = await startNginx(server.url);
    try {
      assert.equal((await handshake(reference.url, path, reference.url)).status, 101, 'the reference nginx upgrades');
    } finally {
      await reference.stop();
    }
    assert.equal((await handshake(server.url, path, server.url)).status, 101, 'the server itself upgrades');
    const stripped = await handshake(nginx.url, path, nginx.url);
    assert.equal(stripped.status, 400, `through the stripping nginx: ${stripped.status} ${stripped.body}`);
    // longhaul's own refusal of a plain GET, not nginx's, and not the Origin check's 403.
    assert.equal(JSON.parse(stripped.body).error.message, 'this endpoint takes a WebSocket upgrade');
  });

  it('falls back, says so, never opens a WebSocket, completes, files download through nginx', async () => {
    const { context, page, problems } = await newPage(browser);
    await page.addInitScript(recordWebSockets);
    // What the browser's network saw of each WebSocket, beside what the page saw.
    const sockets = [];
    page.on('websocket', (ws) => {
      const s = { url: ws.url(), framesReceived: 0, framesSent: 0, socketError: null, closed: false };
      sockets.push(s);
      ws.on('framereceived', () => s.framesReceived++);
      ws.on('framesent', () => s.framesSent++);
      ws.on('socketerror', (err) => (s.socketError = String(err)));
      ws.on('close', () => (s.closed = true));
    });
    try {
      await page.goto(nginx.url + '/');
      await page.locator('button[data-scenario="available"]').click();
      await page.waitForURL(/\/jobs\/dl_[0-9A-Z]{26}$/, { timeout: 10_000 });
      const jobId = jobIdFromUrl(page.url());
      assert.ok(page.url().startsWith(nginx.url), `the page stays behind nginx: ${page.url()}`);

      // Whichever fallback channel the page reaches, while the job still runs.
      const fallback = Object.keys(FALLBACK_LABELS)
        .map((k) => {
          const [state, channel] = k.split(':');
          return `.conn[data-state="${state}"][data-channel="${channel}"]`;
        })
        .join(', ');
      try {
        await page.waitForSelector(fallback, { timeout: 15_000 });
      } catch {
        const seen = await connLog(page);
        throw new Error(`the indicator never showed a fallback channel; seen ${seen.join(' → ')}`);
      }
      const conn = page.locator('.conn');
      const shown = `${await conn.getAttribute('data-state')}:${await conn.getAttribute('data-channel')}`;
      const text = (await conn.getByRole('status').textContent()).trim();
      const jobStatus = await page.locator('.job-status').getAttribute('data-status');
      await screenshot(page, 'nginx-no-upgrade-fallback');
      console.log(`# through nginx without upgrades the page shows ${shown} (“${text}”) while the job is ${jobStatus}`);
      assert.notEqual(await conn.getAttribute('data-channel'), 'websocket');
      assert.ok(text.startsWith(FALLBACK_LABELS[shown]), `the indicator names its channel: “${text}” for ${shown}`);
      assert.doesNotMatch(text, /WebSocket/, 'the indicator does not claim a WebSocket');
      assert.ok(!['completed', 'failed', 'canceled'].includes(jobStatus), `the fallback is seen mid-job, not after it (${jobStatus})`);

      assert.equal(await waitForJobStatus(page, ['completed', 'failed', 'canceled'], 30_000), 'completed');
      await waitForConnection(page, 'done');
      assert.equal((await conn.getByRole('status').textContent()).trim(), 'Final state');
      const job = await assertMatchesServer(page, server.url, jobId);
      assert.deepEqual(job.files.map((f) => [f.file_id, f.status]), IDS.map((id) => [id, 'ready']));
      assert.deepEqual((await pageFiles(page)).map((f) => f.status), IDS.map(() => 'ready'));
      // Every file through nginx, from Node, and one as a person downloads it, from the page.
      assert.equal(await assertDownloads(nginx.url, job), IDS.length);
      const first = job.files[0];
      const [download] = await Promise.all([
        page.waitForEvent('download', { timeout: 10_000 }),
        page.getByRole('link', { name: new RegExp(`^Download file ${first.file_id}\\b`) }).click(),
      ]);
      assert.ok(download.url().startsWith(nginx.url), `downloaded through nginx: ${download.url()}`);
      assert.equal(statSync(await download.path()).size, first.size);
      assert.deepEqual(await backwardsMoves(page), []);
      await screenshot(page, 'nginx-no-upgrade-final');

      const seen = await connLog(page);
      assert.ok(!seen.includes('live:websocket'), `never live over WebSocket: ${seen.join(' → ')}`);
      assert.ok(seen.includes(shown), `the fallback is in the indicator's history: ${seen.join(' → ')}`);
      assert.equal(seen.at(-1), 'done:none');

      // No WebSocket ever opened: as the page saw it, and as the network did.
      const wsLog = await page.evaluate(() => [...(window.__wsLog ?? [])]);
      assert.ok(wsLog.length >= 1, 'the page tried a WebSocket first');
      for (const w of wsLog) {
        assert.ok(w.url.startsWith(nginx.url.replace(/^http/, 'ws') + '/ws/download/'), `WebSocket to ${w.url}`);
        assert.equal(w.opened, false, `a WebSocket reached the open state: ${JSON.stringify(w)}`);
        assert.equal(w.closeCode, 1006, `a refused handshake closes abnormally: ${JSON.stringify(w)}`);
      }
      assert.equal(sockets.length, wsLog.length, `the network saw ${sockets.length} WebSockets, the page ${wsLog.length}`);
      for (const s of sockets) {
        assert.equal(s.framesReceived + s.framesSent, 0, `frames on a WebSocket: ${JSON.stringify(s)}`);
        assert.match(s.socketError ?? '', /400/, `the handshake failed on the 400: ${JSON.stringify(s)}`);
      }
      // The only errors in the console are the browser's reports of those refused handshakes.
      const others = problems.filter((p) => !/WebSocket connection to '.*' failed/.test(p));
      assert.deepEqual(others, []);

      await context.close();
      // nginx logs a request when it ends: by now the page has closed every channel.
      const lines = await waitFor(
        'nginx to log the job’s live channels',
        () => {
          const all = nginx.accessLines();
          const ws = all.filter((l) => l.path.startsWith('/ws/download/'));
          const sse = all.filter((l) => /\/events$/.test(l.path));
          return ws.length >= wsLog.length && (shown !== 'live:sse' || sse.length >= 1) ? all : null;
        },
        5000,
      );
      assert.ok(!lines.some((l) => l.status === 101), 'nginx upgraded nothing');
      for (const l of lines.filter((x) => x.path.startsWith('/ws/download/'))) {
        assert.equal(l.status, 400, `nginx logged ${l.method} ${l.target} ${l.status}`);
      }
      for (const l of lines.filter((x) => /\/events$/.test(x.path))) {
        // 499: the page closed the stream itself once the job was over.
        assert.ok([200, 499].includes(l.status), `nginx logged ${l.method} ${l.target} ${l.status}`);
      }
    } catch (err) {
      err.message += `\n--- nginx error log (end):\n${nginx.errorLog().slice(-2000)}`;
      throw err;
    } finally {
      await context.close();
    }
  });
});
