/**
 * Tests in a real browser: Debian's Chromium driven by playwright-core (Playwright cannot download
 * its own browser here). `describeBrowser` declares a block that fails in CI (`CI` set) when
 * Chromium is missing - a missing browser is a broken CI machine, never a pass - and is skipped
 * elsewhere with one line saying how to install it. `recordRequests` lists every request a page
 * makes (aborting any to another origin) so tests can assert that none leaves the service;
 * `saveScreenshot` keeps a PNG of a test's end state as a CI artifact.
 */
import { accessSync, constants } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { describe, it } from 'vitest';

/** The Chromium binary: CHROMIUM_PATH, or Debian's `/usr/bin/chromium`. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Where screenshots go: TEST_SCREENSHOTS_DIR, or `test-artifacts/screenshots/` in the repository. */
export const SCREENSHOTS_DIR = resolve(process.env.TEST_SCREENSHOTS_DIR || join(dirname(fileURLToPath(import.meta.url)), '../../test-artifacts/screenshots'));

/** Why no browser test can run here, or undefined when Chromium is installed. */
export const browserProblem: string | undefined = (() => {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    return undefined;
  } catch {
    return `Chromium is not installed at ${CHROMIUM_PATH} (apt-get install -y chromium, or set CHROMIUM_PATH)`;
  }
})();

let warned = false;

/** `describe(title, fn)` when Chromium is there; otherwise a failing test in CI, a skipped block elsewhere. */
export function describeBrowser(title: string, fn: () => void): void {
  if (!browserProblem) return void describe(title, fn);
  if (process.env.CI) {
    describe(title, () => {
      it('needs Chromium', () => {
        throw new Error(`${browserProblem}; CI must run the browser tests (.ci/run installs it)`);
      });
    });
    return;
  }
  if (!warned) {
    warned = true;
    console.warn(`skipping the browser tests: ${browserProblem}`);
  }
  describe.skip(title, fn);
}

/**
 * Starts headless Chromium. The flags keep it from calling Google's hosts at start (refused on
 * offline machines) and let it run as root in a container.
 */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
    timeout: 60_000,
  });
}

/** Every request pages of a context made, in order. */
export interface RequestLog {
  /** URLs of HTTP requests and WebSockets, as made. */
  readonly urls: string[];
  /** Those not on `origin` (data: and blob: URLs never leave the browser and are not listed). */
  offOrigin(): string[];
}

/**
 * Records every request the pages of `context` make, WebSockets included, and aborts any to
 * another origin than `origin` (the service's base URL) so a test can never reach the internet.
 */
export async function recordRequests(context: BrowserContext, origin: string): Promise<RequestLog> {
  const urls: string[] = [];
  const own = new URL(origin);
  const local = (raw: string) => {
    const url = new URL(raw);
    if (url.protocol === 'data:' || url.protocol === 'blob:' || raw === 'about:blank') return true;
    const scheme = url.protocol.replace(/^ws/, 'http');
    return scheme === own.protocol && url.host === own.host;
  };
  context.on('request', (r) => urls.push(r.url()));
  const watchSockets = (page: Page) => page.on('websocket', (ws) => urls.push(ws.url()));
  context.pages().forEach(watchSockets);
  context.on('page', watchSockets);
  await context.route((url) => !local(url.href), (route) => route.abort('blockedbyclient'));
  return { urls, offOrigin: () => urls.filter((u) => !local(u)) };
}

/** What went wrong in a page: console errors (CSP refusals included) and uncaught exceptions. */
export function watchPage(page: Page): { errors: string[] } {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  return { errors };
}

/**
 * Saves a PNG of `page` as `<SCREENSHOTS_DIR>/<name>.png` (the name made file-safe); returns its
 * path. `fullPage`: the whole scrollable page instead of the viewport. @default false (what a user sees)
 */
export async function saveScreenshot(page: Page, name: string, fullPage = false): Promise<string> {
  const path = join(SCREENSHOTS_DIR, `${name.replace(/[^\w.-]+/g, '-').replace(/-{2,}/g, '-').replace(/^-+|-+$/g, '').slice(0, 120)}.png`);
  await mkdir(SCREENSHOTS_DIR, { recursive: true });
  await page.screenshot({ path, fullPage });
  return path;
}
