/**
 * Route-level behaviour of the ComfyUI simulator over real HTTP and WebSockets: validation errors,
 * partial 200, /view and /upload/image rules, history and queue semantics, WebSocket routing
 * quirks, deterministic outputs, restart, and the simulated sampler failure. Expected values are
 * the ones recorded from ComfyUI 0.3.64 (test/fixtures/comfyui/transcripts/verify_protocol.json).
 */
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type PyDict, pyLoads } from '../simulator/py.js';
import { type Simulator, startSimulator } from '../simulator/server.js';
import { referencePng } from './helpers/transcripts.js';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

type Json = Record<string, unknown>;
interface WsMsg {
  type: string;
  data: Json;
}

/** A WebSocket client that records everything it receives. */
class Client {
  readonly messages: Array<WsMsg | { binary: Buffer }> = [];
  readonly texts: string[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer, isBinary: boolean) => {
      if (isBinary) this.messages.push({ binary: d });
      else {
        this.texts.push(d.toString());
        this.messages.push(JSON.parse(d.toString()) as WsMsg);
      }
    });
  }

  static async open(sim: Simulator, clientId?: string, onOpen?: (ws: WebSocket) => void): Promise<Client> {
    const ws = new WebSocket(`${sim.url.replace(/^http/, 'ws')}/ws${clientId === undefined ? '' : `?clientId=${clientId}`}`);
    const c = new Client(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => {
        onOpen?.(ws);
        resolve();
      });
      ws.once('error', reject);
    });
    await c.waitFor((m) => m.type === 'status');
    return c;
  }

  json(): WsMsg[] {
    return this.messages.filter((m): m is WsMsg => 'type' in m);
  }

  async waitFor(pred: (m: WsMsg) => boolean, timeoutMs = 10_000): Promise<WsMsg> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.json().find(pred);
      if (hit) return hit;
      if (Date.now() > end) throw new Error(`no matching message; got ${this.json().map((m) => m.type).join(',')}`);
      await delay(3);
    }
  }

  /** Labels like index.json: status(q=N), executing(X), binary:1 ... */
  labels(): string[] {
    return this.messages.map((m) => {
      if ('binary' in m) return `bin${m.binary.readUInt32BE(0)}`;
      const d = m.data;
      if (m.type === 'status') return `status(q=${String((d.status as Json & { exec_info: Json }).exec_info.queue_remaining)})`;
      if (m.type === 'executing') return `executing(${d.node === null ? 'None' : String(d.node)})`;
      if (m.type === 'executed') return `executed(${String(d.node)})`;
      if (m.type === 'execution_cached') return `execution_cached(${(d.nodes as unknown[]).length})`;
      return m.type;
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

async function post(sim: Simulator, route: string, body: unknown): Promise<{ status: number; json: Json; text: string; type: string }> {
  const res = await fetch(sim.url + route, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: Json = {};
  try {
    json = JSON.parse(text) as Json;
  } catch {
    // not JSON
  }
  return { status: res.status, json, text, type: res.headers.get('content-type') ?? '' };
}

async function get(sim: Simulator, route: string): Promise<{ status: number; json: Json; body: Buffer; headers: Headers }> {
  const res = await fetch(sim.url + route);
  const body = Buffer.from(await res.arrayBuffer());
  let json: Json = {};
  try {
    json = JSON.parse(body.toString()) as Json;
  } catch {
    // not JSON
  }
  return { status: res.status, json, body, headers: res.headers };
}

async function upload(
  sim: Simulator,
  name: string,
  data: Buffer,
  fields: Record<string, string> = {},
): Promise<{ status: number; json: Json; text: string }> {
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(data)], { type: 'image/png' }), name);
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const res = await fetch(`${sim.url}/upload/image`, { method: 'POST', body: form });
  const text = await res.text();
  let json: Json = {};
  try {
    json = JSON.parse(text) as Json;
  } catch {
    // not JSON
  }
  return { status: res.status, json, text };
}

async function history(sim: Simulator, id: string): Promise<Json> {
  return (await get(sim, `/history/${id}`)).json;
}

async function waitHistory(sim: Simulator, id: string, timeoutMs = 15_000): Promise<Json & { status: Json; outputs: Json; prompt: unknown[] }> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const h = await history(sim, id);
    if (h[id]) return h[id] as Json & { status: Json; outputs: Json; prompt: unknown[] };
    if (Date.now() > end) throw new Error(`no history for ${id}`);
    await delay(10);
  }
}

interface PromptOpts {
  text?: string;
  seed?: number;
  steps?: number;
  batch?: number;
  width?: number;
  height?: number;
  image?: string;
  /** true: the template's wiring (latent from VAEEncode); false: an EmptySD3LatentImage 188. */
  templateLatent?: boolean;
  prefix?: string;
}

/** The 14-node Kontext test graph of the transcripts. */
function kontext(o: PromptOpts = {}): Json {
  const p: Json = {
    '6': { class_type: 'CLIPTextEncode', inputs: { text: o.text ?? 'make the car red', clip: ['38', 0] } },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['31', 0], vae: ['39', 0] } },
    '31': {
      class_type: 'KSampler',
      inputs: {
        seed: o.seed ?? 42, steps: o.steps ?? 4, cfg: 1, sampler_name: 'euler', scheduler: 'simple', denoise: 1,
        model: ['37', 0], positive: ['35', 0], negative: ['135', 0], latent_image: o.templateLatent ? ['124', 0] : ['188', 0],
      },
    },
    '35': { class_type: 'FluxGuidance', inputs: { guidance: 2.5, conditioning: ['177', 0] } },
    '37': { class_type: 'UNETLoader', inputs: { unet_name: 'flux1-dev-kontext_fp8_scaled.safetensors', weight_dtype: 'default' } },
    '38': { class_type: 'DualCLIPLoader', inputs: { clip_name1: 'clip_l.safetensors', clip_name2: 't5xxl_fp8_e4m3fn_scaled.safetensors', type: 'flux', device: 'default' } },
    '39': { class_type: 'VAELoader', inputs: { vae_name: 'ae.safetensors' } },
    '42': { class_type: 'FluxKontextImageScale', inputs: { image: ['142', 0] } },
    '124': { class_type: 'VAEEncode', inputs: { pixels: ['42', 0], vae: ['39', 0] } },
    '135': { class_type: 'ConditioningZeroOut', inputs: { conditioning: ['6', 0] } },
    '136': { class_type: 'SaveImage', inputs: { filename_prefix: o.prefix ?? 'ComfyUI', images: ['8', 0] } },
    '142': { class_type: 'LoadImage', inputs: { image: o.image ?? 'kontext_input.png' } },
    '177': { class_type: 'ReferenceLatent', inputs: { conditioning: ['6', 0], latent: ['124', 0] } },
  };
  if (!o.templateLatent) {
    p['188'] = { class_type: 'EmptySD3LatentImage', inputs: { width: o.width ?? 256, height: o.height ?? 256, batch_size: o.batch ?? 1 } };
  }
  return p;
}

