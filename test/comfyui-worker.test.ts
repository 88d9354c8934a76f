/**
 * Contract tests of ComfyWorker against the ComfyUI simulator, over real HTTP and WebSockets:
 * normal, cached, failing, cancelled and queued prompts, lost sockets, a restarted server, a down
 * server, validation failures, previews and re-attaching.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  ComfyBadReplyError,
  ComfyExecutionError,
  ComfyInterruptedError,
  ComfyPromptVanishedError,
  ComfyQueueTimeoutError,
  ComfyRunTimeoutError,
  ComfyTimeoutError,
  ComfyUnreachableError,
  ComfyValidationError,
  ComfyWorkerStoppedError,
} from '../src/comfyui/errors.js';
import { ComfyHttpClient, PARTIAL_VALIDATION_ERROR_TYPE } from '../src/comfyui/http-client.js';
import type { ApiPrompt } from '../src/comfyui/protocol.js';
import { startSimulator } from '../simulator/server.js';
import { ComfyWorker, type ComfyWorkerOptions, type PromptEvent } from '../src/comfyui/worker.js';
import { kontextPrompt } from './helpers/kontext-prompt.js';
import { closedPort } from './helpers/ports.js';

type Simulator = Awaited<ReturnType<typeof startSimulator>>;

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const FAST: ComfyWorkerOptions = { pollMs: 100, silenceMs: 2_000, socket: { reconnectInitialMs: 50, reconnectMaxMs: 200 } };

async function startedWorker(url: string, options: ComfyWorkerOptions = {}): Promise<ComfyWorker> {
  const worker = new ComfyWorker(url, { ...FAST, ...options });
  cleanups.push(() => worker.stop());
  await worker.start();
  return worker;
}

/** Another client of the same server: submits and reads behind the worker's back. */
function otherClient(url: string): ComfyHttpClient {
  const client = new ComfyHttpClient(url);
  cleanups.push(() => client.close());
  return client;
}

async function uploadReference(worker: ComfyWorker): Promise<ApiPrompt> {
  const png = await sharp({ create: { width: 96, height: 64, channels: 3, background: { r: 30, g: 90, b: 200 } } }).png().toBuffer();
  const { name } = await worker.uploadImage(png, 'kontext_input.png', { overwrite: true });
  return kontextPrompt(name);
}

function variant(prompt: ApiPrompt, changes: { seed?: number; steps?: number; text?: string }): ApiPrompt {
  const copy = structuredClone(prompt);
  if (changes.seed !== undefined) copy['31']!.inputs['seed'] = changes.seed;
  if (changes.steps !== undefined) copy['31']!.inputs['steps'] = changes.steps;
  if (changes.text !== undefined) copy['6']!.inputs['text'] = changes.text;
  return copy;
}

/** Collects events and lets a test wait for one. */
function recorder() {
  const events: PromptEvent[] = [];
  const waiters: Array<{ match: (e: PromptEvent) => boolean; resolve: () => void }> = [];
  return {
    events,
    onEvent: (event: PromptEvent) => {
      events.push(event);
      for (const w of [...waiters]) {
        if (w.match(event)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    },
    waitFor: (match: (e: PromptEvent) => boolean) =>
      events.some(match) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ match, resolve })),
  };
}


