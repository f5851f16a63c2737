// Runs the browser tests (e2e/*.e2e.mjs, or the files named as arguments) one file at a time
// with node's test runner, under a hard time limit, and ends with "N passed, N failed".
// Needs: Debian's Chromium (scripts/ensure-chromium.sh), `npm run build`, then the binary
// built from it (go build -o bin/longhaul ./cmd/longhaul), or LONGHAUL_BIN.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { fileURLToPath } from 'node:url';
import { chromiumPath } from './lib/browser.mjs';
import { binaryPath } from './lib/server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
// The suite takes about three minutes on 2 cores (the recovery test waits out asynq's
// 30 s lease); the limit leaves it room on a loaded machine.
const TOTAL_LIMIT_MS = Number(process.env.E2E_TIME_LIMIT_MS || 420_000);
const TEST_LIMIT_MS = 120_000;

const missing = [];
if (!existsSync(chromiumPath)) missing.push(`${chromiumPath} is missing: run scripts/ensure-chromium.sh`);
if (!existsSync(binaryPath())) missing.push(`${binaryPath()} is missing: build it, or set LONGHAUL_BIN`);
if (!existsSync(join(here, '../dist/app/index.html'))) missing.push('dist/app is missing: run npm run build');
if (missing.length > 0) {
  for (const m of missing) console.error(`e2e: ${m}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const files = (process.argv.length > 2 ? process.argv.slice(2) : readdirSync(here).filter((f) => f.endsWith('.e2e.mjs')).sort())
  .map((f) => resolve(here, f.replace(/^e2e\//, '')));

let passed = 0;
let failed = 0;
let overTime = false;
// Past the limit the runner is aborted: it stops the test processes, whose own cleanup then
// stops their servers and browsers.
const abort = new AbortController();
const limit = setTimeout(() => {
  overTime = true;
  console.error(`e2e: the run took longer than ${TOTAL_LIMIT_MS / 1000} s; stopping it`);
  abort.abort();
}, TOTAL_LIMIT_MS);

const started = Date.now();
const stream = run({ files, concurrency: 1, timeout: TEST_LIMIT_MS, signal: abort.signal });
// Tests are counted, not suites; a whole file appears as a test of its own only when it fails
// outside any test (a crash, a time-out), and then counts as a failure.
const isFile = (t) => t.nesting === 0 && t.file && t.name === t.file;
stream.on('test:pass', (t) => {
  if (t.details?.type !== 'suite' && !isFile(t)) passed++;
});
stream.on('test:fail', (t) => {
  if (t.details?.type !== 'suite') failed++;
});
stream.compose(spec).pipe(process.stdout);
await new Promise((ok) => stream.on('end', ok));
// Let the reporter flush before the closing line.
await new Promise((ok) => setImmediate(ok));
clearTimeout(limit);
if (overTime) failed++;
console.log(`e2e: ${files.length} files in ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
