/**
 * The simulator's link model (simulator/link.ts: delay and bandwidth, for machines without tc
 * netem) and its photo result mode (simulator/photo.ts: real-size PNGs), over real HTTP and
 * WebSockets. Times are lower bounds only: a slow machine may take longer, never shorter.
 */
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type Simulator, type SimulatorOptions, startSimulator } from '../simulator/server.js';
import { photoFrame, photoPng } from '../simulator/photo.js';
import { makeImage } from './helpers/images.js';
import { kontextPrompt } from './helpers/kontext-prompt.js';
import { startSimulatorProcess, type Child } from './helpers/processes.js';
import { until } from './helpers/stack.js';

const RTT = 40;
const MBIT = 200;

let sims: Simulator[] = [];
let children: Child[] = [];
afterEach(async () => {
  await Promise.all(sims.map((s) => s.close()));
  await Promise.all(children.map((c) => c.kill()));
  sims = [];
  children = [];
});

async function newSim(extra: SimulatorOptions): Promise<Simulator> {
  const sim = await startSimulator({ port: 0, stepMs: 1, ...extra });
  sims.push(sim);
  return sim;
}

/** Uploads `data` as input image `name`; ms the POST took. */
async function upload(sim: Simulator, data: Buffer, name: string): Promise<number> {
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(data)], { type: 'image/png' }), name);
  const start = performance.now();
  const res = await fetch(`${sim.url}/upload/image`, { method: 'POST', body: form });
  expect(res.status).toBe(200);
  await res.arrayBuffer();
  return performance.now() - start;
}

/** GETs an input image whole; its bytes and the ms from the request to the last byte. */
async function download(sim: Simulator, name: string): Promise<{ bytes: Buffer; ms: number }> {
  const start = performance.now();
  const res = await fetch(`${sim.url}/view?filename=${encodeURIComponent(name)}&type=input`);
  expect(res.status).toBe(200);
  const bytes = Buffer.from(await res.arrayBuffer());
  return { bytes, ms: performance.now() - start };
}

/** A 1024x1024 photo PNG of the size real results have. */
async function bigPng(): Promise<Buffer> {
  return photoPng(photoFrame(1024, 1024, Buffer.alloc(32)), 4, []);
}

/** Ms the link needs to serialise `bytes` at MBIT. */
const wireMs = (bytes: number) => (bytes * 8) / (MBIT * 1000);

describe('simulator link model', () => {
  it('delays each request and answer by half the round trip', async () => {
    const sim = await newSim({ linkRttMs: RTT });
    await fetch(`${sim.url}/system_stats`); // the connection is open and kept alive from here on
    const start = performance.now();
    const res = await fetch(`${sim.url}/system_stats`);
    await res.json();
    expect(performance.now() - start).toBeGreaterThanOrEqual(RTT - 2);
  });

  it('paces a 1.4 MB download and upload at the bandwidth, plus the round trip', async () => {
    const sim = await newSim({ linkRttMs: RTT, linkMbit: MBIT });
    const png = await bigPng();
    expect(png.length).toBeGreaterThan(1_000_000);
    const upMs = await upload(sim, png, 'big.png');
    expect(upMs).toBeGreaterThanOrEqual(wireMs(png.length) + RTT - 2);
    const { bytes, ms } = await download(sim, 'big.png');
    expect(bytes.equals(png)).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(wireMs(png.length) + RTT - 2);
  });

  it('shares one bandwidth between the connections', async () => {
    const sim = await newSim({ linkMbit: MBIT });
    const png = await bigPng();
    await upload(sim, png, 'big.png');
    const start = performance.now();
    const both = await Promise.all([download(sim, 'big.png'), download(sim, 'big.png')]);
    expect(both.every((d) => d.bytes.equals(png))).toBe(true);
    expect(performance.now() - start).toBeGreaterThanOrEqual(2 * wireMs(png.length) - 2);
  });

  it('delays each WebSocket message by half the round trip, in order', async () => {
    const sentAt = new Map<string, number>();
    const sim = await newSim({ linkRttMs: RTT, onMessageSent: (text) => sentAt.set(text, performance.now()) });
    await upload(sim, await makeImage('png', 64, 64), 'ref.png');
    const ws = new WebSocket(`${sim.url.replace('http', 'ws')}/ws?clientId=c1`);
    const got: Array<{ text: string; at: number }> = [];
    ws.on('message', (data, binary) => {
      if (!binary) got.push({ text: String(data), at: performance.now() });
    });
    await new Promise((r) => ws.once('open', r));
    const flagsSent = performance.now();
    ws.send(JSON.stringify({ type: 'feature_flags', data: {} }));
    await until('feature flags answered', () => got.some((m) => m.text.includes('"feature_flags"')));
    // There and back: the flags reach the server half a round trip late, the answer comes back as late.
    expect(got.find((m) => m.text.includes('"feature_flags"'))!.at - flagsSent).toBeGreaterThanOrEqual(RTT - 2);
    const res = await fetch(`${sim.url}/prompt`, { method: 'POST', body: JSON.stringify({ prompt: kontextPrompt('ref.png'), prompt_id: 'p1', client_id: 'c1' }) });
    expect(res.status).toBe(200);
    await until('prompt done', () => got.some((m) => m.text.includes('"executing"') && m.text.includes('"node": null')));
    const delays = got.filter((m) => sentAt.has(m.text)).map((m) => m.at - sentAt.get(m.text)!);
    expect(delays.length).toBeGreaterThan(5);
    for (const d of delays) expect(d).toBeGreaterThanOrEqual(RTT / 2 - 2);
    // The order the server sent them in is the order they arrived in.
    const order = got.filter((m) => sentAt.has(m.text)).map((m) => sentAt.get(m.text)!);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    ws.close();
  });

  it('takes the link from the command line', async () => {
    const child = await startSimulatorProcess(['--port', '0', '--link-rtt-ms', String(RTT), '--result-images', 'photo']);
    children.push(child);
    await fetch(`${child.url}/system_stats`);
    const start = performance.now();
    await (await fetch(`${child.url}/system_stats`)).json();
    expect(performance.now() - start).toBeGreaterThanOrEqual(RTT - 2);
  });
});

