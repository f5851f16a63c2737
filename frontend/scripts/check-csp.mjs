// Checks that the built page needs nothing beyond the Content-Security-Policy it is served
// with: default-src 'self' and connect-src 'self', so no inline scripts, styles or event
// handlers in HTML, no data: or other hosts' URLs, no fonts or styles from elsewhere, and no
// eval. Run after `vite build`; exits non-zero and lists every finding.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../dist/app/', import.meta.url));

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

/** sameOrigin reports whether a URL in the page stays on the page's own origin. */
const sameOrigin = (url) => url.startsWith('/') && !url.startsWith('//');

function htmlProblems(html) {
  const found = [];
  for (const m of html.matchAll(/<script\b([^>]*)>/gi)) {
    if (!/\bsrc\s*=/i.test(m[1])) found.push('an inline <script>');
  }
  if (/<style\b/i.test(html)) found.push('an inline <style>');
  if (/\sstyle\s*=/i.test(html)) found.push('a style attribute');
  for (const m of html.matchAll(/\s(on[a-z]+)\s*=/gi)) found.push(`an inline ${m[1]} handler`);
  for (const m of html.matchAll(/\s(?:src|href)\s*=\s*["']([^"']*)["']/gi)) {
    if (!sameOrigin(m[1])) found.push(`a URL off the page's origin: ${m[1].slice(0, 60)}`);
  }
  return found;
}

function cssProblems(css) {
  const found = [];
  for (const m of css.matchAll(/url\(\s*["']?([^"')]*)/gi)) {
    if (!sameOrigin(m[1]) && !m[1].startsWith('#')) found.push(`a url() off the page's origin: ${m[1].slice(0, 60)}`);
  }
  if (/@import\b/i.test(css)) found.push('an @import');
  return found;
}

function jsProblems(js) {
  const found = [];
  if (/\beval\s*\(/.test(js)) found.push('eval()');
  if (/\bnew\s+Function\s*\(/.test(js)) found.push('new Function()');
  return found;
}

let files;
try {
  files = walk(root);
} catch {
  console.error(`csp: ${root} is missing; run vite build first`);
  process.exit(1);
}
const problems = [];
for (const f of files) {
  const text = readFileSync(f, 'utf8');
  const check = f.endsWith('.html') ? htmlProblems : f.endsWith('.css') ? cssProblems : /\.m?js$/.test(f) ? jsProblems : null;
  for (const p of check ? check(text) : []) problems.push(`${relative(root, f)}: ${p}`);
}
for (const p of problems) console.error(`csp: ${p}`);
console.log(`csp: ${files.length} files checked, ${problems.length} need more than default-src 'self'`);
if (problems.length > 0) process.exit(1);