/** Adds the template's PreviewImage 173 of the scaled input. */
function withPreview(p: Json): Json {
  return { ...p, '173': { class_type: 'PreviewImage', inputs: { images: ['42', 0] } } };
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

async function newSim(extra: Parameters<typeof startSimulator>[0] = {}): Promise<Simulator> {
  const sim = await startSimulator({ port: 0, stepMs: 5, ...extra });
  const res = await upload(sim, 'kontext_input.png', await referencePng());
  expect(res.status).toBe(200);
  return sim;
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

describe('POST /prompt validation', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await newSim();
  });
  afterAll(() => sim.close());

  const failing = async (mutate: (p: Json) => void): Promise<Json> => {
    const p = clone(kontext());
    mutate(p);
    const r = await post(sim, '/prompt', { prompt: p });
    expect(r.status).toBe(400);
    return r.json;
  };
  const node = (p: Json, id: string): Json & { inputs: Json } => p[id] as Json & { inputs: Json };
  const failedValidation = { type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: '', extra_info: {} };

  it('value_smaller_than_min and value_bigger_than_max (floats print as floats)', async () => {
    expect(await failing((p) => (node(p, '31').inputs.steps = 0))).toEqual({
      error: failedValidation,
      node_errors: {
        '31': {
          errors: [{
            type: 'value_smaller_than_min', message: 'Value 0 smaller than min of 1', details: 'steps',
            extra_info: { input_name: 'steps', input_config: ['INT', { default: 20, min: 1, max: 10000, tooltip: 'The number of steps used in the denoising process.' }], received_value: 0 },
          }],
          dependent_outputs: ['136'],
          class_type: 'KSampler',
        },
      },
    });
    const r = await post(sim, '/prompt', { prompt: { ...kontext(), '31': { ...node(kontext(), '31'), inputs: { ...node(kontext(), '31').inputs, cfg: 1000 } } } });
    expect(r.text).toContain('"message": "Value 1000.0 bigger than max of 100.0"');
    expect(r.text).toContain('"received_value": 1000.0');
    expect(r.text).toContain('"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01');
  });

  it('bad_linked_input, return_type_mismatch, required_input_missing, invalid_input_type', async () => {
    const bad = (await failing((p) => (node(p, '31').inputs.model = ['37', 0, 1]))) as { node_errors: Record<string, { errors: Json[] }> };
    expect(bad.node_errors['31']?.errors[0]).toEqual({
      type: 'bad_linked_input', message: 'Bad linked input, must be a length-2 list of [node_id, slot_index]', details: 'model',
      extra_info: { input_name: 'model', input_config: ['MODEL', { tooltip: 'The model used for denoising the input latent.' }], received_value: ['37', 0, 1] },
    });
    const mismatch = (await failing((p) => (node(p, '31').inputs.model = ['39', 0]))) as { node_errors: Record<string, { errors: Json[] }> };
    expect(mismatch.node_errors['31']?.errors[0]).toEqual({
      type: 'return_type_mismatch', message: 'Return type mismatch between linked nodes', details: 'model, received_type(VAE) mismatch input_type(MODEL)',
      extra_info: { input_name: 'model', input_config: ['MODEL', { tooltip: 'The model used for denoising the input latent.' }], received_type: 'VAE', linked_node: ['39', 0] },
    });
    const missing = (await failing((p) => delete node(p, '31').inputs.steps)) as { node_errors: Record<string, { errors: Json[] }> };
    expect(missing.node_errors['31']?.errors[0]).toEqual({ type: 'required_input_missing', message: 'Required input is missing', details: 'steps', extra_info: { input_name: 'steps' } });
    const conv = (await failing((p) => (node(p, '31').inputs.steps = 'abc'))) as { node_errors: Record<string, { errors: Json[] }> };
    expect(conv.node_errors['31']?.errors[0]).toMatchObject({
      type: 'invalid_input_type', message: 'Failed to convert an input value to a INT value', details: "steps, abc, invalid literal for int() with base 10: 'abc'",
      extra_info: { input_name: 'steps', received_value: 'abc', exception_message: "invalid literal for int() with base 10: 'abc'" },
    });
  });

  it('value_not_in_list: short lists inline, long lists by length with input_config null', async () => {
    const unet = (await failing((p) => (node(p, '37').inputs.unet_name = 'does-not-exist.safetensors'))) as Json;
    expect(unet).toEqual({
      error: failedValidation,
      node_errors: {
        '37': {
          errors: [{
            type: 'value_not_in_list', message: 'Value not in list', details: "unet_name: 'does-not-exist.safetensors' not in ['flux1-dev-kontext_fp8_scaled.safetensors']",
            extra_info: { input_name: 'unet_name', input_config: [['flux1-dev-kontext_fp8_scaled.safetensors'], {}], received_value: 'does-not-exist.safetensors' },
          }],
          dependent_outputs: ['136'],
          class_type: 'UNETLoader',
        },
      },
    });
    const sampler = (await failing((p) => (node(p, '31').inputs.sampler_name = 'nope'))) as { node_errors: Record<string, { errors: Json[] }> };
    expect(sampler.node_errors['31']?.errors[0]).toEqual({
      type: 'value_not_in_list', message: 'Value not in list', details: "sampler_name: 'nope' not in (list of length 42)",
      extra_info: { input_name: 'sampler_name', input_config: null, received_value: 'nope' },
    });
  });

  it('custom_validation_failed for a missing LoadImage file; exceptions for links to missing nodes', async () => {
    const img = (await failing((p) => (node(p, '142').inputs.image = 'no-such-file.png'))) as Json;
    expect(img.node_errors).toEqual({
      '142': {
        errors: [{ type: 'custom_validation_failed', message: 'Custom validation failed for node', details: 'image - Invalid image file: no-such-file.png', extra_info: { input_name: 'image' } }],
        dependent_outputs: ['136'],
        class_type: 'LoadImage',
      },
    });
    const inner = (await failing((p) => (node(p, '31').inputs.model = ['999', 0]))) as { node_errors: Record<string, { errors: Array<Json & { extra_info: Json }> }> };
    expect(inner.node_errors['31']?.errors[0]).toMatchObject({
      type: 'exception_during_inner_validation', message: 'Exception when validating inner node', details: "'999'",
      extra_info: { input_name: 'samples', input_config: ['LATENT', { tooltip: 'The latent to be decoded.' }], exception_message: "'999'", exception_type: 'KeyError', linked_node: ['31', 0] },
    });
    expect(Array.isArray(inner.node_errors['31']?.errors[0]?.extra_info.traceback)).toBe(true);
    const numeric = (await failing((p) => (node(p, '31').inputs.model = [37, 0]))) as { node_errors: Record<string, { errors: Json[] }> };
    expect(numeric.node_errors['31']?.errors[0]).toMatchObject({ details: '37', extra_info: { exception_type: 'KeyError' } });
    const outer = (await failing((p) => (node(p, '136').inputs.images = ['999', 0]))) as Json & { error: Json; node_errors: Record<string, { errors: Json[] }> };
    expect(outer.error).toEqual({ ...failedValidation, details: "Exception when validating node: '999'" });
    expect(outer.node_errors['136']).toMatchObject({ errors: [{ type: 'exception_during_validation', message: 'Exception when validating node', details: "'999'", extra_info: { exception_type: 'KeyError' } }], dependent_outputs: ['136'], class_type: 'SaveImage' });
  });

  it('invalid_prompt, no_prompt, prompt_no_outputs, and a body that is not JSON', async () => {
    expect((await post(sim, '/prompt', { prompt: { '1': { class_type: 'NoSuchNode', inputs: {} } } })).json).toEqual({
      error: { type: 'invalid_prompt', message: 'Cannot execute because node NoSuchNode does not exist.', details: "Node ID '#1'", extra_info: {} },
      node_errors: {},
    });
    expect((await post(sim, '/prompt', { prompt: { '1': { inputs: {} } } })).json).toEqual({
      error: { type: 'invalid_prompt', message: 'Cannot execute because a node is missing the class_type property.', details: "Node ID '#1'", extra_info: {} },
      node_errors: {},
    });
    expect((await post(sim, '/prompt', { client_id: 'x' })).json).toEqual({
      error: { type: 'no_prompt', message: 'No prompt provided', details: 'No prompt provided', extra_info: {} },
      node_errors: {},
    });
    for (const targets of [[], ['31']]) {
      const r = await post(sim, '/prompt', { prompt: kontext(), partial_execution_targets: targets });
      expect(r.status).toBe(400);
      expect(r.json.error).toEqual({ type: 'prompt_no_outputs', message: 'Prompt has no outputs', details: '', extra_info: {} });
    }
    const bad = await post(sim, '/prompt', 'not json');
    expect([bad.status, bad.type, bad.text]).toEqual([500, 'text/plain; charset=utf-8', '500 Internal Server Error\n\nServer got itself in trouble']);
  });

  it('dependent_outputs over-reports: every failing output is added to every node that failed before', async () => {
    const p = withPreview(kontext());
    (p['37'] as { inputs: Json }).inputs.unet_name = 'missing.safetensors';
    (p['142'] as { inputs: Json }).inputs.image = 'missing.png';
    const r = await post(sim, '/prompt', { prompt: p });
    expect(r.status).toBe(400);
    const errs = r.json.node_errors as Record<string, { dependent_outputs: string[] }>;
    expect(Object.keys(errs).sort()).toEqual(['142', '37']);
    expect(errs['142']?.dependent_outputs).toEqual(['136', '173']);
    expect(errs['37']?.dependent_outputs).toEqual(['136', '173']);
  });

  it('converts values and writes them back (INT, FLOAT, BOOLEAN "false" → true); the counter advances on every POST without number', async () => {
    const p = clone(kontext()) as Record<string, { inputs: Json }>;
    p['31']!.inputs.steps = '3';
    p['31']!.inputs.cfg = '1';
    (p as Json)['146'] = { class_type: 'ImageStitch', inputs: { image1: ['142', 0], direction: 'right', match_image_size: 'false', spacing_width: 0, spacing_color: 'white' } };
    p['42']!.inputs.image = ['146', 0];
    const first = await post(sim, '/prompt', { prompt: p, client_id: 'conv' });
    expect(first.status).toBe(200);
    const id = String(first.json.prompt_id);
    const h = await waitHistory(sim, id);
    const prompt = (h.prompt as [number, string, Record<string, { inputs: Json }>])[2];
    expect(prompt['31']?.inputs.steps).toBe(3);
    expect(prompt['146']?.inputs.match_image_size).toBe(true);
    const raw = (await get(sim, `/history/${id}`)).body.toString();
    expect(raw).toContain('"steps": 3, "cfg": 1.0');
    const n0 = Number(first.json.number);
    expect((await post(sim, '/prompt', { prompt: { '1': { class_type: 'Nope', inputs: {} } } })).status).toBe(400);
    const next = await post(sim, '/prompt', { prompt: kontext({ seed: 9 }) });
    expect(next.json.number).toBe(n0 + 2);
  });
});

