/**
 * Contract tests of ComfyHttpClient over real HTTP: the protocol against the simulator, and
 * transport faults (silence, resets, garbage replies, broken downloads) against a bare
 * `node:http` server scripted per test.
 */
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ComfyBadReplyError,
  ComfyHttpError,
  ComfyTimeoutError,
  ComfyUnreachableError,
  ComfyValidationError,
} from '../src/comfyui/errors.js';
import { ComfyHttpClient, PARTIAL_VALIDATION_ERROR_TYPE } from '../src/comfyui/http-client.js';
import type { ApiPrompt, HistoryEntry } from '../src/comfyui/protocol.js';
import { startSimulator } from '../simulator/server.js';
import { kontextPrompt } from './helpers/kontext-prompt.js';
import { closedPort } from './helpers/ports.js';

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'comfy-http-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function client(url: string, options?: ConstructorParameters<typeof ComfyHttpClient>[1]): ComfyHttpClient {
  const c = new ComfyHttpClient(url, options);
  cleanups.push(() => c.close());
  return c;
}

/** A bare HTTP server; `handler` answers each request and may misbehave. Counts requests. */
async function fakeServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, requests };
}


describe('ComfyHttpClient against a misbehaving server', () => {
  it('reports a closed port as ComfyUnreachableError naming the URL', async () => {
    const port = await closedPort();
    const c = client(`http://127.0.0.1:${port}`);
    const err = await c.getQueue().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyUnreachableError);
    expect((err as ComfyUnreachableError).code).toBe('UNREACHABLE');
    expect((err as Error).message).toContain(`ComfyUI at http://127.0.0.1:${port} is unreachable: ECONNREFUSED`);
  });

  it('times out a server that never answers, naming the operation and the time waited', async () => {
    const server = await fakeServer(() => undefined);
    const c = client(server.url, { timeoutMs: 200 });
    const started = Date.now();
    const err = await c.getHistory('abc').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyTimeoutError);
    expect((err as ComfyTimeoutError).waitedMs).toBe(200);
    expect((err as Error).message).toContain('GET /history/abc');
    expect((err as Error).message).toContain(server.url);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('maps unexpected statuses, non-JSON and wrongly shaped replies to typed errors', async () => {
    const server = await fakeServer((req, res) => {
      if (req.url === '/queue') {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('500 Internal Server Error\n\nServer got itself in trouble');
      } else if (req.url === '/system_stats') {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html>proxy login</html>');
      } else if (req.url === '/object_info') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"KSampler": {"input": 5, "name": "KSampler"}}');
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"other-id": {"prompt": [], "outputs": {}}}');
      }
    });
    const c = client(server.url);
    const http = await c.getQueue().catch((e: unknown) => e);
    expect(http).toBeInstanceOf(ComfyHttpError);
    expect(http).toMatchObject({ status: 500, code: 'HTTP' });
    expect((http as Error).message).toContain('Server got itself in trouble');
    await expect(c.systemStats()).rejects.toThrow(/not JSON: <html>proxy login/);
    await expect(c.systemStats()).rejects.toBeInstanceOf(ComfyBadReplyError);
    await expect(c.objectInfo()).rejects.toThrow(/KSampler\.input/);
    await expect(c.getHistory('mine')).rejects.toThrow(/history for another prompt/);
  });

  it('retries a GET once on a dropped connection, but never POST /prompt', async () => {
    const server = await fakeServer((req) => req.socket.destroy());
    const c = client(server.url);
    await expect(c.getQueue()).rejects.toBeInstanceOf(ComfyUnreachableError);
    expect(server.requests.filter((r) => r === 'GET /queue')).toHaveLength(2);
    await expect(c.queuePrompt({ prompt: {}, promptId: 'p1' })).rejects.toBeInstanceOf(ComfyUnreachableError);
    expect(server.requests.filter((r) => r === 'POST /prompt')).toHaveLength(1);
  });

  it('leaves no file behind when a download fails, is too large, or is missing', async () => {
    const body = Buffer.alloc(64 * 1024, 7);
    const server = await fakeServer((req, res) => {
      const name = new URL(req.url ?? '/', 'http://x').searchParams.get('filename');
      if (name === 'ok.png') {
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': body.length }).end(body);
      } else if (name === 'chunked.png') {
        res.writeHead(200, { 'content-type': 'image/png' });
        res.write(body);
        res.end(body);
      } else if (name === 'broken.png') {
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': body.length * 2 });
        res.write(body, () => setTimeout(() => req.socket.destroy(), 20));
      } else {
        res.writeHead(404).end();
      }
    });
    const dir = await tempDir();
    const c = client(server.url);
    const file = (filename: string) => ({ filename, subfolder: '', type: 'output' });

    await expect(c.downloadView(file('broken.png'), join(dir, 'a.png'))).rejects.toBeInstanceOf(ComfyUnreachableError);
    await expect(c.downloadView(file('ok.png'), join(dir, 'b.png'), { maxBytes: 1_000 })).rejects.toThrow(/exceeds the limit of 1000/);
    await expect(c.downloadView(file('chunked.png'), join(dir, 'c.png'), { maxBytes: body.length + 10 })).rejects.toBeInstanceOf(ComfyBadReplyError);
    await expect(c.downloadView(file('gone.png'), join(dir, 'd.png'))).rejects.toMatchObject({ code: 'HTTP', status: 404 });
    expect(await readdir(dir)).toEqual([]);

    expect(await c.downloadView(file('ok.png'), join(dir, 'e.png'))).toEqual({ bytes: body.length, contentType: 'image/png' });
    expect(await readdir(dir)).toEqual(['e.png']);
    expect((await readFile(join(dir, 'e.png'))).equals(body)).toBe(true);
  });

  it('keeps a path prefix of the base URL', async () => {
    const server = await fakeServer((req, res) => {
      if (req.url === '/api/queue') res.writeHead(200, { 'content-type': 'application/json' }).end('{"queue_running": [], "queue_pending": []}');
      else res.writeHead(404).end();
    });
    const c = client(`${server.url}/api/`);
    expect(c.baseUrl).toBe(`${server.url}/api`);
    expect(await c.getQueue()).toEqual({ queue_running: [], queue_pending: [] });
  });
});

