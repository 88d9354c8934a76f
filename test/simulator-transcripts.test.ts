/**
 * Replays the transcripts recorded from a real ComfyUI 0.3.64 (test/fixtures/comfyui/transcripts)
 * against the simulator, in the recorded order on one simulator so the cache and the output file
 * counters evolve as they did. For each case it compares the collapsed message order with
 * index.json, every JSON message (ids and timestamps normalized, floats kept), the binary preview
 * frames, and the HTTP answers.
 */
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type PyDict, type PyValue, isDict, pyDumps, pyLoads } from '../simulator/py.js';
import { type Simulator, startSimulator } from '../simulator/server.js';
import {
  binaryLabel,
  collapse,
  expand,
  httpLabel,
  labelOf,
  loadCase,
  loadIndex,
  normalize,
  type RecordedCase,
  referencePng,
  requireTranscripts,
} from './helpers/transcripts.js';

interface Received {
  text?: string;
  binary?: Buffer;
  /** The `status` a POST /prompt caused (its position among a running prompt's messages is a race). */
  postStatus?: boolean;
}

interface Replay {
  labels: string[];
  received: Received[];
  /** HTTP exchanges in order: recorded event index → our status and body. */
  http: Array<{ index: number; status: number; body: string }>;
  /** Our prompt id → the recorded one. */
  ids: Map<string, string>;
}

const STEP_MS = 30;

async function waitFor(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(2);
  }
}

/**
 * Replays one case: sockets open and send as recorded; each HTTP request is sent once the
 * messages recorded before it have arrived, and its label is placed where it was sent.
 */
async function replay(sim: Simulator, c: RecordedCase): Promise<Replay> {
  const labels: string[] = [];
  const received: Received[] = [];
  const http: Replay['http'] = [];
  const ids = new Map<string, string>();
  const reverse = new Map<string, string>();
  let ws: WebSocket | null = null;
  let recvBefore = 0;
  let awaitingPostStatus = 0;
  const totalRecv = c.events.filter((e) => e.dir === 'ws-recv').length;

  for (let i = 0; i < c.events.length; i++) {
    const e = c.events[i]!;
    if (e.dir === 'ws-recv') {
      recvBefore++;
      continue;
    }
    if (e.dir === 'ws-open') {
      const next = c.events[i + 1];
      const sendFirst = next?.dir === 'ws-send' ? next.msgText : undefined;
      const socket = new WebSocket(sim.url.replace(/^http/, 'ws') + e.path);
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) {
          received.push({ binary: data });
          labels.push(binaryLabel(data));
        } else {
          const text = data.toString('utf8');
          const label = labelOf(pyLoads(text) as PyDict);
          const postStatus = label.startsWith('status(') && awaitingPostStatus > 0;
          if (postStatus) awaitingPostStatus--;
          received.push({ text, postStatus });
          labels.push(label);
        }
      });
      await new Promise<void>((resolve, reject) => {
        socket.once('open', () => {
          labels.push('ws-open');
          // Sent from the open handler itself, before any message is processed, as recorded.
          if (sendFirst !== undefined) {
            labels.push(`SEND ${String(((pyLoads(sendFirst) as PyDict).get('type')))}`);
            socket.send(sendFirst);
          }
          resolve();
        });
        socket.once('error', reject);
      });
      if (sendFirst !== undefined) i++;
      ws = socket;
      continue;
    }
    if (e.dir === 'ws-send') {
      labels.push(`SEND ${String((e.msg as PyDict).get('type'))}`);
      ws?.send(e.msgText ?? '');
      continue;
    }
    // HTTP: wait for what the recording had received before this request.
    const need = recvBefore;
    await waitFor(() => received.length >= need, `${need} messages before ${e.method} ${e.path} in ${c.case}`);
    let urlPath = e.path ?? '/';
    for (const [recorded, ours] of reverse) urlPath = urlPath.replace(recorded, ours);
    let body: string | undefined;
    if (e.method === 'POST') {
      let req = e.request ?? null;
      if (isDict(req) && typeof req.get('prompt_id') === 'string') {
        req = new Map(req);
        req.set('prompt_id', reverse.get(req.get('prompt_id') as string) ?? (req.get('prompt_id') as string));
      }
      body = req === null ? '' : pyDumps(req);
    }
    const slot = labels.length;
    labels.push('pending');
    if (e.method === 'POST' && e.path === '/prompt' && ws !== null) awaitingPostStatus++;
    const res = await fetch(sim.url + urlPath, { method: e.method, body });
    const text = Buffer.from(await res.arrayBuffer());
    labels[slot] = httpLabel(e.method ?? 'GET', e.path ?? '/', res.status);
    const bodyText = (res.headers.get('content-type') ?? '').startsWith('application/json') ? text.toString('utf8') : '';
    http.push({ index: i, status: res.status, body: bodyText });
    if (e.path === '/prompt' && res.status === 200 && isDict(e.response)) {
      const ours = String((pyLoads(bodyText) as PyDict).get('prompt_id'));
      const recorded = String(e.response.get('prompt_id'));
      ids.set(ours, recorded);
      reverse.set(recorded, ours);
    }
  }
  await waitFor(() => received.length >= totalRecv, `${totalRecv} messages in ${c.case}`);
  await delay(120); // nothing more may arrive
  ws?.close();
  return { labels, received, http, ids };
}