// ---------------------------------------------------------------------------------------------
// prompt_id / number / partial 200 / history / queue
// ---------------------------------------------------------------------------------------------

describe('queue, history and prompt ids', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await newSim({ stepMs: 20, previewMethod: 'auto' });
  });
  afterAll(() => sim.close());

  it('prompt_id: client-chosen, reused (overwrites), numbers and null converted; explicit number is a float; front is negative', async () => {
    const a = await post(sim, '/prompt', { prompt: kontext({ seed: 1 }), prompt_id: 'my-own-id', client_id: 'ids' });
    expect(a.json.prompt_id).toBe('my-own-id');
    await waitHistory(sim, 'my-own-id');
    const b = await post(sim, '/prompt', { prompt: kontext({ seed: 2 }), prompt_id: 'my-own-id', client_id: 'ids' });
    expect(b.status).toBe(200);
    await delay(5);
    const end = Date.now() + 10_000;
    let seed = 0;
    while (seed !== 2 && Date.now() < end) {
      const h = (await history(sim, 'my-own-id'))['my-own-id'] as { prompt: [unknown, unknown, Record<string, { inputs: Json }>] } | undefined;
      seed = Number(h?.prompt[2]['31']?.inputs.seed ?? 0);
      await delay(10);
    }
    expect(seed).toBe(2);
    const all = (await get(sim, '/history')).json;
    expect(Object.keys(all).filter((k) => k === 'my-own-id')).toHaveLength(1);
    expect((await post(sim, '/prompt', { prompt: kontext(), prompt_id: 12345 })).json.prompt_id).toBe('12345');
    expect((await post(sim, '/prompt', { prompt: kontext(), prompt_id: null })).json.prompt_id).toBe('None');
    const explicit = await post(sim, '/prompt', { prompt: kontext(), number: 5 });
    expect(explicit.text).toContain('"number": 5.0');
    const front = await post(sim, '/prompt', { prompt: kontext(), front: true });
    expect(Number(front.json.number)).toBeLessThan(0);
    const uuid = await post(sim, '/prompt', { prompt: kontext() });
    expect(String(uuid.json.prompt_id)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    await waitHistory(sim, String(uuid.json.prompt_id));
  });

  it('a deleted pending prompt gets one status, no other message and no history; interrupt of a pending id does nothing', async () => {
    const ws = await Client.open(sim, 'queue-client');
    const running = await post(sim, '/prompt', { prompt: kontext({ seed: 101, steps: 30 }), client_id: 'queue-client' });
    const p2 = await post(sim, '/prompt', { prompt: kontext({ seed: 102 }), client_id: 'queue-client' });
    const p3 = await post(sim, '/prompt', { prompt: kontext({ seed: 103 }), client_id: 'queue-client' });
    const [runId, id2, id3] = [running.json.prompt_id, p2.json.prompt_id, p3.json.prompt_id].map(String) as [string, string, string];
    await ws.waitFor((m) => m.type === 'progress' && m.data.prompt_id === runId);
    const queue = (await get(sim, '/queue')).json as { queue_running: unknown[][]; queue_pending: unknown[][] };
    expect(queue.queue_running.map((i) => i[1])).toEqual([runId]);
    expect(queue.queue_pending.map((i) => i[1]).sort()).toEqual([id2, id3].sort());
    expect(queue.queue_running[0]).toHaveLength(5);
    expect(await history(sim, runId)).toEqual({});
    expect(await history(sim, id2)).toEqual({});

    expect((await post(sim, '/interrupt', { prompt_id: id2 })).status).toBe(200);
    const before = ws.messages.length;
    expect((await post(sim, '/queue', { delete: [id2] })).text).toBe('');
    await delay(60);
    const after = ws.labels().slice(before);
    expect(after.filter((l) => l.startsWith('status'))).toEqual(['status(q=2)']);
    expect(after.filter((l) => l.startsWith('progress')).length).toBeGreaterThan(0); // still running
    expect((await post(sim, '/queue', { delete: ['no-such-id', runId] })).status).toBe(200);
    expect(((await get(sim, '/queue')).json.queue_running as unknown[][]).map((i) => i[1])).toEqual([runId]);

    const beforeClear = ws.messages.length;
    await post(sim, '/queue', { clear: true });
    await delay(40);
    expect(ws.labels().slice(beforeClear).filter((l) => l.startsWith('status'))).toEqual(['status(q=1)']);
    await post(sim, '/interrupt', { prompt_id: runId });
    const h = await waitHistory(sim, runId);
    expect(h.status).toMatchObject({ status_str: 'error', completed: false });
    await ws.waitFor((m) => m.type === 'executing' && m.data.node === null && m.data.prompt_id === runId);
    expect(ws.texts.some((t) => t.includes(id2) || t.includes(id3))).toBe(false);
    expect(await history(sim, id2)).toEqual({});
    expect(await history(sim, id3)).toEqual({});
    await ws.close();
  });

  it('GET /history: max_items gives the last N, offset starts there, bad numbers give 500; delete and clear', async () => {
    // Parsed as Python does: JSON.parse would move integer-like ids such as "12345" first.
    const ids = async (route: string): Promise<string[]> => [...(pyLoads((await get(sim, route)).body.toString()) as PyDict).keys()];
    const keys = await ids('/history');
    expect(keys.length).toBeGreaterThanOrEqual(3);
    expect(keys[0]).toBe('my-own-id'); // a reused id keeps its first place
    expect(await ids('/history?max_items=1')).toEqual(keys.slice(-1));
    expect(await ids('/api/history?offset=1&max_items=2')).toEqual(keys.slice(1, 3));
    expect((await get(sim, '/history?max_items=abc')).status).toBe(500);
    expect((await get(sim, '/history/00000000-not-a-real-id')).json).toEqual({});
    expect((await post(sim, '/history', { delete: [keys[0]] })).text).toBe('');
    expect(await history(sim, keys[0] as string)).toEqual({});
    await post(sim, '/history', { clear: true });
    expect((await get(sim, '/history')).json).toEqual({});
  });

  it('partial 200: the PreviewImage branch runs when the model branch fails validation', async () => {
    const ws = await Client.open(sim, 'partial');
    const p = withPreview(kontext());
    (p['37'] as { inputs: Json }).inputs.unet_name = 'missing-model.safetensors';
    const r = await post(sim, '/prompt', { prompt: p, client_id: 'partial' });
    expect(r.status).toBe(200);
    expect(r.json.node_errors).toEqual({
      '37': {
        errors: [{
          type: 'value_not_in_list', message: 'Value not in list', details: "unet_name: 'missing-model.safetensors' not in ['flux1-dev-kontext_fp8_scaled.safetensors']",
          extra_info: { input_name: 'unet_name', input_config: [['flux1-dev-kontext_fp8_scaled.safetensors'], {}], received_value: 'missing-model.safetensors' },
        }],
        dependent_outputs: ['136'],
        class_type: 'UNETLoader',
      },
    });
    const id = String(r.json.prompt_id);
    const h = await waitHistory(sim, id);
    expect(h.prompt[4]).toEqual(['173']);
    expect(h.status).toMatchObject({ status_str: 'success', completed: true });
    const images = (h.outputs['173'] as { images: Array<{ filename: string; type: string }> }).images;
    expect(images[0]?.type).toBe('temp');
    expect(images[0]?.filename).toMatch(/^ComfyUI_temp_[a-z]{5}_00001_\.png$/);
    await ws.waitFor((m) => m.type === 'executing' && m.data.node === null);
    // As recorded (verify_protocol.json, partial_200): the input branch was cached by earlier runs.
    expect(ws.labels()).toEqual([
      'status(q=0)', 'status(q=1)', 'status(q=1)', 'execution_start', 'execution_cached(10)', 'progress_state', 'executing(173)', 'executed(173)',
      'progress_state', 'execution_success', 'status(q=0)', 'executing(None)',
    ]);
    const view = await get(sim, `/view?filename=${images[0]?.filename}&subfolder=&type=temp`);
    expect([view.status, view.headers.get('content-type')]).toEqual([200, 'image/png']);
    await ws.close();
  });
});

