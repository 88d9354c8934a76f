/**
 * The service as `npm start` runs it: bundled by scripts/build-service.mjs into one file and run by
 * plain Node, no tsx. What could break only there: files found beside the code (the workflow, the
 * playground, package.json's version) and the packages it imports from node_modules.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildService } from '../scripts/build-service.mjs';
import { findPackageRoot, PACKAGE_ROOT } from '../src/package-root.js';
import { SERVICE_NODE_FLAGS, startBuiltServiceProcess } from './helpers/processes.js';
import { processScope } from './helpers/process-scope.js';
import { postGenerate, waitForStatus } from './helpers/stack.js';
import { startSimulator, type Simulator } from '../simulator/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const scope = processScope('kontext-bundle-');
// Its own folder under dist/, so a build for `npm start` running beside the suite is left alone.
const outDir = join(ROOT, 'dist', `test-${randomUUID()}`);
const bundle = join(outDir, 'main.js');
let sim: Simulator;

beforeAll(async () => {
  await mkdir(outDir, { recursive: true });
  await buildService(bundle);
  sim = await startSimulator({ port: 0, stepMs: 5 });
}, 60_000);

afterAll(async () => {
  await sim?.close();
  await rm(outDir, { recursive: true, force: true });
});

describe('the bundled service', () => {
  it('starts with plain Node, serves its version, the playground and the REST docs, and runs a task to its images', async () => {
    const service = await scope.track(startBuiltServiceProcess(bundle, { DATA_DIR: join(scope.dir, 'data'), COMFYUI_URL: sim.url, NODE_ENV: 'production' }));
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const health = (await (await fetch(`${service.url}/health`)).json()) as { version: string };
    expect(health.version).toBe(pkg.version);
    const page = await fetch(`${service.url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/playground/assets/');
    const docs = await fetch(`${service.url}/docs`);
    expect(docs.status).toBe(200);
    const id = ((await (await postGenerate(service.url, { description: 'bundled', steps: '2', size: '256x256' })).json()) as { task_id: string }).task_id;
    const done = await waitForStatus(service.url, id, ['completed', 'failed'], 30_000);
    expect(done.status).toBe('completed');
    expect(done.images).toHaveLength(1);
    const image = await fetch(new URL(done.images[0]!, `${service.url}/`));
    expect(image.status).toBe(200);
    expect(image.headers.get('content-type')).toMatch(/^image\//);
  }, 60_000);
});

describe('the service\'s Node flags', () => {
  it('are the ones npm start and npm run demo pass, which the tests and benchmarks start the service with', async () => {
    const { scripts } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    for (const name of ['start', 'demo']) {
      const flags = /node ((?:--\S+ )*)dist\/main\.js/.exec(scripts[name]!)?.[1]?.trim().split(' ');
      expect(flags, `npm run ${name}`).toEqual(['--enable-source-maps', ...SERVICE_NODE_FLAGS]);
    }
  });
});

describe('findPackageRoot', () => {
  it('finds the package from the sources and from dist/, passing over the SDK package inside it', () => {
    expect(PACKAGE_ROOT).toBe(findPackageRoot(join(ROOT, 'dist', 'anything')));
    expect(findPackageRoot(join(ROOT, 'src', 'db'))).toBe(PACKAGE_ROOT);
    expect(findPackageRoot(join(ROOT, 'packages', 'sdk', 'src'))).toBe(PACKAGE_ROOT);
  });

  it('names the package when no folder above holds it', () => {
    expect(() => findPackageRoot('/', 'no-such-package')).toThrow('no package.json named no-such-package at or above /');
  });
});