/** The recorded messages, each flagged when it is the status a preceding POST /prompt caused. */
function recordedMessages(c: RecordedCase): Array<RecordedCase['events'][number] & { postStatus: boolean }> {
  let awaiting = 0;
  const out: Array<RecordedCase['events'][number] & { postStatus: boolean }> = [];
  for (const e of c.events) {
    if (e.dir === 'http' && e.method === 'POST' && e.path === '/prompt') awaiting++;
    if (e.dir !== 'ws-recv') continue;
    const isStatus = e.kind === 'json' && (e.msg as PyDict).get('type') === 'status';
    const postStatus = isStatus && awaiting > 0;
    if (postStatus) awaiting--;
    out.push({ ...e, postStatus });
  }
  return out;
}

/**
 * Compares every message in order. With `relaxPostStatus`, the statuses caused by POST /prompt
 * are compared among themselves, apart from the rest (their place is a race, see queue3).
 */
async function checkMessages(c: RecordedCase, r: Replay, relaxPostStatus = false): Promise<void> {
  let recorded = recordedMessages(c);
  let got = r.received;
  expect(got.length, `${c.case}: message count`).toBe(recorded.length);
  if (relaxPostStatus) {
    const a = recorded.filter((m) => m.postStatus).map((m) => normalize(m.msg as PyValue, new Map()));
    const b = got.filter((m) => m.postStatus).map((m) => normalize(pyLoads(m.text ?? '') as PyValue, r.ids));
    expect(b, `${c.case}: statuses caused by POST /prompt`).toEqual(a);
    recorded = recorded.filter((m) => !m.postStatus);
    got = got.filter((m) => !m.postStatus);
  }
  for (let k = 0; k < recorded.length; k++) {
    const want = recorded[k]!;
    const got1 = got[k]!;
    if (want.kind === 'json') {
      expect(got1.text, `${c.case}: message ${k} should be text`).toBeDefined();
      expect(normalize(pyLoads(got1.text ?? '') as PyValue, r.ids), `${c.case}: message ${k}`).toBe(normalize(want.msg as PyValue, new Map()));
      continue;
    }
    expect(got1.binary, `${c.case}: message ${k} should be binary`).toBeDefined();
    const frame = got1.binary as Buffer;
    const info = want.msg as PyDict;
    expect(frame.readUInt32BE(0)).toBe(Number(info.get('event_type')));
    let image = frame.subarray(8);
    if (frame.readUInt32BE(0) === 4) {
      const len = frame.readUInt32BE(4);
      const meta = pyLoads(frame.subarray(8, 8 + len).toString('utf8'));
      expect(normalize(meta, r.ids)).toBe(normalize(info.get('metadata') as PyValue, new Map()));
      image = frame.subarray(8 + len);
    } else {
      expect(frame.readUInt32BE(4)).toBe(1); // JPEG
    }
    const meta = await sharp(image).metadata();
    expect(meta.format).toBe('jpeg');
    expect([meta.width, meta.height]).toEqual((info.get('image_size') as PyValue[]).map(Number));
  }
}

/** Compares the JSON answers (prompt accepted/rejected, queue, history) with the recorded ones. */
function checkHttp(c: RecordedCase, r: Replay): void {
  for (const h of r.http) {
    const e = c.events[h.index]!;
    expect(h.status, `${c.case}: ${e.method} ${e.path}`).toBe(e.status);
    if (h.body && e.response !== undefined && e.response !== null) {
      expect(normalize(pyLoads(h.body), r.ids), `${c.case}: ${e.method} ${e.path} body`).toBe(normalize(e.response, new Map()));
    }
  }
}

