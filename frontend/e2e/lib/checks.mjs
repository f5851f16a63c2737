// Assertions shared by the browser tests.
import assert from 'node:assert/strict';
import { api } from './server.mjs';
import { pageFiles } from './browser.mjs';

/**
 * assertMatchesServer checks that the page shows exactly the server's record of the job:
 * status, counts, and every file's status, percent, error and download link.
 */
export async function assertMatchesServer(page, base, jobId) {
  const { status, body: job } = await api(base, `/v1/download/status/${jobId}`);
  assert.equal(status, 200, `status of ${jobId}`);
  assert.equal(await page.locator('.job-status').getAttribute('data-status'), job.status, 'job status');
  const done = (await page.getByTestId('files-done').textContent()).replace(/\s+/g, ' ').trim();
  assert.equal(done, `${job.progress.files_done} of ${job.progress.files_total}`, 'files done');
  const overall = Number(await page.getByRole('progressbar', { name: 'Overall progress' }).getAttribute('aria-valuenow'));
  assert.equal(overall, job.progress.percent, 'overall percent');
  const shown = await pageFiles(page);
  assert.deepEqual(
    shown,
    job.files.map((f) => ({
      file_id: f.file_id,
      status: f.status,
      percent: f.percent,
      download_url: f.status === 'ready' ? f.download_url : null,
      error: f.error ?? null,
    })),
  );
  return job;
}

/** assertDownloads fetches every ready file of a job and checks its size. */
export async function assertDownloads(base, job) {
  const ready = job.files.filter((f) => f.status === 'ready');
  for (const f of ready) {
    const res = await fetch(base + f.download_url);
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, 200, `GET ${f.download_url}`);
    assert.equal(bytes.length, f.size, `size of file ${f.file_id}`);
  }
  return ready.length;
}

/** assertNeverBackwards checks a series of percents sampled from the page. */
export function assertNeverBackwards(samples, what) {
  for (let i = 1; i < samples.length; i++) {
    assert.ok(samples[i] >= samples[i - 1], `${what} went backwards: ${samples[i - 1]} → ${samples[i]} (${samples.join(', ')})`);
  }
}

/**
 * contrastProblems lists the visible texts of the page whose colour contrast against their
 * background is below WCAG AA: 4.5:1, or 3:1 for large text. Disabled controls are exempt.
 */
export function contrastProblems(page) {
  return page.evaluate(() => {
    const parse = (c) => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
      return { r, g, b, a };
    };
    const over = (top, under) => ({
      r: top.r * top.a + under.r * (1 - top.a),
      g: top.g * top.a + under.g * (1 - top.a),
      b: top.b * top.a + under.b * (1 - top.a),
      a: 1,
    });
    const background = (el) => {
      const layers = [];
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0) {
          layers.push(c);
          if (c.a >= 1) break;
        }
      }
      let bg = { r: 255, g: 255, b: 255, a: 1 };
      for (const l of layers.reverse()) bg = over(l, bg);
      return bg;
    };
    const lum = ({ r, g, b }) => {
      const f = (v) => {
        const c = v / 255;
        return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const problems = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const seen = new Set();
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!el || seen.has(el) || !n.textContent.trim()) continue;
      seen.add(el);
      if (el.closest(':disabled, .visually-hidden, noscript') || el.closest('.skip:not(:focus)')) continue;
      const rect = el.getBoundingClientRect();
      if (rect.width === 0 || rect.height === 0) continue;
      const style = getComputedStyle(el);
      const bg = background(el);
      const fg = over(parse(style.color), bg);
      const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
      const ratio = (hi + 0.05) / (lo + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) problems.push(`${ratio.toFixed(2)}:1 “${n.textContent.trim().slice(0, 40)}”`);
    }
    return problems;
  });
}
