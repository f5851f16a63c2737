// Checks that the JavaScript the page sends to a browser stays under its budget, gzipped.
// Run after `vite build`; exits non-zero when dist/app is missing or over budget.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

export const BUDGET_BYTES = 150 * 1024;

const root = fileURLToPath(new URL('../dist/app/', import.meta.url));

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

let files;
try {
  files = walk(root).filter((p) => p.endsWith('.js') || p.endsWith('.mjs'));
} catch {
  console.error(`bundle size: ${root} is missing; run vite build first`);
  process.exit(1);
}
if (files.length === 0) {
  console.error('bundle size: the build has no JavaScript files');
  process.exit(1);
}

let total = 0;
for (const f of files) {
  const gz = gzipSync(readFileSync(f), { level: 9 }).length;
  total += gz;
  console.log(`bundle size: ${relative(root, f)} ${(gz / 1024).toFixed(1)} KiB gzipped`);
}
const verdict = total <= BUDGET_BYTES ? 'within' : 'OVER';
console.log(
  `bundle size: ${(total / 1024).toFixed(1)} KiB gzipped JavaScript, ${verdict} the budget of ${BUDGET_BYTES / 1024} KiB`,
);
if (total > BUDGET_BYTES) process.exit(1);