describe('simulator replays the recorded ComfyUI transcripts', () => {
  let sim: Simulator;
  let index: Record<string, string[]>;

  beforeAll(async () => {
    requireTranscripts();
    index = loadIndex();
    sim = await startSimulator({ port: 0, stepMs: STEP_MS, previewMethod: 'auto', failOnText: '__FAIL__' });
    // The recorded upload: kontext_input.png (768×512) into input/.
    const upload = loadCase('upload');
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(await referencePng())], { type: 'image/png' }), 'kontext_input.png');
    form.append('type', 'input');
    form.append('overwrite', 'true');
    const res = await fetch(`${sim.url}/upload/image`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    expect(normalize(pyLoads(await res.text()), new Map())).toBe(normalize(upload.events[0]!.response as PyValue, new Map()));
  });

  afterAll(async () => {
    await sim?.close();
  });

  // In the recorded order: each case's cache hits and file numbers depend on the ones before.
  const exact = [
    'normal',
    'normal_preview_metadata',
    'cached',
    'error',
    'interrupt',
    'interrupt_global',
  ];
  for (const name of exact) {
    it(`${name}: same message order, messages and answers`, async () => {
      const c = loadCase(name);
      const r = await replay(sim, c);
      expect(collapse(r.labels)).toEqual(index[name]);
      await checkMessages(c, r);
      checkHttp(c, r);
    });
  }

  it('queue3: same messages; HTTP answers interleave by timing only', async () => {
    const c = loadCase('queue3');
    const r = await replay(sim, c);
    // ComfyUI's worker is a thread, so where a POST (and the status it causes) lands among the
    // running prompt's messages is a race. Everything else keeps its recorded order.
    const isHttp = (l: string): boolean => l.startsWith('HTTP ');
    const want = expand(index.queue3 ?? []);
    const postStatuses = (labels: string[]): { rest: string[]; statuses: string[] } => {
      let awaiting = 0;
      const rest: string[] = [];
      const statuses: string[] = [];
      for (const l of labels) {
        if (l.startsWith('HTTP POST /prompt')) awaiting++;
        if (isHttp(l)) continue;
        if (l.startsWith('status(') && awaiting > 0) {
          awaiting--;
          statuses.push(l);
        } else {
          rest.push(l);
        }
      }
      return { rest, statuses };
    };
    expect(postStatuses(r.labels)).toEqual(postStatuses(want));
    expect(r.labels.filter(isHttp)).toEqual(want.filter(isHttp));
    await checkMessages(c, r, true);
    checkHttp(c, r);
  });

  for (const name of ['determinism', 'workflow_as_is', 'template_latent_from_vaeencode']) {
    it(`${name}: same message order, messages and answers`, async () => {
      const c = loadCase(name);
      const r = await replay(sim, c);
      expect(collapse(r.labels)).toEqual(index[name]);
      await checkMessages(c, r);
      checkHttp(c, r);
    });
  }

  it('determinism: the re-run wrote the same bytes as the first run', async () => {
    const a = Buffer.from(await (await fetch(`${sim.url}/view?filename=ComfyUI_00001_.png`)).arrayBuffer());
    const b = Buffer.from(await (await fetch(`${sim.url}/view?filename=ComfyUI_00009_.png`)).arrayBuffer());
    expect(a.length).toBeGreaterThan(1000);
    expect(b.equals(a)).toBe(true);
  });

  it('template_latent_from_vaeencode: output has the FluxKontextImageScale size (768×512 → 1248×832)', async () => {
    const png = Buffer.from(await (await fetch(`${sim.url}/view?filename=ComfyUI_00012_.png`)).arrayBuffer());
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height]).toEqual([1248, 832]);
  });

  it('reference workflows (verify_protocol.json): the shared API prompts run with the recorded node order', async () => {
    const probe = ((pyLoads(readFileSync(path.join(requireTranscripts(), 'verify_protocol.json'), 'utf8')) as PyDict).get('results') as PyDict).get(
      'reference_workflows',
    ) as PyDict;
    const observed = new Map(((probe.get('observations') as PyValue[]) as PyDict[]).map((o) => [String(o.get('key')), o.get('value') as PyDict]));
    const refDir = path.resolve(requireTranscripts(), '../reference');
    const load = (name: string): PyDict => pyLoads(readFileSync(path.join(refDir, name), 'utf8')) as PyDict;
    const clientId = 'verify-ref-01dc5f';
    const ws = new WebSocket(`${sim.url.replace(/^http/, 'ws')}/ws?clientId=${clientId}`);
    const executing = new Map<string, Array<string | null>>();
    ws.on('message', (d: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const m = JSON.parse(d.toString()) as { type: string; data: { node?: string | null; prompt_id?: string } };
      if (m.type === 'executing' && m.data.prompt_id) {
        executing.set(m.data.prompt_id, [...(executing.get(m.data.prompt_id) ?? []), m.data.node ?? null]);
      }
    });
    await new Promise((resolve) => ws.once('open', resolve));
    // The template's default image must exist in output/ (docs/comfyui-protocol.md §9).
    await fsp.copyFile(path.join(sim.baseDir, 'input', 'kontext_input.png'), path.join(sim.baseDir, 'output', 'ComfyUI_00018_.png'));

    const submit = async (prompt: PyDict, key: string, image?: string): Promise<{ id: string; outputs: PyDict }> => {
      const p = pyLoads(pyDumps(prompt)) as PyDict;
      if (image !== undefined) ((p.get('142') as PyDict).get('inputs') as PyDict).set('image', image);
      const res = await fetch(`${sim.url}/prompt`, { method: 'POST', body: pyDumps(new Map<string, PyValue>([['prompt', p], ['client_id', clientId]])) });
      const body = pyLoads(await res.text()) as PyDict;
      const want = observed.get(key) as PyDict;
      expect(res.status, key).toBe(want.get('status'));
      if (res.status !== 200) {
        const errs = [...(body.get('node_errors') as PyDict)].map(([id, e]) => [
          id,
          ((e as PyDict).get('errors') as PyDict[]).map((x) => `${String(x.get('type'))}: ${String(x.get('details'))}`),
        ]);
        expect(pyDumps(errs), key).toBe(pyDumps([...(want.get('node_errors') as PyDict)]));
        return { id: '', outputs: new Map() };
      }
      const id = String(body.get('prompt_id'));
      await waitFor(() => (executing.get(id) ?? []).includes(null), `the end of ${key}`);
      expect(executing.get(id), key).toEqual((want.get('executing_nodes') as PyValue[]).map((n) => (n === null ? null : String(n))));
      const hist = pyLoads(await (await fetch(`${sim.url}/history/${id}`)).text()) as PyDict;
      const entry = hist.get(id) as PyDict;
      expect(String((entry.get('status') as PyDict).get('status_str')), key).toBe(want.get('status_str'));
      const outputs = entry.get('outputs') as PyDict;
      expect([...outputs.keys()], key).toEqual([...(want.get('outputs') as PyDict).keys()]);
      return { id, outputs };
    };
    const fileOf = (outputs: PyDict, node: string): string => String((((outputs.get(node) as PyDict).get('images') as PyDict[])[0] as PyDict).get('filename'));

    const backend = load('flux_kontext_dev_basic.backend.api.json');
    const api = load('flux_kontext_dev_basic.api.json');
    const first = await submit(backend, 'flux_kontext_dev_basic.backend.api.json as is');
    expect(fileOf(first.outputs, '136')).toMatch(/^ComfyUI_\d{5}_\.png$/);
    await submit(backend, "flux_kontext_dev_basic.backend.api.json with 142.image = 'no_such_file_99999.png' (missing file)", 'no_such_file_99999.png');
    const asIs = await submit(api, 'flux_kontext_dev_basic.api.json as is');
    const temp = fileOf(asIs.outputs, '173');
    expect(temp).toMatch(/^ComfyUI_temp_[a-z]{5}_00001_\.png$/);
    await submit(api, "flux_kontext_dev_basic.api.json with 142.image = 'no_such_file_99999.png [output]' (missing file)", 'no_such_file_99999.png [output]');
    const existing = await submit(api, "flux_kontext_dev_basic.api.json with 142.image = '<existing output> [output]'", `${fileOf(first.outputs, '136')} [output]`);
    expect(fileOf(existing.outputs, '173')).toBe(temp.replace('_00001_', '_00002_'));
    const trapped = pyLoads(pyDumps(api)) as PyDict;
    ((trapped.get('37') as PyDict).get('inputs') as PyDict).set('unet_name', 'missing-model.safetensors');
    const trap = await submit(trapped, 'flux_kontext_dev_basic.api.json with a missing unet (partial-validation trap)', `${fileOf(first.outputs, '136')} [output]`);
    expect(fileOf(trap.outputs, '173')).toBe(fileOf(existing.outputs, '173'));
    ws.close();
  });

  it('validation_error: 400 answers as recorded, no WebSocket message', async () => {
    const c = loadCase('validation_error');
    const watcher = new WebSocket(`${sim.url.replace(/^http/, 'ws')}/ws?clientId=${c.clientId}`);
    const seen: string[] = [];
    watcher.on('message', (d: Buffer) => seen.push(d.toString()));
    await new Promise((resolve) => watcher.once('open', resolve));
    await waitFor(() => seen.length >= 1, 'initial status');
    const r = await replay(sim, c);
    expect(collapse(r.labels)).toEqual(index.validation_error);
    checkHttp(c, r);
    await delay(100);
    expect(seen).toHaveLength(1);
    watcher.close();
  });
});
