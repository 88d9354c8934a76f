/**
 * The simulator's pause (SIGSTOP) and resume (SIGCONT) over real HTTP, TCP and WebSockets, and
 * models installed at runtime. "Nothing happens while paused" is shown against a twin simulator:
 * while one is paused, the twin runs a whole prompt (an event we can await), and the paused one
 * must not have moved in that time.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type Simulator, startSimulator } from '../simulator/server.js';
import { makeImage } from './helpers/images.js';
import { kontextPrompt } from './helpers/kontext-prompt.js';
import { until } from './helpers/stack.js';

const STEP_MS = 10;
const STEPS = 20;

let sims: Simulator[] = [];
afterEach(async () => {
  await Promise.all(sims.map((s) => s.close()));
  sims = [];
});

async function newSim(extra: Parameters<typeof startSimulator>[0] = {}): Promise<Simulator> {
  const sim = await startSimulator({ port: 0, stepMs: STEP_MS, ...extra });
  sims.push(sim);
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(await makeImage('png', 64, 64))], { type: 'image/png' }), 'ref.png');
  const res = await fetch(`${sim.url}/upload/image`, { method: 'POST', body: form });
  expect(res.status).toBe(200);
  return sim;
}

function prompt(seed: number): Record<string, unknown> {
  const p = kontextPrompt('ref.png');
  (p['31'] as { inputs: Record<string, unknown> }).inputs.steps = STEPS;
  (p['31'] as { inputs: Record<string, unknown> }).inputs.seed = seed;
  return p;
}

async function queuePrompt(sim: Simulator, id: string, clientId: string, seed = 1): Promise<void> {
  const res = await fetch(`${sim.url}/prompt`, {
    method: 'POST',
    body: JSON.stringify({ prompt: prompt(seed), prompt_id: id, client_id: clientId }),
  });
  expect(res.status).toBe(200);
}

async function historyStatus(sim: Simulator, id: string): Promise<string | undefined> {
  const body = (await (await fetch(`${sim.url}/history/${id}`)).json()) as Record<string, { status: { status_str: string } }>;
  return body[id]?.status.status_str;
}

/** Runs one whole prompt on an unpaused simulator: the stretch of time the paused one must sit still through. */
async function twinRunsAPrompt(twin: Simulator, id: string): Promise<void> {
  await queuePrompt(twin, id, 'twin');
  await until(`twin prompt ${id}`, async () => (await historyStatus(twin, id)) === 'success');
}

/** A WebSocket client that records the sampler steps of its prompts and the messages it got. */
class Listener {
  readonly steps: Array<{ prompt: string; value: number }> = [];
  messages = 0;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.messages++;
      if (isBinary) return;
      const msg = JSON.parse(data.toString()) as { type: string; data: { value?: number; prompt_id?: string } };
      if (msg.type === 'progress') this.steps.push({ prompt: msg.data.prompt_id ?? '', value: msg.data.value ?? -1 });
    });
  }

  static async open(sim: Simulator, clientId: string): Promise<Listener> {
    const ws = new WebSocket(`${sim.url.replace(/^http/, 'ws')}/ws?clientId=${clientId}`);
    const listener = new Listener(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await until('the greeting', () => listener.messages > 0);
    return listener;
  }
}

