/**
 * Thumbnails: latency of the first `GET /api/image/{id}?format=webp&width=256` of an image (sharp
 * decodes the 1024x1024 PNG original, resizes, encodes WebP, stores the variant) against the
 * second one of the same image (the stored variant streamed from the store), over N images made
 * through the API by the simulator. Each image's first and cached requests follow each other on
 * one kept-alive connection, so the machine's noise hits both alike.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { startSimulator } from '../simulator/server.js';
import sharp from 'sharp';
import { percentile } from './stats.js';
import type { BenchRow } from './table.js';

/** Tasks of 4 images each: N = 4 x TASKS images. */
const TASKS = 8;
const SIZE = '1024x1024';
const THUMBNAIL = 'format=webp&width=256';

/**
 * A reference with a photo's texture (smooth shapes plus grain, seeded), so the simulator's results
 * are decoded and compressed like photographs rather than like a solid colour (the row prints the
 * size of the originals).
 */
async function photoLikeReference(): Promise<Buffer> {
  let seed = 42;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 255;
  const coarse = Buffer.from(Array.from({ length: 32 * 24 * 3 }, random));
  const smooth = await sharp(coarse, { raw: { width: 32, height: 24, channels: 3 } }).resize(640, 480, { kernel: 'cubic' }).raw().toBuffer();
  const grainy = smooth.map((v) => Math.max(0, Math.min(255, v + (random() - 127.5) / 40)));
  return sharp(grainy, { raw: { width: 640, height: 480, channels: 3 } }).png().toBuffer();
}

/** One GET, timed from the request to the last byte of the answer, in ms; with the body's size. */
function timedGet(app: App, path: string, agent: Agent): Promise<{ ms: number; bytes: number }> {
  const url = new URL(path, app.url);
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let bytes = 0;
    const req = request(url, { agent }, (res) => {
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', () => (res.statusCode === 200 ? resolve({ ms: performance.now() - start, bytes }) : reject(new Error(`${url.pathname}: ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Makes a 4-image task through the API and waits for it; the paths of its images. */
async function finishedImages(app: App, reference: Buffer): Promise<string[]> {
  const form = new FormData();
  for (const [k, v] of Object.entries({ description: 'thumbnail bench', count: '4', steps: '1', size: SIZE })) form.set(k, v);
  form.set('referenceImage', new Blob([reference as Uint8Array<ArrayBuffer>], { type: 'image/png' }), 'ref.png');
  const res = await fetch(`${app.url}/generate-image`, { method: 'POST', body: form });
  if (res.status !== 200) throw new Error(`generate-image: ${res.status} ${await res.text()}`);
  const id = ((await res.json()) as { task_id: string }).task_id;
  for (;;) {
    const body = (await (await fetch(`${app.url}/api/task-status/${id}`)).json()) as { status: string };
    if (body.status === 'completed') return [0, 1, 2, 3].map((i) => `/api/image/${id}?index=${i}`);
    if (body.status === 'failed' || body.status === 'cancelled') throw new Error(`bench task ${body.status}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function benchThumbnails(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-thumbnails-'));
  const sim = await startSimulator({ port: 0, stepMs: 0, baseDir: join(dir, 'comfyui') });
  let app: App | undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    app = await startApp({ ...loadConfig({}), host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), comfyuiUrls: [sim.url] });
    const reference = await photoLikeReference();
    const images: string[] = [];
    for (let t = 0; t < TASKS; t++) images.push(...(await finishedImages(app, reference)));
    // Warm up the connection, the route and sharp on an image left out of the figures.
    const warm = images.shift()!;
    await timedGet(app, `${warm}&${THUMBNAIL}`, agent);
    const original = await timedGet(app, warm, agent);
    const first: number[] = [];
    const cached: number[] = [];
    let thumbBytes = 0;
    for (const path of images) {
      first.push((await timedGet(app, `${path}&${THUMBNAIL}`, agent)).ms);
      const again = await timedGet(app, `${path}&${THUMBNAIL}`, agent);
      cached.push(again.ms);
      thumbBytes = again.bytes;
    }
    const p50First = percentile(first, 50);
    const p50Cached = percentile(cached, 50);
    return [
      {
        name: `thumbnail (WebP, 256 wide) of a ${SIZE} PNG: cached vs first request, p50 over ${images.length} images`,
        figure: `cached ${p50Cached.toFixed(2)} ms (p95 ${percentile(cached, 95).toFixed(2)})`,
        baseline: `first ${p50First.toFixed(1)} ms (p95 ${percentile(first, 95).toFixed(1)})`,
        ratio: p50First / p50Cached,
        ratioLabel: 'x faster cached',
        note: `first: sharp decode + resize + WebP encode + store put; cached: one stat and a ${(thumbBytes / 1024).toFixed(0)} kB read (the original is ${(original.bytes / 1024).toFixed(0)} kB)`,
      },
    ];
  } finally {
    agent.destroy();
    await app?.close();
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  }
}