describe('ComfyWorker on a healthy simulator', () => {
  let sim: Simulator;
  let worker: ComfyWorker;
  let base: ApiPrompt;
  let dir: string;
  let seed = 1_000;

  beforeAll(async () => {
    sim = await startSimulator({ port: 0, stepMs: 5 });
    worker = new ComfyWorker(sim.url, FAST);
    await worker.start();
    base = await uploadReference(worker);
    dir = await mkdtemp(join(tmpdir(), 'comfy-worker-'));
  });
  afterAll(async () => {
    await worker?.stop();
    await sim?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs a prompt: started, executing, progress 1..N, executed, then real PNGs', async () => {
    const rec = recorder();
    const promptId = randomUUID();
    const result = await worker.run(promptId, variant(base, { seed: seed++, steps: 6 }), { outputNode: '136', onEvent: rec.onEvent, timeoutMs: 10_000 });
    expect(result.promptId).toBe(promptId);
    expect(result.cached).toBe(false);
    expect(result.images.length).toBeGreaterThan(0);

    const types = rec.events.map((e) => e.type);
    expect(types.indexOf('started')).toBeGreaterThanOrEqual(0);
    expect(types.indexOf('started')).toBeLessThan(types.indexOf('executing'));
    const progress = rec.events.filter((e) => e.type === 'progress');
    expect(progress.map((e) => e.value)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(progress.every((e) => e.max === 6 && e.node === '31')).toBe(true);
    expect(rec.events.filter((e) => e.type === 'executing').map((e) => e.node)).toContain('31');
    const executed = rec.events.find((e) => e.type === 'executed');
    expect(executed).toEqual({ type: 'executed', node: '136', images: result.images });
    expect(types.lastIndexOf('progress')).toBeLessThan(types.indexOf('executed'));
    expect(worker.inFlight()).toEqual([]);

    for (const [i, image] of result.images.entries()) {
      const dest = join(dir, `normal-${i}.png`);
      expect((await worker.download(image, dest)).contentType).toBe('image/png');
      const meta = await sharp(await readFile(dest)).metadata();
      expect(meta.format).toBe('png');
      expect(meta.width).toBeGreaterThan(0);
    }
  });

  it('takes a success from the socket: the images of `executed` and `execution_success`, without reading the history', async () => {
    const reads = vi.spyOn(ComfyHttpClient.prototype, 'getHistory');
    const promptId = randomUUID();
    let result;
    try {
      result = await worker.run(promptId, variant(base, { seed: seed++, steps: 3 }), { outputNode: '136', timeoutMs: 10_000 });
    } finally {
      reads.mockRestore();
    }
    expect(reads.mock.calls.filter(([id]) => id === promptId)).toEqual([]);
    expect(result.cached).toBe(false);
    // The same images the history records once it is written.
    const client = otherClient(sim.url);
    let entry = await client.getHistory(promptId);
    for (let i = 0; !entry && i < 100; i++) entry = await sleep(20).then(() => client.getHistory(promptId));
    expect(result.images).toEqual(entry?.outputs['136']?.images);
  });

  it('yields the images of a fully cached resubmit, with cached: true', async () => {
    // No re-check for a minute, and a run limit well below it: only its messages (`executed` and
    // `execution_success`, sent although no node ran) can finish the cached run in time, not the idle reconcile.
    const patient = await startedWorker(sim.url, { silenceMs: 60_000, pollMs: 60_000 });
    const prompt = variant(base, { seed: seed++, steps: 3 });
    const first = await patient.run(randomUUID(), prompt, { outputNode: '136', timeoutMs: 10_000 });
    const rec = recorder();
    const again = await patient.run(randomUUID(), prompt, { outputNode: '136', onEvent: rec.onEvent, timeoutMs: 5_000, queueTimeoutMs: 5_000 });
    expect(again.cached).toBe(true);
    expect(again.images).toEqual(first.images);
    expect(rec.events.some((e) => e.type === 'progress' || e.type === 'executing')).toBe(false);
    expect(rec.events).toContainEqual({ type: 'executed', node: '136', images: first.images });
    const cachedEvent = rec.events.find((e) => e.type === 'cached');
    expect(cachedEvent?.type === 'cached' && cachedEvent.nodes).toContain('136');
  });

  it('rejects with ComfyExecutionError naming node 31 / KSampler / RuntimeError', async () => {
    const failing = await startSimulator({ port: 0, stepMs: 5, failOnText: '__FAIL__' });
    cleanups.push(() => failing.close());
    const w = await startedWorker(failing.url);
    const prompt = variant(await uploadReference(w), { text: 'make it red __FAIL__ please', steps: 6 });
    const err = await w.run(randomUUID(), prompt, { outputNode: '136', timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyExecutionError);
    expect(err).toMatchObject({ code: 'EXECUTION', nodeId: '31', nodeType: 'KSampler', exceptionType: 'RuntimeError', worker: failing.url });
    expect((err as Error).message).toMatch(/node 31 \(KSampler\): RuntimeError: /);
  });

  it('cancels a running prompt: ComfyInterruptedError', async () => {
    const rec = recorder();
    const promptId = randomUUID();
    const run = worker.run(promptId, variant(base, { seed: seed++, steps: 400 }), { outputNode: '136', onEvent: rec.onEvent, timeoutMs: 10_000 });
    await rec.waitFor((e) => e.type === 'progress');
    await worker.cancel(promptId);
    const err = await run.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyInterruptedError);
    expect(err).toMatchObject({ code: 'INTERRUPTED', promptId, nodeId: '31' });
  });

  it('cancels a pending prompt: ComfyInterruptedError, and it never runs', async () => {
    const blocker = randomUUID();
    const blockerRec = recorder();
    const blocking = worker.run(blocker, variant(base, { seed: seed++, steps: 400 }), { outputNode: '136', onEvent: blockerRec.onEvent, timeoutMs: 10_000 });
    await blockerRec.waitFor((e) => e.type === 'progress');
    const rec = recorder();
    const pending = randomUUID();
    const run = worker.run(pending, variant(base, { seed: seed++, steps: 3 }), { outputNode: '136', onEvent: rec.onEvent, timeoutMs: 10_000 });
    await rec.waitFor((e) => e.type === 'queued');
    await worker.cancel(pending);
    await expect(run).rejects.toBeInstanceOf(ComfyInterruptedError);
    await worker.cancel(blocker);
    await expect(blocking).rejects.toBeInstanceOf(ComfyInterruptedError);
    expect(rec.events.some((e) => e.type === 'started')).toBe(false);
    expect(await otherClient(sim.url).getHistory(pending)).toBeUndefined();
    const queue = await worker.queue();
    expect([...queue.queue_running, ...queue.queue_pending].map((item) => item[1])).not.toContain(pending);
  });

  it('completes three queued prompts in order, reporting queue positions', async () => {
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const finished: string[] = [];
    const recs = ids.map(() => recorder());
    const runs = ids.map((id, i) =>
      worker.run(id, variant(base, { seed: seed++, steps: 8 }), { outputNode: '136', onEvent: recs[i]!.onEvent, timeoutMs: 15_000 }).then((r) => {
        finished.push(id);
        return r;
      }),
    );
    const results = await Promise.all(runs);
    expect(finished).toEqual(ids);
    expect(results.every((r) => r.images.length > 0 && !r.cached)).toBe(true);
    const lastQueued = recs[2]!.events.find((e) => e.type === 'queued');
    expect(lastQueued?.type === 'queued' && (lastQueued.position ?? 0)).toBeGreaterThanOrEqual(1);
    expect(recs.every((r) => r.events.some((e) => e.type === 'started'))).toBe(true);
  });

  it('surfaces validation errors with node ids, classes and input names', async () => {
    const badModel = structuredClone(base);
    badModel['37']!.inputs['unet_name'] = 'x.safetensors';
    const err = (await worker.run(randomUUID(), badModel, { outputNode: '136' }).catch((e: unknown) => e)) as ComfyValidationError;
    expect(err).toBeInstanceOf(ComfyValidationError);
    expect(err.problems).toContainEqual(expect.objectContaining({ nodeId: '37', classType: 'UNETLoader', inputName: 'unet_name', type: 'value_not_in_list' }));
    expect(err.message).toContain("node 37 (UNETLoader) input unet_name: Value not in list: unet_name: 'x.safetensors' not in");

    const missing = structuredClone(base);
    delete missing['31']!.inputs['seed'];
    const err2 = (await worker.run(randomUUID(), missing, { outputNode: '136' }).catch((e: unknown) => e)) as ComfyValidationError;
    expect(err2.problems).toContainEqual(expect.objectContaining({ nodeId: '31', classType: 'KSampler', inputName: 'seed', type: 'required_input_missing' }));
    expect(worker.inFlight()).toEqual([]);
  });

  it('treats a 200 with node_errors (a second output node failing) as a failure', async () => {
    const partial = variant(base, { seed: seed++, steps: 3 });
    partial['199'] = { class_type: 'SaveImage', inputs: { images: ['8', 0] } };
    const promptId = randomUUID();
    const err = (await worker.run(promptId, partial, { outputNode: '136', timeoutMs: 10_000 }).catch((e: unknown) => e)) as ComfyValidationError;
    expect(err).toBeInstanceOf(ComfyValidationError);
    expect(err.errorType).toBe(PARTIAL_VALIDATION_ERROR_TYPE);
    expect(err.problems.map((p) => p.nodeId)).toContain('199');
    expect(worker.inFlight()).toEqual([]);
  });

  it('attaches to a prompt submitted by another client and finishes by polling', async () => {
    const promptId = randomUUID();
    await otherClient(sim.url).queuePrompt({ prompt: variant(base, { seed: seed++, steps: 20 }), promptId }); // no client_id: no messages for anyone
    const rec = recorder();
    const result = await worker.attach(promptId, { outputNode: '136', onEvent: rec.onEvent, timeoutMs: 10_000 });
    expect(result.images.length).toBeGreaterThan(0);
    // Finished prompts resolve at once; unknown ones vanish.
    expect((await worker.attach(promptId, { outputNode: '136' })).images).toEqual(result.images);
    await expect(worker.attach(randomUUID(), { outputNode: '136' })).rejects.toBeInstanceOf(ComfyPromptVanishedError);
  });

  it('reconciles prompt states through history and queue', async () => {
    const rec = recorder();
    const promptId = randomUUID();
    const run = worker.run(promptId, variant(base, { seed: seed++, steps: 400 }), { outputNode: '136', onEvent: rec.onEvent, timeoutMs: 10_000 });
    await rec.waitFor((e) => e.type === 'progress');
    expect(await worker.reconcile(promptId)).toEqual({ state: 'running' });
    expect(await worker.reconcile(randomUUID())).toEqual({ state: 'vanished' });
    await worker.cancel(promptId);
    await expect(run).rejects.toBeInstanceOf(ComfyInterruptedError);
    expect(await worker.reconcile(promptId)).toMatchObject({ state: 'finished', entry: { status: { status_str: 'error' } } });
  });

  it('releases a prompt: run() rejects with the reason, the prompt runs on and can still be cancelled', async () => {
    const rec = recorder();
    const promptId = randomUUID();
    const run = worker.run(promptId, variant(base, { seed: seed++, steps: 400 }), { outputNode: '136', onEvent: rec.onEvent, timeoutMs: 10_000 });
    await rec.waitFor((e) => e.type === 'progress');
    expect(worker.release(promptId, 'moving it elsewhere')).toBe(true);
    const err = await run.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyWorkerStoppedError);
    expect(err).toMatchObject({ code: 'STOPPED', reason: 'moving it elsewhere', promptId });
    expect(worker.inFlight()).toEqual([]);
    expect(worker.release(promptId)).toBe(false);
    expect(await worker.reconcile(promptId)).toEqual({ state: 'running' });
    await worker.cancel(promptId); // not tracked any more: cancelled on ComfyUI all the same
    const entry = await worker.attach(promptId, { outputNode: '136', timeoutMs: 5_000 }).catch((e: unknown) => e);
    expect(entry).toBeInstanceOf(ComfyInterruptedError);
  });

  it('bounds the run with timeoutMs: ComfyRunTimeoutError naming the worker and the limit', async () => {
    const promptId = randomUUID();
    const started = Date.now();
    const err = await worker.run(promptId, variant(base, { seed: seed++, steps: 400 }), { outputNode: '136', timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyRunTimeoutError);
    expect(err).toMatchObject({ waitedMs: 300, worker: sim.url, promptId });
    expect((err as Error).message).toContain(sim.url);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(worker.inFlight()).toEqual([]);
    await worker.cancel(promptId); // the caller decides; leave the simulator idle
    await expect(worker.attach(promptId, { outputNode: '136', timeoutMs: 5_000 })).rejects.toBeInstanceOf(ComfyInterruptedError);
  });
});

describe('ComfyWorker when things go wrong', () => {
  it('recovers the result when the socket is dropped mid-run', async () => {
    const sim = await startSimulator({ port: 0, stepMs: 10 });
    cleanups.push(() => sim.close());
    const worker = await startedWorker(sim.url);
    const prompt = await uploadReference(worker);
    const rec = recorder();
    const promptId = randomUUID();
    const run = worker.run(promptId, variant(prompt, { steps: 40 }), { outputNode: '136', onEvent: rec.onEvent, timeoutMs: 10_000 });
    await rec.waitFor((e) => e.type === 'progress');
    const liveness: string[] = [];
    worker.on('disconnected', () => liveness.push('disconnected'));
    const reconnected = new Promise<void>((resolve) => worker.on('reconnected', resolve));
    sim.dropSockets();
    const result = await run;
    expect(result.images.length).toBeGreaterThan(0);
    await reconnected;
    expect(liveness).toEqual(['disconnected']);
  });

  it('reports a prompt lost to a server restart as vanished, then runs it again under the same id', async () => {
    // ComfyUI keeps input/ and output/ across restarts: give both simulators the same folder.
    const baseDir = await mkdtemp(join(tmpdir(), 'comfy-restart-'));
    cleanups.push(() => rm(baseDir, { recursive: true, force: true }));
    const first = await startSimulator({ port: 0, stepMs: 10, baseDir });
    const { port } = first;
    let current: Simulator = first;
    cleanups.push(() => current.close());
    // Slow polling, so that only the reconnect to the new server reconciles (see below).
    const worker = await startedWorker(first.url, { pollMs: 5_000, silenceMs: 5_000 });
    const prompt = variant(await uploadReference(worker), { steps: 200 });
    const rec = recorder();
    const promptId = randomUUID();
    const run = worker.run(promptId, prompt, { outputNode: '136', onEvent: rec.onEvent, timeoutMs: 15_000 });
    await rec.waitFor((e) => e.type === 'progress');
    // A crashed ComfyUI says nothing, but the simulator's close() interrupts the running prompt
    // and reports it cleanly. Cut the socket first, in the same tick (close() refuses new
    // sockets at once), so that none of that reaches the worker: as after a real crash.
    first.dropSockets();
    await first.close();
    current = await startSimulator({ port, stepMs: 5, baseDir });
    const err = await run.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyPromptVanishedError);
    expect(err).toMatchObject({ code: 'VANISHED', promptId, worker: `http://127.0.0.1:${port}` });

    const again = await worker.run(promptId, variant(prompt, { steps: 3 }), { outputNode: '136', timeoutMs: 10_000 });
    expect(again.promptId).toBe(promptId);
    expect(again.images.length).toBeGreaterThan(0);
  });

  it('fails fast with ComfyUnreachableError when the server is down', async () => {
    const port = await closedPort();
    const url = `http://127.0.0.1:${port}`;
    const worker = new ComfyWorker(url, FAST);
    cleanups.push(() => worker.stop());
    await expect(worker.start()).rejects.toBeInstanceOf(ComfyUnreachableError);
    const started = Date.now();
    const err = await worker.run(randomUUID(), kontextPrompt('x.png'), { outputNode: '136', timeoutMs: 5_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyUnreachableError);
    expect((err as Error).message).toContain(`ComfyUI at ${url} is unreachable: ECONNREFUSED`);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(worker.inFlight()).toEqual([]);
  });

  it('delivers sampler previews as preview events (type 4 and type 1)', async () => {
    const sim = await startSimulator({ port: 0, stepMs: 5, previewMethod: 'auto' });
    cleanups.push(() => sim.close());
    for (const previewMetadata of [true, false]) {
      const worker = await startedWorker(sim.url, { previewMetadata });
      const prompt = await uploadReference(worker);
      const rec = recorder();
      await worker.run(randomUUID(), variant(prompt, { seed: previewMetadata ? 1 : 2, steps: 4 }), { outputNode: '136', onEvent: rec.onEvent, timeoutMs: 10_000 });
      const previews = rec.events.filter((e) => e.type === 'preview');
      expect(previews.length).toBeGreaterThanOrEqual(1);
      for (const p of previews) {
        expect(p.mime).toMatch(/^image\/(jpeg|png)$/);
        expect((await sharp(p.image).metadata()).width).toBeGreaterThan(0);
      }
    }
  });

  it('rejects what is pending when stopped', async () => {
    const sim = await startSimulator({ port: 0, stepMs: 10 });
    cleanups.push(() => sim.close());
    const worker = new ComfyWorker(sim.url, FAST);
    await worker.start();
    const prompt = await uploadReference(worker);
    const rec = recorder();
    const promptId = randomUUID();
    const run = worker.run(promptId, variant(prompt, { steps: 200 }), { outputNode: '136', onEvent: rec.onEvent });
    await rec.waitFor((e) => e.type === 'progress');
    await worker.stop();
    await expect(run).rejects.toBeInstanceOf(ComfyWorkerStoppedError);
    await expect(worker.run(randomUUID(), prompt, { outputNode: '136' })).rejects.toBeInstanceOf(ComfyWorkerStoppedError);
    expect(worker.inFlight()).toEqual([]);
    const http = new ComfyHttpClient(sim.url);
    await http.interrupt(promptId); // the prompt itself outlives the worker
    await http.close();
  });
});

describe('ComfyWorker deadlines: the run is bounded from its start, the wait in the queue separately', () => {
  let sim: Simulator;
  let worker: ComfyWorker;
  let base: ApiPrompt;
  let seed = 5_000;

  beforeAll(async () => {
    // 50 ms per step: a prompt of n steps runs about n × 50 ms.
    sim = await startSimulator({ port: 0, stepMs: 50 });
    worker = new ComfyWorker(sim.url, FAST);
    await worker.start();
    base = await uploadReference(worker);
  });
  afterAll(async () => {
    await worker?.stop();
    await sim?.close();
  });
  afterEach(async () => {
    // Leave an empty queue to the next test.
    const queue = await worker.queue();
    await Promise.all([...queue.queue_pending, ...queue.queue_running].map((item) => worker.cancel(item[1]).catch(() => undefined)));
  });

  it('does not count the time queued behind other prompts against timeoutMs (live messages)', async () => {
    // Five prompts of ~0.5 s each against a 2 s limit: each run is well within it (4x, room for a
    // loaded machine), while the fifth finishes ~2.5 s after its submission.
    const ids = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    const recs = ids.map(() => recorder());
    const results = await Promise.all(
      ids.map((id, i) => worker.run(id, variant(base, { seed: seed++, steps: 10 }), { outputNode: '136', onEvent: recs[i]!.onEvent, timeoutMs: 2_000 })),
    );
    expect(results.map((r) => r.promptId)).toEqual(ids);
    expect(results.every((r) => r.images.length > 0)).toBe(true);
    const last = recs[4]!.events.map((e) => e.type);
    expect(last.indexOf('queued')).toBeGreaterThanOrEqual(0);
    expect(last.indexOf('queued')).toBeLessThan(last.indexOf('started'));
  });

  it('starts the run deadline of an attached prompt when polling finds it running', async () => {
    // Submitted by another client: no messages, the worker learns the start from GET /queue.
    const blocker = randomUUID();
    const promptId = randomUUID();
    await otherClient(sim.url).queuePrompt({ prompt: variant(base, { seed: seed++, steps: 40 }), promptId: blocker }); // ~2 s
    await otherClient(sim.url).queuePrompt({ prompt: variant(base, { seed: seed++, steps: 10 }), promptId }); // ~0.5 s, after ~2 s in the queue
    const rec = recorder();
    // 2 s: four times its own run (room for a loaded machine), less than its wait plus its run.
    const result = await worker.attach(promptId, { outputNode: '136', onEvent: rec.onEvent, timeoutMs: 2_000 });
    expect(result.images.length).toBeGreaterThan(0);
    const types = rec.events.map((e) => e.type);
    expect(types.indexOf('queued')).toBeGreaterThanOrEqual(0);
    expect(types.indexOf('queued')).toBeLessThan(types.indexOf('started'));
  });

  it('times out a prompt that runs longer than timeoutMs, after it started, with ComfyRunTimeoutError', async () => {
    const blockerRec = recorder();
    const blocking = worker.run(randomUUID(), variant(base, { seed: seed++, steps: 40 }), { outputNode: '136', onEvent: blockerRec.onEvent, timeoutMs: 10_000 });
    await blockerRec.waitFor((e) => e.type === 'started');
    const rec = recorder();
    const promptId = randomUUID();
    // ~2 s in the queue, then 200 steps (~10 s) against a 1 s limit.
    const err = await worker.run(promptId, variant(base, { seed: seed++, steps: 200 }), { outputNode: '136', onEvent: rec.onEvent, timeoutMs: 1_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyRunTimeoutError);
    expect(err).toBeInstanceOf(ComfyTimeoutError);
    expect(err).toMatchObject({ code: 'TIMEOUT', promptId, operation: `prompt ${promptId} to finish`, waitedMs: 1_000, worker: sim.url });
    expect((err as Error).message).toBe(`ComfyUI at ${sim.url}: prompt ${promptId} ran for more than 1 s (its limit) without finishing`);
    expect(rec.events.some((e) => e.type === 'started')).toBe(true); // its deadline ran from its start, not from its submission
    expect(rec.events.some((e) => e.type === 'progress')).toBe(true);
    expect((await blocking).images.length).toBeGreaterThan(0);
    expect(worker.inFlight()).toEqual([]);
    expect(await worker.reconcile(promptId)).toEqual({ state: 'running' }); // the caller decides whether to cancel it
  });

  it('gives a prompt found running at attach() its run deadline from then', async () => {
    const promptId = randomUUID();
    await otherClient(sim.url).queuePrompt({ prompt: variant(base, { seed: seed++, steps: 400 }), promptId });
    while ((await worker.reconcile(promptId)).state !== 'running') await sleep(20);
    const rec = recorder();
    const err = await worker.attach(promptId, { outputNode: '136', onEvent: rec.onEvent, timeoutMs: 500, queueTimeoutMs: 60_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyRunTimeoutError);
    expect(err).toMatchObject({ promptId, waitedMs: 500 });
    const types = rec.events.map((e) => e.type);
    expect(types[0]).toBe('started');
    expect(types).not.toContain('queued');
  });

  it('gives up on a prompt stuck in the queue after queueTimeoutMs and removes it from the queue', async () => {
    const blockerRec = recorder();
    const blocker = randomUUID();
    const blocking = worker.run(blocker, variant(base, { seed: seed++, steps: 1_000 }), { outputNode: '136', onEvent: blockerRec.onEvent, timeoutMs: 60_000 });
    await blockerRec.waitFor((e) => e.type === 'progress');
    const rec = recorder();
    const promptId = randomUUID();
    const err = await worker
      .run(promptId, variant(base, { seed: seed++, steps: 3 }), { outputNode: '136', onEvent: rec.onEvent, timeoutMs: 60_000, queueTimeoutMs: 500 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyQueueTimeoutError);
    expect(err).not.toBeInstanceOf(ComfyRunTimeoutError);
    expect(err).toMatchObject({ code: 'TIMEOUT', promptId, removed: true, waitedMs: 500, operation: `prompt ${promptId} to start` });
    expect((err as Error).message).toBe(
      `prompt ${promptId} waited in the queue of ComfyUI at ${sim.url} for 0.5 s without starting; it was removed from that queue`,
    );
    expect(rec.events.some((e) => e.type === 'queued')).toBe(true);
    expect(rec.events.some((e) => e.type === 'started')).toBe(false);
    expect(await worker.reconcile(promptId)).toEqual({ state: 'vanished' }); // deleted: it will never run there
    expect(worker.inFlight()).toEqual([blocker]); // the running prompt is not affected
    await worker.cancel(blocker);
    await expect(blocking).rejects.toBeInstanceOf(ComfyInterruptedError);
  });
});

/**
 * A scripted stand-in for ComfyUI, for what a faithful simulator never does: lose messages, answer
 * `{}` right after `executing null`, drop the connection of a `POST /prompt` it did queue.
 */
async function scriptedComfy(onPrompt: (body: { prompt_id: string; client_id?: string }, reply: (status: number) => void, destroy: () => void) => void) {
  const history = new Map<string, unknown>();
  const queue: { queue_running: unknown[][]; queue_pending: unknown[][] } = { queue_running: [], queue_pending: [] };
  const sockets = new Map<string, WebSocket>();
  let hung = false;
  const server = createHttpServer(async (req, res) => {
    if (hung) return; // like a SIGSTOPped ComfyUI: the connection stays open, no answer comes
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const path = req.url ?? '/';
    const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.method === 'POST' && path === '/prompt') {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { prompt_id: string; client_id?: string };
      onPrompt(body, (status) => json(status, { prompt_id: body.prompt_id, number: 0, node_errors: {} }), () => req.socket.destroy());
    } else if (path.startsWith('/history/')) {
      const id = decodeURIComponent(path.slice('/history/'.length));
      json(200, history.has(id) ? { [id]: history.get(id) } : {});
    } else if (path === '/queue' && req.method === 'GET') json(200, queue);
    else if (path === '/system_stats') json(200, { system: {}, devices: [{ name: 'cpu', type: 'cpu' }] });
    else res.writeHead(200).end();
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    const clientId = new URL(req.url ?? '/', 'http://x').searchParams.get('clientId') ?? '';
    sockets.set(clientId, ws);
    ws.send(JSON.stringify({ type: 'status', data: { status: { exec_info: { queue_remaining: 0 } }, sid: clientId } }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    for (const ws of wss.clients) ws.terminate();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const images = [{ filename: 'ComfyUI_00001_.png', subfolder: '', type: 'output' }];
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    send: (clientId: string | undefined, msg: unknown) => sockets.get(clientId ?? '')?.send(JSON.stringify(msg)),
    setRunning: (id: string) => (queue.queue_running = [[0, id, {}, {}, ['136']]]),
    setPending: (id: string) => queue.queue_pending.push([1, id, {}, {}, ['136']]),
    /** From now on no HTTP request is answered. */
    hang: () => (hung = true),
    /** Ends the prompt with success; `outputs` default: 136's images, as ComfyUI records them. */
    finish: (id: string, outputs: Record<string, unknown> = { '136': { images } }) => {
      queue.queue_running = [];
      history.set(id, {
        prompt: [0, id, {}, {}, ['136']],
        outputs,
        status: { status_str: 'success', completed: true, messages: [['execution_start', { prompt_id: id }], ['execution_success', { prompt_id: id }]] },
        meta: {},
      });
    },
    images,
  };
}

describe('ComfyWorker against a scripted server that loses things', () => {
  it('reads history again when it is still {} right after executing null', async () => {
    const comfy = await scriptedComfy((body, reply) => {
      comfy.setRunning(body.prompt_id);
      reply(200);
      comfy.send(body.client_id, { type: 'execution_start', data: { prompt_id: body.prompt_id } });
      comfy.send(body.client_id, { type: 'executing', data: { node: null, prompt_id: 'someone-else' } });
      comfy.send(body.client_id, { type: 'executing', data: { node: null, prompt_id: body.prompt_id } });
      setTimeout(() => comfy.finish(body.prompt_id), 300);
    });
    const worker = await startedWorker(comfy.url, { silenceMs: 60_000 });
    const result = await worker.run(randomUUID(), kontextPrompt('x.png'), { outputNode: '136', timeoutMs: 5_000 });
    expect(result.images).toEqual(comfy.images);
  });

  it('reconciles a prompt whose messages never come, after silenceMs', async () => {
    const comfy = await scriptedComfy((body, reply) => {
      comfy.setRunning(body.prompt_id);
      reply(200);
      setTimeout(() => comfy.finish(body.prompt_id), 100); // and not a single WebSocket message
    });
    const worker = await startedWorker(comfy.url, { silenceMs: 400 });
    const started = Date.now();
    const result = await worker.run(randomUUID(), kontextPrompt('x.png'), { outputNode: '136', timeoutMs: 5_000 });
    expect(result.images).toEqual(comfy.images);
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
  });

  it('follows a prompt whose POST /prompt lost its reply but which was queued', async () => {
    const comfy = await scriptedComfy((body, _reply, destroy) => {
      comfy.setRunning(body.prompt_id);
      destroy();
      setTimeout(() => comfy.finish(body.prompt_id), 100);
    });
    const worker = await startedWorker(comfy.url, { silenceMs: 300 });
    const result = await worker.run(randomUUID(), kontextPrompt('x.png'), { outputNode: '136', timeoutMs: 5_000 });
    expect(result.images).toEqual(comfy.images);
  });

  it('gives up on a queued prompt when the server stops answering, saying it may still run', async () => {
    const comfy = await scriptedComfy((body, reply) => {
      comfy.setPending(body.prompt_id); // behind something that never ends
      reply(200);
      comfy.hang();
    });
    const worker = await startedWorker(comfy.url, { timeoutMs: 300, silenceMs: 60_000 });
    const promptId = randomUUID();
    const err = await worker.run(promptId, kontextPrompt('x.png'), { outputNode: '136', timeoutMs: 60_000, queueTimeoutMs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyQueueTimeoutError);
    expect(err).toMatchObject({ promptId, removed: false });
    expect((err as Error).message).toBe(
      `prompt ${promptId} waited in the queue of ComfyUI at ${comfy.url} for 0.5 s without starting; it could not be removed from that queue and may still run`,
    );
    expect(worker.inFlight()).toEqual([]);
  });

  it('takes the images of the `executed` message when history records no outputs', async () => {
    const seen = [{ filename: 'kontext_00007_.png', subfolder: 'kontext', type: 'output' }];
    const comfy = await scriptedComfy((body, reply) => {
      comfy.setRunning(body.prompt_id);
      reply(200);
      comfy.send(body.client_id, { type: 'execution_start', data: { prompt_id: body.prompt_id } });
      comfy.send(body.client_id, { type: 'executing', data: { node: '136', display_node: '136', prompt_id: body.prompt_id } });
      comfy.send(body.client_id, { type: 'executed', data: { node: '136', display_node: '136', output: { images: seen }, prompt_id: body.prompt_id } });
      comfy.finish(body.prompt_id, { '9': { images: comfy.images } }); // outputs of another node only
      comfy.send(body.client_id, { type: 'executing', data: { node: null, prompt_id: body.prompt_id } });
    });
    const worker = await startedWorker(comfy.url, { silenceMs: 60_000 });
    const result = await worker.run(randomUUID(), kontextPrompt('x.png'), { outputNode: '136', timeoutMs: 5_000 });
    expect(result.images).toEqual(seen);
    expect(result.cached).toBe(false);
  });

  it('fails with ComfyBadReplyError when neither history nor an `executed` message has the images', async () => {
    const comfy = await scriptedComfy((body, reply) => {
      comfy.setRunning(body.prompt_id);
      reply(200);
      comfy.send(body.client_id, { type: 'execution_start', data: { prompt_id: body.prompt_id } });
      comfy.finish(body.prompt_id, {});
      comfy.send(body.client_id, { type: 'executing', data: { node: null, prompt_id: body.prompt_id } });
    });
    const worker = await startedWorker(comfy.url, { silenceMs: 60_000 });
    const promptId = randomUUID();
    const err = await worker.run(promptId, kontextPrompt('x.png'), { outputNode: '136', timeoutMs: 5_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyBadReplyError);
    expect((err as Error).message).toContain(`prompt ${promptId} succeeded but output node 136 has no images`);
  });

  it('sends POST /prompt again when a dropped connection provably never delivered it', async () => {
    let posts = 0;
    const comfy = await scriptedComfy((body, reply, destroy) => {
      if (++posts === 1) return destroy();
      reply(200);
      comfy.finish(body.prompt_id);
      comfy.send(body.client_id, { type: 'executing', data: { node: null, prompt_id: body.prompt_id } });
    });
    const worker = await startedWorker(comfy.url);
    const result = await worker.run(randomUUID(), kontextPrompt('x.png'), { outputNode: '136', timeoutMs: 5_000 });
    expect(result.images).toEqual(comfy.images);
    expect(posts).toBe(2);
  });
});
