// Builds dist/docs, the page behind /docs: the API's OpenAPI document rendered by Swagger UI,
// from the swagger-ui-dist package pinned in package.json, with this project's page (docs/)
// around it. Only the files the page loads are copied, with the viewer's licence, so that the
// binary that embeds dist/docs carries nothing it does not serve. The page loads nothing from
// another host and runs no inline script or style.
import { copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '../dist/docs');
const page = join(here, '../docs');
const viewer = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

const pinned = JSON.parse(readFileSync(join(here, '../package.json'), 'utf8')).dependencies['swagger-ui-dist'];
const installed = JSON.parse(readFileSync(join(viewer, 'package.json'), 'utf8')).version;
if (installed !== pinned) {
  console.error(`docs: swagger-ui-dist ${installed} is installed but package.json pins ${pinned}; run npm ci`);
  process.exit(1);
}

const fromViewer = [
  'swagger-ui-bundle.js',
  'swagger-ui-bundle.js.LICENSE.txt',
  'swagger-ui.css',
  'favicon-32x32.png',
  'LICENSE',
  'NOTICE',
];
const fromPage = ['index.html', 'docs.js', 'docs.css'];

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const f of fromViewer) copyFileSync(join(viewer, f), join(out, f));
for (const f of fromPage) copyFileSync(join(page, f), join(out, f));
console.log(`docs: Swagger UI ${installed} and the page written to dist/docs (${fromViewer.length + fromPage.length} files)`);
