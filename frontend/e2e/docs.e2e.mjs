// The API's OpenAPI document for people: /docs renders every operation of /openapi.json from
// files built into the binary, asks nothing of any other host, needs nothing that the page's
// Content-Security-Policy refuses, and its "Try it out" reaches the API.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { launch, newPage, screenshot } from './lib/browser.mjs';
import { startServer } from './lib/server.mjs';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([startServer(), launch()]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

describe('the API document at /docs', () => {
  it('shows every operation offline, within the Content-Security-Policy, and tries one', async () => {
    const { context, page, problems } = await newPage(browser);
    const offOrigin = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(server.url + '/') && !r.url().startsWith('data:')) offOrigin.push(r.url());
    });
    await context.addInitScript(() =>
      document.addEventListener('securitypolicyviolation', (e) =>
        console.error(`the Content-Security-Policy refused ${e.blockedURI} (${e.violatedDirective})`),
      ),
    );
    try {
      const doc = await (await fetch(server.url + '/openapi.json')).json();
      const operations = Object.values(doc.paths).flatMap((item) => Object.keys(item).filter((k) => METHODS.includes(k)));
      await page.goto(server.url + '/docs');
      await page.locator('.opblock').nth(operations.length - 1).waitFor({ timeout: 20_000 });
      assert.equal(await page.locator('.opblock').count(), operations.length, 'one block per operation');
      await page.getByText('OAS 3.1').waitFor({ timeout: 5_000 });

      const health = page.locator('#operations-operations-getHealth');
      await health.locator('.opblock-summary').click();
      await health.getByRole('button', { name: 'Try it out' }).click();
      await health.getByRole('button', { name: 'Execute' }).click();
      await health.locator('.live-responses-table .response-col_status', { hasText: '200' }).waitFor({ timeout: 10_000 });
      await screenshot(page, 'docs', false);

      assert.deepEqual(problems, [], 'console errors');
      assert.deepEqual(offOrigin, [], 'requests to other hosts');
    } finally {
      await context.close();
    }
  });
});