describe('ComfyHttpClient removing a partly accepted prompt', () => {
  it('deletes it from the queue, then interrupts it in case it already runs, both by its id', async () => {
    // A running prompt cannot be made to order on the simulator: the calls are checked on the wire.
    const calls: string[] = [];
    const server = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      calls.push(`${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`);
      if (req.url === '/prompt') {
        const { prompt_id } = JSON.parse(Buffer.concat(chunks).toString()) as { prompt_id: string };
        const nodeErrors = { '199': { errors: [{ type: 'required_input_missing', message: 'Required input is missing', details: 'filename_prefix', extra_info: { input_name: 'filename_prefix' } }], dependent_outputs: ['199'], class_type: 'SaveImage' } };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ prompt_id, number: 3, node_errors: nodeErrors }));
      } else res.writeHead(200).end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const c = client(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
    const err = await c.queuePrompt({ prompt: kontextPrompt('x.png'), promptId: 'p-partial' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyValidationError);
    expect((err as ComfyValidationError).errorType).toBe(PARTIAL_VALIDATION_ERROR_TYPE);
    expect(calls.slice(1)).toEqual(['POST /queue {"delete":["p-partial"]}', 'POST /interrupt {"prompt_id":"p-partial"}']);
  });
});

describe('ComfyHttpClient against the simulator', () => {
  let sim: Awaited<ReturnType<typeof startSimulator>>;
  let http: ComfyHttpClient;
  let base: ApiPrompt;
  let dir: string;

  beforeAll(async () => {
    sim = await startSimulator({ port: 0, stepMs: 5 });
    http = new ComfyHttpClient(sim.url);
    const png = await sharp({ create: { width: 96, height: 64, channels: 3, background: { r: 200, g: 40, b: 40 } } }).png().toBuffer();
    const uploaded = await http.uploadImage(png, 'kontext_input.png', { overwrite: true });
    base = kontextPrompt(uploaded.name);
    dir = await mkdtemp(join(tmpdir(), 'comfy-http-sim-'));
  });
  afterAll(async () => {
    await http?.close();
    await sim?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('uploads an image and gets the same name back for the same content', async () => {
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 1, g: 2, b: 3 } } }).png().toBuffer();
    const first = await http.uploadImage(png, 'same.png');
    expect(first).toEqual({ name: 'same.png', subfolder: '', type: 'input' });
    expect((await http.uploadImage(png, 'same.png')).name).toBe('same.png');
  });

  it('answers system_stats, object_info, an empty queue and {} history for unknown ids', async () => {
    expect((await http.systemStats()).devices.length).toBeGreaterThan(0);
    const info = await http.objectInfo();
    expect(info['KSampler']?.input.required).toHaveProperty('steps');
    expect(await http.getHistory('no-such-prompt')).toBeUndefined();
    expect(await http.getQueue()).toEqual({ queue_running: [], queue_pending: [] });
  });

  it('runs a prompt and downloads a real PNG', async () => {
    const promptId = crypto.randomUUID();
    const accepted = await http.queuePrompt({ prompt: withSeed(base, 1), promptId });
    expect(accepted).toMatchObject({ prompt_id: promptId, node_errors: {} });
    const entry = await waitForHistory(http, promptId);
    expect(entry.status?.status_str).toBe('success');
    const image = entry.outputs['136']?.images?.[0];
    expect(image).toBeDefined();
    const dest = join(dir, 'result.png');
    const { bytes, contentType } = await http.downloadView(image!, dest);
    expect(contentType).toBe('image/png');
    const data = await readFile(dest);
    expect(data.length).toBe(bytes);
    expect(data.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
    expect((await sharp(data).metadata()).format).toBe('png');
  });

  it('turns a 400 into ComfyValidationError naming node, class and input', async () => {
    const badModel = structuredClone(base);
    badModel['37']!.inputs['unet_name'] = 'does-not-exist.safetensors';
    const err = await http.queuePrompt({ prompt: badModel, promptId: crypto.randomUUID() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyValidationError);
    const validation = err as ComfyValidationError;
    expect(validation.errorType).toBe('prompt_outputs_failed_validation');
    expect(validation.problems).toContainEqual(
      expect.objectContaining({ nodeId: '37', classType: 'UNETLoader', inputName: 'unet_name', type: 'value_not_in_list' }),
    );
    expect(validation.message).toMatch(/node 37 \(UNETLoader\) input unet_name: Value not in list: unet_name: 'does-not-exist.safetensors' not in/);

    const missing = structuredClone(base);
    delete missing['31']!.inputs['steps'];
    const err2 = (await http.queuePrompt({ prompt: missing, promptId: crypto.randomUUID() }).catch((e: unknown) => e)) as ComfyValidationError;
    expect(err2.problems).toContainEqual(expect.objectContaining({ nodeId: '31', classType: 'KSampler', inputName: 'steps', type: 'required_input_missing' }));
    expect(err2.message).toContain('node 31 (KSampler) input steps: Required input is missing');
  });

  it('treats a 200 with node_errors as a failure and removes the partial prompt before it runs', async () => {
    // A second output node that fails validation while 136 passes: ComfyUI would run 136 alone.
    const partial = structuredClone(withSeed(base, 2));
    partial['199'] = { class_type: 'SaveImage', inputs: { images: ['8', 0] } };
    // Behind a long prompt, so the partial one is surely still waiting when the client deletes it.
    const blocker = crypto.randomUUID();
    await http.queuePrompt({ prompt: withSteps(withSeed(base, 5), 2_000), promptId: blocker });
    const promptId = crypto.randomUUID();
    const err = await http.queuePrompt({ prompt: partial, promptId }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComfyValidationError);
    expect((err as ComfyValidationError).errorType).toBe(PARTIAL_VALIDATION_ERROR_TYPE);
    expect((err as ComfyValidationError).problems).toContainEqual(expect.objectContaining({ nodeId: '199', classType: 'SaveImage', inputName: 'filename_prefix' }));
    const queue = await http.getQueue();
    expect(queue.queue_running.map((item) => item[1])).toEqual([blocker]);
    expect(queue.queue_pending.map((item) => item[1])).not.toContain(promptId);
    await http.interrupt(blocker);
    expect((await waitForHistory(http, blocker)).status?.messages.at(-1)?.[0]).toBe('execution_interrupted');
    // With the queue empty a prompt still in it would have run and left history; this one never ran.
    await waitForEmptyQueue(http);
    expect(await http.getHistory(promptId)).toBeUndefined();
  });

  it('deletes a pending prompt and interrupts a running one', async () => {
    const running = crypto.randomUUID();
    const pending = crypto.randomUUID();
    await http.queuePrompt({ prompt: withSteps(withSeed(base, 3), 200), promptId: running });
    await http.queuePrompt({ prompt: withSeed(base, 4), promptId: pending });
    await http.deleteQueued([pending]);
    const queue = await http.getQueue();
    expect(queue.queue_pending.map((item) => item[1])).not.toContain(pending);
    await http.interrupt(running);
    const entry = await waitForHistory(http, running);
    expect(entry.status?.messages.at(-1)?.[0]).toBe('execution_interrupted');
    expect(await http.getHistory(pending)).toBeUndefined();
  });
});

async function waitForEmptyQueue(http: ComfyHttpClient, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  for (;;) {
    const queue = await http.getQueue();
    if (queue.queue_running.length === 0 && queue.queue_pending.length === 0) return;
    if (Date.now() - started > timeoutMs) throw new Error(`queue not empty after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function waitForHistory(http: ComfyHttpClient, promptId: string, timeoutMs = 10_000): Promise<HistoryEntry> {
  const started = Date.now();
  for (;;) {
    const entry = await http.getHistory(promptId);
    if (entry) return entry;
    if (Date.now() - started > timeoutMs) throw new Error(`no history for ${promptId}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function withSeed(prompt: ApiPrompt, seed: number): ApiPrompt {
  const copy = structuredClone(prompt);
  copy['31']!.inputs['seed'] = seed;
  return copy;
}

function withSteps(prompt: ApiPrompt, steps: number): ApiPrompt {
  const copy = structuredClone(prompt);
  copy['31']!.inputs['steps'] = steps;
  return copy;
}
