/**
 * The cost of authentication per request: latency of `GET /api/task-status/{id}` (a finished
 * 1-image task) with an API key, against the same service in open mode. Once a key exists a
 * service never goes back to open, so two apps run side by side in this process, each with its
 * own data folder and its task made through the API; requests alternate (open, key, key, open,
 * ...) one at a time over a kept-alive connection, so the machine's noise hits both.
 *
 * With a key a request pays for the Authenticator (a SHA-256 and a cached lookup: one database
 * read per key every 2 s), the ownership check and the signed image URL (one HMAC per image).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp, type App } from '../src/app.js';
import { createApiKey } from '../src/auth/create-api-key.js';
import { loadConfig } from '../src/config.js';
import { startSimulator } from '../simulator/server.js';
import { makeImage } from '../test/helpers/images.js';
import { percentile } from './stats.js';
import type { BenchRow } from './table.js';

const WARMUPS = 300;
const RUNS = 3000;
/** The goal of issue 12: what a key may add to a request's p50. */
const GOAL_MS = 0.5;

/** One service under test: where to ask, with which headers, over one kept-alive connection. */
interface Target {
  app: App;
  path: string;
  headers: Record<string, string>;
  agent: Agent;
}

/** One GET, timed from the request to the last byte of the answer, in ms. */
function timedGet(target: Target): Promise<number> {
  const url = new URL(target.path, target.app.url);
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const req = request(url, { agent: target.agent, headers: target.headers }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - start) : reject(new Error(`${url.pathname}: ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Makes a 1-image task through the API and waits for it to finish; returns its status path. */
async function finishedTask(app: App, headers: Record<string, string>): Promise<string> {
  const form = new FormData();
  for (const [k, v] of Object.entries({ description: 'auth bench', steps: '1', size: '256x256' })) form.set(k, v);
  form.set('referenceImage', new Blob([(await makeImage('png', 320, 240)) as Uint8Array<ArrayBuffer>], { type: 'image/png' }), 'ref.png');
  const res = await fetch(`${app.url}/generate-image`, { method: 'POST', body: form, headers });
  if (res.status !== 200) throw new Error(`generate-image: ${res.status} ${await res.text()}`);
  const path = `/api/task-status/${((await res.json()) as { task_id: string }).task_id}`;
  for (;;) {
    const body = (await (await fetch(`${app.url}${path}`, { headers })).json()) as { status: string };
    if (body.status === 'completed') return path;
    if (body.status === 'failed' || body.status === 'cancelled') throw new Error(`bench task ${body.status}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function benchAuth(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-auth-'));
  const sim = await startSimulator({ port: 0, stepMs: 0, baseDir: join(dir, 'comfyui') });
  const config = (name: string) => ({ ...loadConfig({}), host: '127.0.0.1', port: 0, dataDir: join(dir, name), comfyuiUrls: [sim.url] });
  const apps: App[] = [];
  const targets: Target[] = [];
  try {
    const openApp = await startApp(config('open'));
    apps.push(openApp);
    targets.push({ app: openApp, path: await finishedTask(openApp, {}), headers: {}, agent: new Agent({ keepAlive: true, maxSockets: 1 }) });
    const keyApp = await startApp(config('keys'));
    apps.push(keyApp);
    const { key } = await createApiKey(keyApp.db, { name: 'bench' });
    // The first key switches the service to keys mode for good, once its cached "open" (2 s) expires.
    while ((await keyApp.auth.mode()) !== 'keys') await new Promise((r) => setTimeout(r, 50));
    const headers = { authorization: `Bearer ${key}` };
    targets.push({ app: keyApp, path: await finishedTask(keyApp, headers), headers, agent: new Agent({ keepAlive: true, maxSockets: 1 }) });

    const [open, keyed] = [[], []] as [number[], number[]];
    for (let i = 0; i < WARMUPS + RUNS; i++) {
      // ABBA order: neither side always goes first after the other.
      const order = i % 2 === 0 ? [0, 1] : [1, 0];
      for (const t of order) {
        const ms = await timedGet(targets[t]!);
        if (i >= WARMUPS) (t === 0 ? open : keyed).push(ms);
      }
    }
    const p = percentile;
    const ms = (x: number) => `${x.toFixed(3)} ms`;
    const signed = (x: number) => `${x >= 0 ? '+' : ''}${ms(x)}`;
    const added = p(keyed, 50) - p(open, 50);
    return [
      {
        name: `Authentication per request: GET /api/task-status of a finished 1-image task (${RUNS} requests each, alternating, one at a time, kept-alive)`,
        figure: `with a key (Bearer): p50 ${ms(p(keyed, 50))}, p99 ${ms(p(keyed, 99))}`,
        baseline: `open mode, no key: p50 ${ms(p(open, 50))}, p99 ${ms(p(open, 99))}; added p50 ${signed(added)}, p99 ${signed(p(keyed, 99) - p(open, 99))}`,
        ratio: p(keyed, 50) / p(open, 50),
        ratioLabel: 'x the open p50',
        note: `goal < ${GOAL_MS} ms added at p50 (${added < GOAL_MS ? 'met' : 'NOT met'}): a SHA-256 of the key, a cached lookup (one read per key every 2 s), the ownership check and an HMAC for the signed image URL`,
      },
    ];
  } finally {
    for (const t of targets) t.agent.destroy();
    for (const app of apps) await app.close();
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  }
}
