/**
 * Uploads: 20 concurrent 10 MB uploads through `POST /generate-image`. Reports the service's peak
 * RSS growth (it streams, so it must stay far below the 200 MB sent) and its throughput against a
 * plain HTTP server that pipes each request body to disk, measured the same way in the same run.
 * Both servers run as child processes so their memory is theirs alone.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { startServiceProcess, type Child } from '../test/helpers/processes.js';
import { processMemory } from './process-memory.js';
import type { BenchRow } from './table.js';

const UPLOADS = 20;

/** A PNG of random pixels just under 10 MiB: incompressible, so the file really is that big. */
async function bigPng(): Promise<Buffer> {
  const side = 1800;
  return sharp(randomBytes(side * side * 3), { raw: { width: side, height: side, channels: 3 } }).png({ compressionLevel: 0 }).toBuffer();
}

async function uploadAll(url: string, png: Buffer): Promise<number> {
  const start = performance.now();
  await Promise.all(
    Array.from({ length: UPLOADS }, async (_, i) => {
      const form = new FormData();
      form.set('description', `upload ${i}`);
      // Blob's typings (lib.dom, which Yoga's types pull in) want a plain ArrayBuffer; Node's Buffers from sharp/readFile are.
      form.set('referenceImage', new Blob([png as Uint8Array<ArrayBuffer>], { type: 'image/png' }), 'big.png');
      const res = await fetch(url, { method: 'POST', body: form });
      if (res.status !== 200) throw new Error(`upload ${i}: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
    }),
  );
  return performance.now() - start;
}

/** The baseline: a bare node:http server writing each body to a file. */
async function startPlainServer(dir: string): Promise<Child> {
  const code = `
    const http = require('node:http'); const fs = require('node:fs'); const path = require('node:path');
    let n = 0;
    const server = http.createServer((req, res) => {
      const out = fs.createWriteStream(path.join(${JSON.stringify(dir)}, 'upload-' + n++));
      req.pipe(out).on('finish', () => { res.end('{}'); });
    });
    server.listen(0, '127.0.0.1', () => console.log('plain listening on http://127.0.0.1:' + server.address().port));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve) => {
    child.stdout.on('data', (c: Buffer) => {
      const m = /listening on (\S+)/.exec(c.toString());
      if (m) resolve(m[1]!);
    });
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { url, process: child, output: () => '', kill: async () => void (child.kill('SIGKILL'), await exited) };
}

/** The upload rows: the service's peak RSS growth and throughput against a plain server piping to disk. */
export async function benchUploads(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-up-'));
  const png = await bigPng();
  try {
    // No ComfyUI: the tasks only queue, so the measurement is the upload path alone.
    const service = await startServiceProcess({ DATA_DIR: join(dir, 'data'), COMFYUI_URL: 'http://127.0.0.1:9' });
    const before = await processMemory(service.process.pid!);
    const serviceMs = await uploadAll(`${service.url}/generate-image`, png);
    const after = await processMemory(service.process.pid!);
    await service.kill('SIGKILL');

    const plain = await startPlainServer(dir);
    const plainBefore = await processMemory(plain.process.pid!);
    const plainMs = await uploadAll(plain.url, png);
    const plainAfter = await processMemory(plain.process.pid!);
    await plain.kill();

    const mb = (UPLOADS * png.length) / 1e6;
    const growth = (after.peak - before.rss) / 1e6;
    const plainGrowth = (plainAfter.peak - plainBefore.rss) / 1e6;
    return [
      {
        name: `Uploads: ${UPLOADS} concurrent ${(png.length / 1e6).toFixed(1)} MB, service peak RSS growth`,
        figure: `${growth.toFixed(0)} MB for ${mb.toFixed(0)} MB sent`,
        baseline: `${plainGrowth.toFixed(0)} MB plain pipe-to-disk server`,
        ratio: growth / Math.max(1, plainGrowth),
        ratioLabel: 'x the baseline growth',
        note: 'streaming: memory follows the socket buffers, not the file sizes; the header check reads only the header',
      },
      {
        name: `Uploads: ${UPLOADS} concurrent ${(png.length / 1e6).toFixed(1)} MB, throughput`,
        figure: `${(mb / (serviceMs / 1000)).toFixed(0)} MB/s`,
        baseline: `${(mb / (plainMs / 1000)).toFixed(0)} MB/s plain pipe-to-disk server`,
        ratio: plainMs / serviceMs,
        ratioLabel: 'of the baseline',
        note: 'SHA-256 of every byte, the multipart parser and an fsync per file; disk and one core bound',
      },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