// ---------------------------------------------------------------------------------------------
// /view and /upload/image
// ---------------------------------------------------------------------------------------------

describe('/view and /upload/image', () => {
  let sim: Simulator;
  let output: string;
  beforeAll(async () => {
    sim = await newSim({ maxUploadSize: 300_000 });
    const r = await post(sim, '/prompt', { prompt: kontext({ prefix: 'verify/job' }) });
    const h = await waitHistory(sim, String(r.json.prompt_id));
    const img = (h.outputs['136'] as { images: Array<{ filename: string; subfolder: string }> }).images[0];
    expect(img).toEqual({ filename: 'job_00001_.png', subfolder: 'verify', type: 'output' });
    await fsp.copyFile(path.join(sim.baseDir, 'output', 'verify', 'job_00001_.png'), path.join(sim.baseDir, 'output', 'ComfyUI_00042_.png'));
    output = 'ComfyUI_00042_.png';
  });
  afterAll(() => sim.close());

  it('serves files with the guessed type and Content-Disposition; basename only; annotated names pick the folder', async () => {
    for (const route of [`/view?filename=${output}&subfolder=&type=output`, `/view?filename=${output}`, `/api/view?filename=${output}`, `/view?filename=whatever/${output}`]) {
      const r = await get(sim, route);
      expect([r.status, r.headers.get('content-type'), r.headers.get('content-disposition')]).toEqual([200, 'image/png', `filename="${output}"`]);
      expect(r.headers.get('cache-control')).toBeNull();
    }
    for (const route of ['/view?filename=kontext_input.png%20%5Binput%5D', '/view?filename=kontext_input.png%20%5Binput%5D&type=output', '/view?filename=kontext_input.png&type=input']) {
      const r = await get(sim, route);
      expect([r.status, r.headers.get('content-disposition')]).toEqual([200, 'filename="kontext_input.png"']);
    }
    const sub = await get(sim, '/view?filename=job_00001_.png&subfolder=verify');
    expect(sub.status).toBe(200);
  });

  it('400 for empty, absolute or ".." names and unknown types; 403 when the subfolder leaves the folder; 404 otherwise', async () => {
    const cases: Array<[string, number]> = [
      ['/view', 404],
      ['/view?filename=', 400],
      ['/view?filename=nonexistent.png', 404],
      [`/view?filename=${output}&type=bogus`, 400],
      ['/view?filename=../input/kontext_input.png', 400],
      ['/view?filename=..%2F..%2Fetc%2Fpasswd', 400],
      ['/view?filename=/etc/passwd', 400],
      ['/view?filename=%2Fetc%2Fpasswd', 400],
      [`/view?filename=${output}&subfolder=..`, 403],
      ['/view?filename=kontext_input.png&subfolder=../input', 403],
      ['/view?filename=passwd&subfolder=/etc', 403],
    ];
    for (const [route, status] of cases) {
      const r = await get(sim, route);
      expect([route, r.status, r.body.length]).toEqual([route, status, 0]);
      expect(r.headers.get('content-type')).toBe('application/octet-stream');
    }
  });

  it('preview= re-encodes as webp or jpeg (webp for other formats or an alpha channel); channel=rgb/a give PNGs', async () => {
    const expectType = async (q: string, type: string): Promise<Buffer> => {
      const r = await get(sim, `/view?filename=${output}${q}`);
      expect([q, r.status, r.headers.get('content-type'), r.headers.get('content-disposition')]).toEqual([q, 200, type, `filename="${output}"`]);
      return r.body;
    };
    expect((await sharp(await expectType('&preview=webp;50', 'image/webp')).metadata()).format).toBe('webp');
    expect((await sharp(await expectType('&preview=jpeg', 'image/jpeg')).metadata()).format).toBe('jpeg');
    await expectType('&preview=png', 'image/webp');
    await expectType('&preview=jpeg&channel=rgba', 'image/webp');
    const rgb = await sharp(await expectType('&channel=rgb', 'image/png')).metadata();
    expect(rgb.channels).toBe(3);
    const alpha = await sharp(await expectType('&channel=a', 'image/png')).raw().toBuffer({ resolveWithObject: true });
    expect(alpha.info.channels).toBe(4);
    expect(alpha.data[3]).toBe(255);
    expect(alpha.data[0]).toBe(0);
    const plain = await expectType('&channel=bogus', 'image/png');
    expect(plain.equals(await fsp.readFile(path.join(sim.baseDir, 'output', output)))).toBe(true);
  });

  it('upload: same content dedups, other content is renamed "name (n).ext", overwrite replaces; subfolder and type', async () => {
    const a = Buffer.from('content A');
    const b = Buffer.from('content B');
    const c = Buffer.from('content C');
    const sub = { subfolder: 'verify' };
    expect((await upload(sim, 'pic.png', a, sub)).json).toEqual({ name: 'pic.png', subfolder: 'verify', type: 'input' });
    expect((await upload(sim, 'pic.png', b, sub)).json.name).toBe('pic (1).png');
    expect((await upload(sim, 'pic.png', a, sub)).json.name).toBe('pic.png');
    expect((await upload(sim, 'pic.png', b, sub)).json.name).toBe('pic (1).png');
    expect((await upload(sim, 'pic.png', c, sub)).json.name).toBe('pic (2).png');
    expect((await upload(sim, 'pic.png', c, { ...sub, overwrite: 'false' })).json.name).toBe('pic (2).png');
    expect((await upload(sim, 'pic.png', b, { ...sub, overwrite: 'true' })).json.name).toBe('pic.png');
    expect(await fsp.readFile(path.join(sim.baseDir, 'input', 'verify', 'pic.png'), 'utf8')).toBe('content B');
    expect((await upload(sim, 'pic.png', c, { ...sub, overwrite: '1' })).json.name).toBe('pic.png');
    expect((await upload(sim, 'tmp.png', a, { ...sub, type: 'temp' })).json).toEqual({ name: 'tmp.png', subfolder: 'verify', type: 'temp' });
    expect(existsSync(path.join(sim.baseDir, 'temp', 'verify', 'tmp.png'))).toBe(true);
    expect((await upload(sim, 'notimage.png', Buffer.from('just text'), sub)).status).toBe(200);
  });

  it('upload errors: bad type 500, escaping subfolder 400, missing part 400, empty filename 500, missing directory 500, too big 413', async () => {
    const a = Buffer.from('x');
    const r500 = await upload(sim, 'x.png', a, { type: 'bogus' });
    expect([r500.status, r500.text]).toEqual([500, '500 Internal Server Error\n\nServer got itself in trouble']);
    expect((await upload(sim, 'x.png', a, { subfolder: '../escape' })).status).toBe(400);
    expect((await upload(sim, '../evil_sim.png', a, { subfolder: 'verify' })).json).toEqual({ name: '../evil_sim.png', subfolder: 'verify', type: 'input' });
    expect(existsSync(path.join(sim.baseDir, 'input', 'evil_sim.png'))).toBe(true);
    expect((await upload(sim, '../evil_sim2.png', a)).status).toBe(400);
    expect((await upload(sim, 'nosuchdir/x.png', a)).status).toBe(500);
    const noImage = new FormData();
    noImage.append('type', 'input');
    expect((await fetch(`${sim.url}/upload/image`, { method: 'POST', body: noImage })).status).toBe(400);
    const boundary = 'XyZ';
    const raw = `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename=""\r\nContent-Type: image/png\r\n\r\nabc\r\n--${boundary}--\r\n`;
    const empty = await fetch(`${sim.url}/upload/image`, { method: 'POST', body: raw, headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` } });
    expect(empty.status).toBe(500);
    const big = await upload(sim, 'big.png', Buffer.alloc(400_000, 1));
    expect(big.status).toBe(413);
    expect(big.text).toMatch(/^Maximum request body size 300000 exceeded, actual body size \d+$/);
  });
});

// ---------------------------------------------------------------------------------------------
// WebSocket routing
// ---------------------------------------------------------------------------------------------

describe('WebSocket routing', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await newSim({ stepMs: 25, previewMethod: 'auto' });
  });
  afterAll(() => sim.close());

  it('connect: status with sid (uuid4 hex without clientId); feature_flags answered only as the first message', async () => {
    const anon = await Client.open(sim);
    const first = anon.json()[0] as WsMsg;
    expect(first.data.sid).toMatch(/^[0-9a-f]{32}$/);
    expect(anon.texts[0]).toBe(`{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "${String(first.data.sid)}"}}`);
    await anon.close();

    const negotiated = await Client.open(sim, 'ff-first', (ws) => ws.send(JSON.stringify({ type: 'feature_flags', data: { supports_preview_metadata: true } })));
    const ff = await negotiated.waitFor((m) => m.type === 'feature_flags');
    expect(ff.data).toEqual({ supports_preview_metadata: true, max_upload_size: 104857600 });
    expect(negotiated.labels().slice(0, 2)).toEqual(['status(q=0)', 'feature_flags']);
    await negotiated.close();

    const late = await Client.open(sim, 'ff-second');
    late.ws.send(JSON.stringify({ type: 'hello', data: {} }));
    late.ws.send(JSON.stringify({ type: 'feature_flags', data: { supports_preview_metadata: true } }));
    await delay(80);
    expect(late.labels()).toEqual(['status(q=0)']);
    await late.close();
  });

  it('previews: type 4 before progress for a negotiated socket, type 1 after progress otherwise', async () => {
    const meta = await Client.open(sim, 'meta', (ws) => ws.send(JSON.stringify({ type: 'feature_flags', data: { supports_preview_metadata: true } })));
    await meta.waitFor((m) => m.type === 'feature_flags');
    const r = await post(sim, '/prompt', { prompt: kontext({ seed: 11, steps: 2 }), client_id: 'meta' });
    await meta.waitFor((m) => m.type === 'executing' && m.data.node === null);
    const labels = meta.labels();
    const i = labels.indexOf('bin4');
    expect(labels.slice(i - 1, i + 2)).toEqual(['progress_state', 'bin4', 'progress']);
    expect(labels).not.toContain('bin1');
    const frame = (meta.messages.find((m) => 'binary' in m) as { binary: Buffer }).binary;
    const len = frame.readUInt32BE(4);
    expect(frame.subarray(8, 8 + len).toString()).toBe(
      `{"node_id": "31", "prompt_id": "${String(r.json.prompt_id)}", "display_node_id": "31", "parent_node_id": null, "real_node_id": "31", "image_type": "image/jpeg"}`,
    );
    expect((await sharp(frame.subarray(8 + len)).metadata()).width).toBe(512);
    await meta.close();

    const legacy = await Client.open(sim, 'legacy');
    await post(sim, '/prompt', { prompt: kontext({ seed: 12, steps: 2 }), client_id: 'legacy' });
    await legacy.waitFor((m) => m.type === 'executing' && m.data.node === null);
    const l2 = legacy.labels();
    expect(l2.slice(l2.indexOf('progress') - 1, l2.indexOf('progress') + 2)).toEqual(['progress_state', 'progress', 'bin1']);
    await legacy.close();
  });

  it('without client_id: status, progress_state, progress and type-1 previews reach every socket; nothing else', async () => {
    const o1 = await Client.open(sim, 'obs1', (ws) => ws.send(JSON.stringify({ type: 'feature_flags', data: { supports_preview_metadata: true } })));
    const o2 = await Client.open(sim, 'obs2');
    await o1.waitFor((m) => m.type === 'feature_flags');
    const r = await post(sim, '/prompt', { prompt: kontext({ seed: 13, steps: 2 }) });
    await waitHistory(sim, String(r.json.prompt_id));
    await delay(50);
    for (const o of [o1, o2]) {
      const labels = o.labels().filter((l) => l !== 'feature_flags').slice(1);
      expect(new Set(labels)).toEqual(new Set(['status(q=1)', 'progress_state', 'progress', 'bin1', 'status(q=0)']));
      expect(labels[labels.length - 1]).toBe('status(q=0)');
    }
    const h = await waitHistory(sim, String(r.json.prompt_id));
    expect(h.prompt[3]).toEqual({});

    const before = [o1.messages.length, o2.messages.length];
    const long = await post(sim, '/prompt', { prompt: kontext({ seed: 14, steps: 40 }) });
    await o2.waitFor((m) => m.type === 'progress' && m.data.prompt_id === long.json.prompt_id);
    await post(sim, '/interrupt', {});
    await waitHistory(sim, String(long.json.prompt_id));
    await delay(50);
    for (const [k, o] of [o1, o2].entries()) {
      const labels = o.labels().slice(before[k]);
      expect(labels.slice(-2)).toEqual(['execution_interrupted', 'status(q=0)']);
    }
    await o1.close();
    await o2.close();
  });

  it('same clientId: the newer socket takes over; closing the older one orphans the newer (the close race)', async () => {
    const a = await Client.open(sim, 'race');
    const r = await post(sim, '/prompt', { prompt: kontext({ seed: 15, steps: 20 }), client_id: 'race' });
    const id = String(r.json.prompt_id);
    await a.waitFor((m) => m.type === 'progress');
    const b = await Client.open(sim, 'race');
    const firstTwo = b.json().slice(0, 2);
    expect(firstTwo[0]?.data).toEqual({ status: { exec_info: { queue_remaining: 1 } }, sid: 'race' });
    expect(firstTwo[1]).toEqual({ type: 'executing', data: { node: '31' } });
    const other = await Client.open(sim, 'race-other');
    expect(other.labels()).toEqual(['status(q=1)']);
    const aCount = a.messages.length;
    await b.waitFor((m) => m.type === 'progress');
    await delay(60);
    expect(a.messages.length).toBe(aCount);
    await a.close();
    await delay(30);
    const bCount = b.messages.length;
    await waitHistory(sim, id);
    await other.waitFor((m) => m.type === 'status' && (m.data.status as { exec_info: Json }).exec_info.queue_remaining === 0);
    await delay(60);
    expect(b.messages.length).toBe(bCount);
    expect(b.ws.readyState).toBe(WebSocket.OPEN);
    await b.close();
    await other.close();
  });

  it('sequential reconnect: the new socket gets status, executing(node) without prompt_id, then live messages', async () => {
    const a = await Client.open(sim, 'seq');
    const r = await post(sim, '/prompt', { prompt: kontext({ seed: 16, steps: 20 }), client_id: 'seq' });
    await a.waitFor((m) => m.type === 'progress');
    await a.close();
    const b = await Client.open(sim, 'seq');
    expect(b.json()[1]).toEqual({ type: 'executing', data: { node: '31' } });
    const end = await b.waitFor((m) => m.type === 'executing' && m.data.node === null);
    expect(end.data.prompt_id).toBe(r.json.prompt_id);
    expect(b.labels()).toContain('progress');
    await b.close();
  });

  it('onMessageSent sees each message once, after it went out (the benchmarks time progress with it)', async () => {
    const sent: string[] = [];
    const observed = await newSim({ stepMs: 5, onMessageSent: (text) => sent.push(text) });
    try {
      const c = await Client.open(observed, 'observed');
      await post(observed, '/prompt', { prompt: kontext({ seed: 16, steps: 2 }), client_id: 'observed' });
      await c.waitFor((m) => m.type === 'executing' && m.data.node === null);
      // Everything the socket got but its greeting, in the same order and text.
      expect(sent).toEqual(c.texts.slice(1));
      await c.close();
    } finally {
      await observed.close();
    }
  });

  it('dropSockets() terminates every socket', async () => {
    const a = await Client.open(sim, 'drop');
    const closed = new Promise<number>((resolve) => a.ws.once('close', (code) => resolve(code)));
    sim.dropSockets();
    expect(await closed).toBe(1006);
  });
});

// ---------------------------------------------------------------------------------------------
// Outputs, cache, failures, restart
// ---------------------------------------------------------------------------------------------

describe('outputs, cache, failures and restart', () => {
  let sim: Simulator;
  let baseDir: string;
  beforeAll(async () => {
    baseDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sim-test-'));
    sim = await newSim({ baseDir, failOnText: '__FAIL__' });
  });
  afterAll(async () => {
    await sim.close();
    await fsp.rm(baseDir, { recursive: true, force: true });
  });

  const run = async (p: Json, clientId = 'out'): Promise<Json & { outputs: Json; status: Json; prompt: unknown[] }> => {
    const r = await post(sim, '/prompt', { prompt: p, client_id: clientId });
    expect(r.status).toBe(200);
    return waitHistory(sim, String(r.json.prompt_id));
  };
  const files = (h: { outputs: Json }, node = '136'): Array<{ filename: string; subfolder: string; type: string }> =>
    (h.outputs[node] as { images: Array<{ filename: string; subfolder: string; type: string }> }).images;
  const read = async (f: { filename: string; subfolder: string; type: string }): Promise<Buffer> =>
    (await get(sim, `/view?filename=${encodeURIComponent(f.filename)}&subfolder=${encodeURIComponent(f.subfolder)}&type=${f.type}`)).body;

  it('PNG outputs are deterministic, differ across seeds, have the latent size and carry the prompt chunk', async () => {
    const a = await run(kontext({ seed: 1, width: 320, height: 192, batch: 2 }));
    expect(files(a).map((f) => f.filename)).toEqual(['ComfyUI_00001_.png', 'ComfyUI_00002_.png']);
    const [a1, a2] = [await read(files(a)[0]!), await read(files(a)[1]!)];
    expect(await sharp(a1).metadata()).toMatchObject({ width: 320, height: 192, format: 'png' });
    expect(a1.equals(a2)).toBe(false); // batch items differ
    expect(a1.includes(Buffer.from('tEXtprompt\u0000{"6": {"class_type": "CLIPTextEncode"'))).toBe(true);
    await post(sim, '/free', { free_memory: true });
    const again = await run(kontext({ seed: 1, width: 320, height: 192, batch: 2 }));
    expect(files(again)[0]?.filename).toBe('ComfyUI_00003_.png');
    expect((await read(files(again)[0]!)).equals(a1)).toBe(true);
    const other = await run(kontext({ seed: 2, width: 320, height: 192, batch: 2 }));
    expect((await read(files(other)[0]!)).equals(a1)).toBe(false);
    const template = await run(kontext({ seed: 3, templateLatent: true }));
    expect(await sharp(await read(files(template)[0]!)).metadata()).toMatchObject({ width: 1248, height: 832 });
  });

  it('cache: an identical prompt writes nothing and lists the old files; a new seed re-runs 31, 8, 136; /free clears it', async () => {
    const ws = await Client.open(sim, 'cache');
    const p = kontext({ seed: 21 });
    const first = await run(p, 'cache');
    const second = await run(p, 'cache');
    expect(files(second)).toEqual(files(first));
    const cachedMsgs = ws.json().filter((m) => m.type === 'execution_cached');
    expect(cachedMsgs[cachedMsgs.length - 1]?.data.nodes).toEqual(['6', '8', '31', '35', '37', '38', '39', '42', '124', '135', '136', '142', '177', '188']);
    const labels = ws.labels();
    expect(labels.slice(labels.lastIndexOf('execution_start'))).toEqual([
      'execution_start', 'execution_cached(14)', 'executed(136)', 'progress_state', 'execution_success', 'status(q=0)', 'executing(None)',
    ]);
    expect(ws.texts.filter((t) => t.includes('"progress_state"')).pop()).toContain('"136": {"value": 1, "max": 1, "state": "finished"');
    await run(kontext({ seed: 22 }), 'cache');
    const third = ws.json().filter((m) => m.type === 'executing' && m.data.node !== null).slice(-3).map((m) => m.data.node);
    expect(third).toEqual(['31', '8', '136']);
    await post(sim, '/free', { free_memory: true });
    await run(kontext({ seed: 22 }), 'cache');
    expect(ws.json().filter((m) => m.type === 'execution_cached').pop()?.data.nodes).toEqual([]);
    await ws.close();
  });

  it('fail-on-text: execution_error at step ceil(steps/2) with the recorded fields; finished nodes stay cached', async () => {
    const ws = await Client.open(sim, 'fail');
    const h = await run(kontext({ text: 'make it red __FAIL__ please', seed: 31, steps: 6 }), 'fail');
    expect(h.status).toMatchObject({ status_str: 'error', completed: false });
    expect(h.outputs).toEqual({});
    expect(h.meta).toEqual({});
    const err = await ws.waitFor((m) => m.type === 'execution_error');
    expect(ws.json().filter((m) => m.type === 'progress').map((m) => m.data.value)).toEqual([1, 2]);
    expect(err.data).toMatchObject({
      node_id: '31',
      node_type: 'KSampler',
      exception_message: "FAKE_FAIL_ON_TEXT: prompt contains '__FAIL__'; simulated sampler failure at step 3/6\n",
      exception_type: 'RuntimeError',
    });
    expect(Object.keys(err.data)).toEqual(['prompt_id', 'node_id', 'node_type', 'executed', 'exception_message', 'exception_type', 'traceback', 'current_inputs', 'current_outputs', 'timestamp']);
    expect((err.data.executed as string[]).sort()).toEqual(['135', '177', '35', '6']);
    expect(Object.keys(err.data.current_inputs as Json)).toEqual(['seed', 'steps', 'cfg', 'sampler_name', 'scheduler', 'denoise', 'model', 'positive', 'negative', 'latent_image']);
    expect((err.data.current_inputs as Json).seed).toEqual([31]);
    expect((err.data.current_outputs as string[]).sort()).toEqual(Object.keys(kontext()).sort());
    expect(ws.labels().slice(-3)).toEqual(['execution_error', 'status(q=0)', 'executing(None)']);
    expect((h.status.messages as Array<[string]>).map((m) => m[0])).toEqual(['execution_start', 'execution_cached', 'execution_error']);
    await run(kontext({ text: 'make it red __FAIL__ please', seed: 32, steps: 6 }), 'fail');
    expect(ws.json().filter((m) => m.type === 'execution_cached').pop()?.data.nodes).toEqual(['6', '35', '37', '38', '39', '42', '124', '135', '142', '177', '188']);
    await ws.close();
  });

  it('SaveImage prefix leaving the output folder is a runtime error', async () => {
    const h = await run(kontext({ seed: 41, prefix: '../escape' }));
    expect(h.status.status_str).toBe('error');
    const last = (h.status.messages as Array<[string, Json]>).pop() as [string, Json];
    expect(last[0]).toBe('execution_error');
    expect(last[1]).toMatchObject({ node_id: '136', exception_type: 'Exception' });
    expect(String(last[1].exception_message)).toMatch(/^\*\*\*\* ERROR: Saving image outside the output folder is not allowed\./);
  });

  it('an idle interrupt does not affect the next prompt', async () => {
    expect((await post(sim, '/interrupt', '')).status).toBe(200);
    const h = await run(kontext({ seed: 51 }));
    expect(h.status.status_str).toBe('success');
  });

  it('restart on the same baseDir: empty history and cache, temp wiped, outputs kept', async () => {
    const h = await run(withPreview(kontext({ seed: 61 })));
    const tempFile = path.join(baseDir, 'temp', files(h, '173')[0]?.filename ?? '');
    expect(existsSync(tempFile)).toBe(true);
    const outFile = path.join(baseDir, 'output', files(h)[0]?.filename ?? '');
    await sim.close();
    sim = await startSimulator({ port: 0, stepMs: 5, baseDir });
    expect(existsSync(tempFile)).toBe(false);
    expect(existsSync(outFile)).toBe(true);
    expect((await get(sim, '/history')).json).toEqual({});
    const ws = await Client.open(sim, 'restart');
    await run(withPreview(kontext({ seed: 61 })), 'restart');
    expect(ws.json().find((m) => m.type === 'execution_cached')?.data.nodes).toEqual([]);
    await ws.close();
  });
});

// ---------------------------------------------------------------------------------------------
// Misc routes
// ---------------------------------------------------------------------------------------------

describe('informational routes and middleware', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await newSim();
  });
  afterAll(() => sim.close());

  it('system_stats, features, prompt, queue, models, embeddings (also under /api)', async () => {
    const stats = (await get(sim, '/api/system_stats')).json as { system: Json; devices: Json[] };
    expect(stats.system.comfyui_version).toBe('0.3.64');
    expect(Object.keys(stats.system)).toEqual([
      'os', 'ram_total', 'ram_free', 'comfyui_version', 'required_frontend_version', 'installed_templates_version',
      'required_templates_version', 'python_version', 'pytorch_version', 'embedded_python', 'argv',
    ]);
    expect(Object.keys(stats.devices[0] ?? {})).toEqual(['name', 'type', 'index', 'vram_total', 'vram_free', 'torch_vram_total', 'torch_vram_free']);
    expect((await get(sim, '/features')).json).toEqual({ supports_preview_metadata: true, max_upload_size: 104857600 });
    expect((await get(sim, '/api/prompt')).json).toEqual({ exec_info: { queue_remaining: 0 } });
    expect((await get(sim, '/api/queue')).json).toEqual({ queue_running: [], queue_pending: [] });
    expect((await get(sim, '/models')).json).toContain('diffusion_models');
    expect((await get(sim, '/models/vae')).json).toEqual(['ae.safetensors']);
    expect((await get(sim, '/models/text_encoders')).json).toEqual(['clip_l.safetensors', 't5xxl_fp8_e4m3fn_scaled.safetensors']);
    const nf = await get(sim, '/models/no_such_folder');
    expect([nf.status, nf.body.length]).toEqual([404, 0]);
    expect((await get(sim, '/api/embeddings')).json).toEqual([]);
    const internal = await get(sim, '/internal/files/bogus');
    expect([internal.status, internal.json]).toEqual([400, { error: 'Invalid directory type' }]);
    expect((await get(sim, '/internal/files/input')).json).toEqual(['kontext_input.png']);
    const api404 = await get(sim, '/api/internal/files/output');
    expect([api404.status, api404.body.toString()]).toEqual([404, '404: Not Found']);
  });

  it('object_info: v1 combos as [[...]], v3 layout for comfy_api nodes, model lists, uploads listed', async () => {
    const all = (await get(sim, '/object_info')).json as Record<string, Json & { input: Record<string, Record<string, unknown[]>> }>;
    for (const name of ['UNETLoader', 'DualCLIPLoader', 'VAELoader', 'LoadImage', 'LoadImageOutput', 'ImageStitch', 'FluxKontextImageScale', 'PreviewImage', 'VAEEncode', 'CLIPTextEncode', 'ConditioningZeroOut', 'ReferenceLatent', 'FluxGuidance', 'KSampler', 'VAEDecode', 'SaveImage', 'EmptySD3LatentImage', 'EmptyLatentImage']) {
      expect(all[name], name).toBeDefined();
    }
    expect(all.UNETLoader).toEqual({
      input: { required: { unet_name: [['flux1-dev-kontext_fp8_scaled.safetensors']], weight_dtype: [['default', 'fp8_e4m3fn', 'fp8_e4m3fn_fast', 'fp8_e5m2']] } },
      input_order: { required: ['unet_name', 'weight_dtype'] },
      output: ['MODEL'], output_is_list: [false], output_name: ['MODEL'],
      name: 'UNETLoader', display_name: 'Load Diffusion Model', description: '', python_module: 'nodes', category: 'advanced/loaders', output_node: false,
    });
    expect(all.LoadImage?.input.required?.image).toEqual([['kontext_input.png'], { image_upload: true }]);
    expect(all.SaveImage?.output_node).toBe(true);
    expect(all.FluxGuidance).toMatchObject({ display_name: null, output_tooltips: [null], deprecated: false, experimental: false, api_node: false });
    expect(all.FluxGuidance?.input.required?.guidance).toEqual(['FLOAT', { default: 3.5, min: 0.0, max: 100.0, step: 0.1 }]);
    const raw = (await get(sim, '/object_info/KSampler')).body.toString();
    expect(raw).toContain('"max": 18446744073709551615');
    expect(raw).toContain('"cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01');
    expect((await get(sim, '/object_info/NoSuchNode')).json).toEqual({});
    const custom = await startSimulator({ port: 0, models: { vae: ['b.safetensors', 'a.safetensors'], diffusion_models: ['x.safetensors'] } });
    expect(((await get(custom, '/object_info/VAELoader')).json.VAELoader as { input: { required: { vae_name: unknown[] } } }).input.required.vae_name[0]).toEqual(['a.safetensors', 'b.safetensors', 'pixel_space']);
    await custom.close();
  });

  it('a foreign Origin on a loopback Host gets 403 (HTTP and WebSocket); unknown routes 404, wrong methods 405', async () => {
    const foreign = await fetch(`${sim.url}/queue`, { headers: { Origin: 'http://evil.example' } });
    expect(foreign.status).toBe(403);
    const same = await fetch(`${sim.url}/queue`, { headers: { Origin: sim.url } });
    expect(same.status).toBe(200);
    const ws = new WebSocket(`${sim.url.replace(/^http/, 'ws')}/ws?clientId=o`, { headers: { Origin: 'http://evil.example' } });
    const status = await new Promise<number>((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    expect(status).toBe(403);
    const missing = await fetch(`${sim.url}/nope`);
    expect([missing.status, await missing.text()]).toEqual([404, '404: Not Found']);
    const method = await fetch(`${sim.url}/interrupt`);
    expect(method.status).toBe(405);
    const api = await Client.open(sim);
    expect(api.json()[0]?.type).toBe('status');
    await api.close();
    const apiWs = new WebSocket(`${sim.url.replace(/^http/, 'ws')}/api/ws?clientId=apiws`);
    const firstMsg = await new Promise<string>((resolve) => apiWs.once('message', (d: Buffer) => resolve(d.toString())));
    expect(JSON.parse(firstMsg)).toEqual({ type: 'status', data: { status: { exec_info: { queue_remaining: 0 } }, sid: 'apiws' } });
    apiWs.close();
  });
});