describe('simulator pause and resume', () => {
  it('accepts connections while paused but answers no request until resumed', async () => {
    const [sim, twin] = await Promise.all([newSim(), newSim()]);
    sim.pause();

    // The kernel still accepts the connection, as for a stopped process.
    const raw = net.connect(sim.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
    raw.destroy();

    let answered = false;
    const pending = fetch(`${sim.url}/queue`).then(async (res) => {
      answered = true;
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    });
    await twinRunsAPrompt(twin, 'twin-1');
    expect(answered).toBe(false);

    sim.resume();
    const reply = await pending;
    expect(reply).toEqual({ status: 200, body: { queue_running: [], queue_pending: [] } });
    // And it keeps answering afterwards.
    expect((await fetch(`${sim.url}/system_stats`)).status).toBe(200);
  });

  it('freezes the running prompt where it stands and runs it and the queued one to the end after resume', async () => {
    const [sim, twin] = await Promise.all([newSim(), newSim()]);
    const listener = await Listener.open(sim, 'me');
    await queuePrompt(sim, 'first', 'me', 1);
    await queuePrompt(sim, 'second', 'me', 2);
    await until('a few steps of the first prompt', () => listener.steps.length >= 3);
    sim.pause();
    // A frame written just before the pause can still be on its way to us (seen on Node 24): a first
    // prompt on the twin lets it land, like bytes a stopped process had already sent.
    await twinRunsAPrompt(twin, 'twin-0');
    const atPause = listener.steps.length;
    const messagesAtPause = listener.messages;

    // A whole prompt's worth of time (and more) passes on the twin; ours must not move.
    await twinRunsAPrompt(twin, 'twin-1');
    expect(listener.steps.length).toBe(atPause);
    expect(listener.messages).toBe(messagesAtPause);
    expect(atPause).toBeLessThan(STEPS);

    sim.resume();
    await until('both prompts done', async () => (await historyStatus(sim, 'second')) !== undefined);
    expect(await historyStatus(sim, 'first')).toBe('success');
    expect(await historyStatus(sim, 'second')).toBe('success');
    // Continued where it was: every step exactly once, in order, the first prompt before the second.
    const expected = [1, 2].flatMap((n) => Array.from({ length: STEPS }, (_, i) => ({ prompt: n === 1 ? 'first' : 'second', value: i + 1 })));
    expect(listener.steps).toEqual(expected);
  });

  it('answers no WebSocket ping while paused, and does after resume', async () => {
    const [sim, twin] = await Promise.all([newSim(), newSim()]);
    const listener = await Listener.open(sim, 'me');
    let pongs = 0;
    listener.ws.on('pong', () => pongs++);
    listener.ws.ping();
    await until('a pong while running', () => pongs === 1);

    sim.pause();
    listener.ws.ping();
    await twinRunsAPrompt(twin, 'twin-1');
    expect(pongs).toBe(1);

    sim.resume();
    await until('the pong after resume', () => pongs === 2);
  });

  it('closes while paused', async () => {
    const sim = await newSim();
    await Listener.open(sim, 'me');
    sim.pause();
    const pending = fetch(`${sim.url}/queue`).then(
      () => 'answered',
      () => 'cut',
    );
    await sim.close();
    expect(await pending).toBe('cut');
  });
});

describe('models installed at runtime', () => {
  it('shows a model set with setModels in /object_info and accepts prompts that use it', async () => {
    const sim = await newSim({ models: { diffusion_models: [] } });
    const unet = async (): Promise<unknown> => {
      const info = (await (await fetch(`${sim.url}/object_info/UNETLoader`)).json()) as {
        UNETLoader: { input: { required: { unet_name: [string[]] } } };
      };
      return info.UNETLoader.input.required.unet_name[0];
    };
    expect(await unet()).toEqual([]);
    const refused = await fetch(`${sim.url}/prompt`, { method: 'POST', body: JSON.stringify({ prompt: prompt(1) }) });
    expect(refused.status).toBe(400);

    sim.setModels({ diffusion_models: ['flux1-dev-kontext_fp8_scaled.safetensors'] });
    expect(await unet()).toEqual(['flux1-dev-kontext_fp8_scaled.safetensors']);
    expect(await (await fetch(`${sim.url}/models/diffusion_models`)).json()).toEqual(['flux1-dev-kontext_fp8_scaled.safetensors']);
    // The other folders kept their files.
    expect(await (await fetch(`${sim.url}/models/vae`)).json()).toEqual(['ae.safetensors']);
    await queuePrompt(sim, 'now-ok', 'me');
    await until('the prompt done', async () => (await historyStatus(sim, 'now-ok')) === 'success');
  });
});
