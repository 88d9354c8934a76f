/**
 * `/docs` in a real browser (Debian's Chromium through playwright-core) against the real service:
 * Swagger UI loads from the service, lists every operation, and "Try it out" on POST
 * /generate-image with a picked file starts a task that completes - also with API keys in force,
 * through "Authorize", and refused with 401 without it. No request leaves the service's origin.
 * Each test's end state is kept as a screenshot (see test/helpers/browser.ts for the folder).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { createApiKey } from '../src/auth/create-api-key.js';
import { describeBrowser, launchBrowser, recordRequests, saveScreenshot, watchPage, type RequestLog } from './helpers/browser.js';
import { makeImage } from './helpers/images.js';
import { startStack, until, waitForStatus, type Stack } from './helpers/stack.js';

/** Timeouts for a busy two-core machine: generous, never asserted on. */
const UI_TIMEOUT = 30_000;

let browser: Browser;

/** A fresh browser context and page per test, its requests recorded, its end state photographed. */
function pageScope(stackOf: () => Stack) {
  const scope = {} as { context: BrowserContext; page: Page; requests: RequestLog; errors: string[] };
  beforeEach(async () => {
    scope.context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    scope.context.setDefaultTimeout(UI_TIMEOUT);
    scope.requests = await recordRequests(scope.context, stackOf().app.url);
    scope.page = await scope.context.newPage();
    scope.errors = watchPage(scope.page).errors;
  });
  afterEach(async (ctx) => {
    await saveScreenshot(scope.page, `docs-${ctx.task.name}`).catch((err: unknown) => console.warn(`no screenshot: ${String(err)}`));
    await scope.context.close();
  });
  return scope;
}

/** Opens /docs and waits for Swagger UI to render the operations. */
async function openDocs(page: Page, base: string): Promise<void> {
  await page.goto(`${base}/docs`);
  await page.locator('.opblock').first().waitFor();
}

/** POST /generate-image's block, opened, in "Try it out" mode, filled with a picked PNG. */
async function fillGenerate(page: Page, description: string): Promise<Locator> {
  const op = page.locator('#operations-default-post_generate_image');
  await op.locator('.opblock-summary-control').click();
  await op.getByRole('button', { name: 'Try it out' }).click();
  const png = await makeImage('png', 320, 240, { r: 200, g: 90, b: 40 });
  await op.locator('tr[data-property-name="referenceImage"] input[type=file]').setInputFiles({ name: 'car.png', mimeType: 'image/png', buffer: png });
  await op.getByRole('textbox', { name: 'description', exact: true }).fill(description);
  await op.getByRole('textbox', { name: 'size', exact: true }).fill('256x256');
  await op.getByRole('textbox', { name: 'steps', exact: true }).fill('3');
  return op;
}

/**
 * Clicks Execute and reads the status code and body Swagger UI shows for the live response, and
 * the names of the form fields it sent with a value (an empty field means "not given" to the route).
 */
async function execute(op: Locator): Promise<{ status: number; body: Record<string, unknown>; fields: string[] }> {
  const sent = op.page().waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === '/generate-image');
  await op.getByRole('button', { name: 'Execute' }).click();
  const multipart = (await sent).postDataBuffer()?.toString('latin1') ?? '';
  const parts = [...multipart.matchAll(/Content-Disposition: form-data; name="([^"]+)"[^\r]*\r\n(?:[^\r]+\r\n)*\r\n([\s\S]*?)\r\n--/g)];
  const fields = parts.filter((m) => m[2] !== '').map((m) => m[1]!).sort();
  const live = op.locator('.live-responses-table .response');
  await live.first().waitFor();
  await live.first().scrollIntoViewIfNeeded(); // the end state a screenshot keeps
  const status = Number((await live.locator('.response-col_status').first().innerText()).trim());
  const text = await live.locator('.response-col_description pre').first().innerText();
  return { status, body: JSON.parse(text) as Record<string, unknown>, fields };
}

