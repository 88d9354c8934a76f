/**
 * Overhead per task: one 1-image task (256x256, 4 steps) on a simulator at 0 ms per step, from the
 * upload to the final frame, through GraphQL with the SDK (multipart `generate`, then `watch` over
 * graphql-ws until COMPLETED). The baseline is the bare ComfyUI client doing the same work against
 * the same simulator: upload, prompt, wait, download. The two alternate (A, B, A, B, ...) so that
 * the machine's noise hits both, every run with its own seed so ComfyUI's cache never answers.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createKontextClient, type KontextClient } from '@kontext-gateway/sdk';
import { startApp } from '../src/app.js';
import { startSimulator } from '../simulator/server.js';
import { ComfyWorker } from '../src/comfyui/worker.js';
import { bindWorkflow, loadWorkflow, type Workflow } from '../src/comfyui/workflow.js';
import { loadConfig } from '../src/config.js';
import { makeImage } from '../test/helpers/images.js';
import { percentile } from './stats.js';
import type { BenchRow } from './table.js';

const WARMUPS = 3;
const RUNS = 40;
const STEPS = 4;
const SIZE = { width: 256, height: 256 };

/** Upload to final frame through the service, in ms. */
async function throughService(client: KontextClient, reference: Buffer, seed: number): Promise<number> {
  const start = performance.now();
  const result = await client.generate({ referenceImage: reference, fileName: 'ref.png', description: 'overhead', size: `${SIZE.width}x${SIZE.height}`, steps: STEPS, seed });
  if (result.__typename !== 'GenerateSuccess') throw new Error(`generate: ${result.message}`);
  for await (const frame of client.watch(result.task.id)) {
    if (frame.status === 'COMPLETED') return performance.now() - start;
    if (frame.status === 'FAILED' || frame.status === 'CANCELLED') throw new Error(`task ${frame.status}: ${frame.error ?? ''}`);
  }
  throw new Error('the subscription ended before the final frame');
}

/** The same work with the bare ComfyUI client, in ms. */
async function direct(worker: ComfyWorker, workflow: Workflow, reference: Buffer, seed: number, dir: string): Promise<number> {
  const start = performance.now();
  const uploaded = await worker.uploadImage(reference, 'bench-overhead.png', { overwrite: true });
  const promptId = randomUUID();
  const result = await worker.run(
    promptId,
    bindWorkflow(workflow, { description: 'overhead', seed, steps: STEPS, guidance: 2.5, size: SIZE, referenceImage: uploaded.name, filenamePrefix: 'bench/overhead' }),
    { outputNode: workflow.binding.outputNode },
  );
  const file = result.images[0];
  if (!file) throw new Error(`prompt ${promptId} produced no image`);
  await worker.download(file, join(dir, `${promptId}.png`));
  return performance.now() - start;
}

export async function benchOverhead(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-overhead-'));
  const sim = await startSimulator({ port: 0, stepMs: 0, baseDir: join(dir, 'comfyui') });
  const app = await startApp({ ...loadConfig({}), host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), comfyuiUrls: [sim.url] });
  const client = createKontextClient({ url: `${app.url}/graphql`, webSocketImpl: WebSocket });
  const worker = new ComfyWorker(sim.url);
  try {
    await worker.start();
    const workflow = await loadWorkflow();
    const reference = await makeImage('png', 320, 240);
    const service: number[] = [];
    const bare: number[] = [];
    let seed = 1;
    for (let i = 0; i < WARMUPS + RUNS; i++) {
      const a = await throughService(client, reference, seed++);
      const b = await direct(worker, workflow, reference, seed++, dir);
      if (i >= WARMUPS) {
        service.push(a);
        bare.push(b);
      }
    }
    const p = (v: number[], q: number) => percentile(v, q);
    const ms = (x: number) => `${x.toFixed(1)} ms`;
    return [
      {
        name: `Overhead per task: 1 image ${SIZE.width}x${SIZE.height}, ${STEPS} steps x 0 ms, upload to final frame (${RUNS} runs, interleaved)`,
        figure: `GraphQL + SDK: p50 ${ms(p(service, 50))}, p99 ${ms(p(service, 99))}`,
        baseline: `bare ComfyUI client: p50 ${ms(p(bare, 50))}, p99 ${ms(p(bare, 99))}; difference p50 +${ms(p(service, 50) - p(bare, 50))}, p99 +${ms(p(service, 99) - p(bare, 99))}`,
        ratio: p(service, 50) / p(bare, 50),
        ratioLabel: 'x the baseline p50',
        note: 'on top of the same ComfyUI work (mostly the simulator encoding PNGs): the upload streamed, hashed and fsynced before the reply, a SQLite write per frame, the claim, the graphql-ws subscription (the SDK keeps one socket across watches), the image fsynced before the final frame',
      },
    ];
  } finally {
    await client.close();
    await worker.stop();
    await app.close();
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  }
}
