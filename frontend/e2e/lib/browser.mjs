// Debian's Chromium driven by playwright-core: never a downloaded browser.
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const artifactsDir = resolve(dirname(fileURLToPath(import.meta.url)), '../artifacts');

/** chromiumPath is $CHROMIUM, else Debian's /usr/bin/chromium. */
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

/** launch starts headless Chromium with a fresh profile that stays off the network. */
export function launch() {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/**
 * Recorded in the page before any of its scripts run: every state the connection indicator
 * shows, in order, as "state:channel", so a test can check what a person saw along the way;
 * and every time a progress bar moved backwards, which must never happen.
 */
function recordPage() {
  const seen = [];
  window.__connLog = seen;
  const backwards = [];
  window.__backwards = backwards;
  new MutationObserver((records) => {
    for (const r of records) {
      const el = r.target;
      if (el.getAttribute('role') !== 'progressbar' || r.oldValue === null) continue;
      const before = Number(r.oldValue);
      const after = Number(el.getAttribute('aria-valuenow'));
      if (after < before) backwards.push(`${el.getAttribute('aria-label')}: ${before} → ${after}`);
    }
  }).observe(document, { subtree: true, attributes: true, attributeOldValue: true, attributeFilter: ['aria-valuenow'] });
  const note = () => {
    const el = document.querySelector('.conn');
    if (!el) return;
    const entry = `${el.getAttribute('data-state')}:${el.getAttribute('data-channel')}`;
    if (seen[seen.length - 1] !== entry) seen.push(entry);
  };
  new MutationObserver(note).observe(document, {
    subtree: true,
    childList: true,
    attributes: true,
    attributeFilter: ['data-state', 'data-channel'],
  });
}

/** newPage opens a page in its own context (own storage), recording connection states. */
export async function newPage(browser, options = {}) {
  const context = await browser.newContext({ acceptDownloads: true, ...options });
  await context.addInitScript(recordPage);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  return { context, page, problems };
}

/** connLog is the list of indicator states the page has shown so far. */
export function connLog(page) {
  return page.evaluate(() => [...(window.__connLog ?? [])]);
}

/** backwardsMoves lists every progress bar that moved backwards on the page. */
export function backwardsMoves(page) {
  return page.evaluate(() => [...(window.__backwards ?? [])]);
}

/** waitForConnection waits until the indicator shows state (and channel, if given). */
export async function waitForConnection(page, state, channel, timeoutMs = 15_000) {
  const sel = channel ? `.conn[data-state="${state}"][data-channel="${channel}"]` : `.conn[data-state="${state}"]`;
  try {
    await page.waitForSelector(sel, { timeout: timeoutMs });
  } catch {
    const now = await page.locator('.conn').getAttribute('data-state').catch(() => 'none');
    throw new Error(`indicator never showed ${state}${channel ? `:${channel}` : ''} (now ${now}; seen ${(await connLog(page)).join(' → ')})`);
  }
}

/** waitForJobStatus waits for the job's status (one of several) and returns it. */
export async function waitForJobStatus(page, statuses, timeoutMs = 30_000) {
  const list = Array.isArray(statuses) ? statuses : [statuses];
  const sel = list.map((s) => `.job-status[data-status="${s}"][data-synced="true"]`).join(', ');
  await page.waitForSelector(sel, { timeout: timeoutMs });
  return page.locator('.job-status').getAttribute('data-status');
}

/** pageFiles reads every file row as the page shows it. */
export function pageFiles(page) {
  return page.$$eval('li.file', (rows) =>
    rows.map((r) => ({
      file_id: Number(r.getAttribute('data-file-id')),
      status: r.getAttribute('data-status'),
      percent: Number(r.querySelector('[role="progressbar"]').getAttribute('aria-valuenow')),
      download_url: r.querySelector('a.download')?.getAttribute('href') ?? null,
      error: r.querySelector('.file-error')?.textContent ?? null,
    })),
  );
}

/** jobIdFromUrl reads the job id from a /jobs/{id} URL. */
export function jobIdFromUrl(url) {
  const m = /\/jobs\/(dl_[0-9A-Z]{26})$/.exec(new URL(url).pathname);
  if (!m) throw new Error(`not a job URL: ${url}`);
  return m[1];
}

/** screenshot keeps a PNG (the full page, unless told) under e2e/artifacts and returns its path. */
export async function screenshot(page, name, fullPage = true) {
  mkdirSync(artifactsDir, { recursive: true });
  const path = join(artifactsDir, `${name}.png`);
  await page.screenshot({ path, fullPage });
  return path;
}