describeBrowser('/docs in Chromium (Swagger UI from the service)', () => {
  beforeAll(async () => {
    browser = await launchBrowser();
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
  });

  describe('open mode (no API key)', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack();
    });
    afterAll(async () => {
      await stack?.close();
    });
    const scope = pageScope(() => stack);

    it('loads Swagger UI and shows every operation of /openapi.json, with no error and nothing from elsewhere', async () => {
      const { page } = scope;
      await openDocs(page, stack.app.url);
      const doc = (await (await fetch(`${stack.app.url}/openapi.json`)).json()) as { info: { title: string }; paths: Record<string, Record<string, unknown>> };
      const expected = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`));
      const shown = await page.locator('.opblock-summary').evaluateAll((blocks) =>
        blocks.map((b) => `${b.querySelector('.opblock-summary-method')?.textContent} ${b.querySelector('.opblock-summary-path')?.getAttribute('data-path')}`),
      );
      expect(shown).toEqual(expected);
      await expect.poll(() => page.locator('.info .title').innerText()).toContain(doc.info.title);
      // The bearer scheme of the document is offered by "Authorize".
      await page.getByRole('button', { name: 'Authorize' }).first().click();
      await expect.poll(() => page.locator('.modal-ux').innerText()).toContain('bearerKey');
      await page.locator('.modal-ux .close-modal').click();
      // A CSP refusal or a script error would be a console error.
      expect(scope.errors).toEqual([]);
      expect(scope.requests.urls.some((u) => u.includes('/docs/assets/swagger-ui-bundle.'))).toBe(true);
      expect(scope.requests.offOrigin()).toEqual([]);
    });

    it('"Try it out" on POST /generate-image with a picked file answers 200 with a task_id, and the task completes', async () => {
      const { page } = scope;
      await openDocs(page, stack.app.url);
      const op = await fillGenerate(page, 'make it night, from Swagger UI');
      const { status, body, fields } = await execute(op);
      expect(status, JSON.stringify(body)).toBe(200);
      // What the form showed filled (the defaults included), never a sample the user did not type:
      // no idempotency key, seed or webhook (Swagger UI's own samples would send all three).
      expect(fields).toEqual(['count', 'description', 'guidance', 'referenceImage', 'size', 'steps']);
      expect(body).toMatchObject({ status: 'pending', description: 'make it night, from Swagger UI', size: '256x256', steps: 3, count: 1 });
      expect(typeof body.task_id).toBe('string');
      const done = await waitForStatus(stack.app.url, body.task_id as string, ['completed']);
      expect(done.images).toHaveLength(1);
      // The request Swagger UI sent: multipart with the file, to the service itself.
      expect(scope.requests.urls).toContain(`${stack.app.url}/generate-image`);
      expect(scope.errors).toEqual([]);
      expect(scope.requests.offOrigin()).toEqual([]);
    });
  });

  describe('without JavaScript', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack();
    });
    afterAll(async () => {
      await stack?.close();
    });

    it('shows the routes as a plain list', async () => {
      const context = await browser.newContext({ javaScriptEnabled: false });
      try {
        const page = await context.newPage();
        await page.goto(`${stack.app.url}/docs`);
        await expect.poll(() => page.getByRole('heading', { level: 2 }).allInnerTexts()).toContain('POST /generate-image');
        await expect.poll(() => page.locator('.static-docs').innerText()).toContain('Needs an API key with the generate scope');
        await saveScreenshot(page, 'docs-without-JavaScript-shows-the-routes-as-a-plain-list');
      } finally {
        await context.close();
      }
    });
  });

  describe('with an API key in force', () => {
    let stack: Stack;
    let key: string;
    beforeAll(async () => {
      stack = await startStack();
      key = (await createApiKey(stack.app.db, { name: 'docs-browser' })).key;
      // The service notices the first key within its cache period (about 2 s).
      await until('the service requires keys', async () => (await fetch(`${stack.app.url}/api/task-status/x`)).status === 401);
    });
    afterAll(async () => {
      await stack?.close();
    });
    const scope = pageScope(() => stack);

    it('without Authorize the response shows 401', async () => {
      const { page } = scope;
      await openDocs(page, stack.app.url);
      const { status, body } = await execute(await fillGenerate(page, 'no key'));
      expect(status).toBe(401);
      expect(body).toHaveProperty('detail');
      // A page that loads without a key: /docs and its assets stay public.
      expect(scope.requests.offOrigin()).toEqual([]);
    });

    it('after Authorize with the key, Execute answers 200 and the task completes', async () => {
      const { page } = scope;
      await openDocs(page, stack.app.url);
      await page.getByRole('button', { name: 'Authorize' }).first().click();
      const modal = page.locator('.modal-ux');
      await modal.locator('#auth-bearer-value').fill(key);
      await modal.getByRole('button', { name: 'Apply credentials' }).first().click();
      await expect.poll(() => modal.innerText()).toContain('Logout');
      await modal.locator('.close-modal').click();
      const { status, body } = await execute(await fillGenerate(page, 'with a key, from Swagger UI'));
      expect(status).toBe(200);
      const id = body.task_id as string;
      const headers = { authorization: `Bearer ${key}` };
      await until(`task ${id} completes`, async () => {
        const res = await fetch(`${stack.app.url}/api/task-status/${id}`, { headers });
        return ((await res.json()) as { status: string }).status === 'completed';
      });
      expect(scope.errors.filter((e) => !e.includes('401'))).toEqual([]);
      expect(scope.requests.offOrigin()).toEqual([]);
    });
  });
});