describe('simulator photo results', () => {
  /** Runs the Kontext prompt with `seed`; the result PNG's bytes. */
  async function result(sim: Simulator, seed: number): Promise<Buffer> {
    const prompt = kontextPrompt('ref.png');
    (prompt['31'] as { inputs: Record<string, unknown> }).inputs.seed = seed;
    const id = `seed-${seed}-${Math.random()}`;
    const res = await fetch(`${sim.url}/prompt`, { method: 'POST', body: JSON.stringify({ prompt, prompt_id: id }) });
    expect(res.status).toBe(200);
    type History = Record<string, { outputs: Record<string, { images: Array<{ filename: string; subfolder: string; type: string }> }> }>;
    let images: Array<{ filename: string; subfolder: string; type: string }> = [];
    await until(`prompt ${id}`, async () => {
      const h = (await (await fetch(`${sim.url}/history/${id}`)).json()) as History;
      images = h[id]?.outputs['136']?.images ?? [];
      return images.length > 0;
    });
    const f = images[0]!;
    const view = await fetch(`${sim.url}/view?${new URLSearchParams({ filename: f.filename, subfolder: f.subfolder, type: f.type })}`);
    return Buffer.from(await view.arrayBuffer());
  }

  it('gives 1024x1024 PNGs of 1-2 MB, equal for equal seeds and varied across seeds', async () => {
    const sims2 = [await newSim({ resultImages: 'photo' }), await newSim({ resultImages: 'photo' })];
    for (const sim of sims2) await upload(sim, await makeImage('png', 64, 64), 'ref.png');
    const first = await result(sims2[0]!, 7);
    const meta = await sharp(first).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 1024, 1024]);
    expect(first.length).toBeGreaterThan(1_000_000);
    expect(first.length).toBeLessThan(2_000_000);
    expect((await result(sims2[1]!, 7)).equals(first)).toBe(true);
    const others = await Promise.all([1, 2, 3, 4, 5].map((seed) => result(sims2[0]!, seed)));
    const pixels = new Set(await Promise.all([first, ...others].map(async (png) => (await sharp(png).raw().toBuffer()).subarray(0, 4096).toString('hex'))));
    expect(pixels.size).toBeGreaterThan(1);
  });

  it('keeps the derived results small by default', async () => {
    const sim = await newSim({});
    await upload(sim, await makeImage('png', 64, 64), 'ref.png');
    expect((await result(sim, 7)).length).toBeLessThan(1_000_000);
  });
});
