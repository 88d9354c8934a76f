/**
 * A ComfyUI 0.3.64 simulator: a real HTTP + WebSocket server that behaves like ComfyUI running
 * the FLUX.1 Kontext workflow (docs/comfyui-protocol.md), without a GPU. Sampling takes
 * `stepMs` per step; images are real PNG files derived deterministically from the reference image,
 * the prompt text and the seed.
 */
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { ObjectCache, OutputCache } from './cache.js';
import { PromptExecutor } from './executor.js';
import { codepointCompare, type Folders } from './files.js';
import { originRejected, Router, text } from './http.js';
import type { ClassContext, ModelLists } from './node-classes.js';
import { Link } from './link.js';
import { PauseGate } from './pause.js';
import { PromptQueue } from './prompt-queue.js';
import { PyFloat, type PyDict, type PyValue } from './py.js';
import { registerRoutes, systemStats } from './routes.js';
import { SocketHub } from './sockets.js';

/** Options of startSimulator; every field is optional. */
export interface SimulatorOptions {
  /** Port to listen on; default 8188, 0 picks a free port. */
  port?: number;
  /** Interface to listen on; default '127.0.0.1'. */
  host?: string;
  /** Time per sampler step in ms; default 50. */
  stepMs?: number;
  /** Time per non-sampler node in ms; default 0. */
  loadMs?: number;
  /** Sampler previews: 'none' (default, like ComfyUI) or 'auto' (latent2rgb-style JPEGs). */
  previewMethod?: 'none' | 'auto';
  /** A prompt whose CLIPTextEncode text contains this fails halfway through sampling; default never. */
  failOnText?: string;
  /** Folder holding input/, output/, temp/; default a fresh temp dir, removed on close. */
  baseDir?: string;
  /** Model files "installed" per folder; default the three Kontext files. */
  models?: Partial<Record<'diffusion_models' | 'text_encoders' | 'vae', string[]>>;
  /** Largest side of a sampler preview; default 512. */
  previewSize?: number;
  /** Largest accepted request body in bytes; default 100 MiB. */
  maxUploadSize?: number;
  /**
   * Observer for benchmarks: called with the text of each JSON WebSocket message of the queue and
   * its prompts (`status`, `progress`, `executing`, ...) right after it was sent to its socket(s);
   * not for the greeting a new socket gets, nor for a message no socket received. Default none.
   */
  onMessageSent?: (text: string) => void;
  /** Observer for benchmarks: called with each HTTP request's method and path (with query) when it arrives, before the link delays it. Default none. */
  onRequest?: (method: string, path: string) => void;
  /**
   * Result images: 'derived' (default: the reference recolored per prompt and seed, small PNGs) or
   * 'photo' (photographic pictures the size of real results, 1024x1024 ~1.4-1.6 MB; simulator/photo.ts).
   */
  resultImages?: 'derived' | 'photo';
  /** Round trip of the simulated link to the clients, ms (simulator/link.ts); default 0. */
  linkRttMs?: number;
  /** Bandwidth of the simulated link per direction, Mbit/s; default unlimited. */
  linkMbit?: number;
}

/** A running simulator. */
export interface Simulator {
  /** `http://host:port` */
  url: string;
  port: number;
  baseDir: string;
  /** Stops like a killed ComfyUI: sockets and connections are cut, the running prompt is abandoned. */
  close(): Promise<void>;
  /** Test hook: abruptly terminates every WebSocket (like a network drop). */
  dropSockets(): void;
  /**
   * Test hook, like SIGSTOP: connections are still accepted but nothing is read or answered (no
   * HTTP reply, no WebSocket message, no pong) and the running prompt's timers stand still.
   */
  pause(): void;
  /** Like SIGCONT after `pause()`: held requests are answered and execution continues where it stood. */
  resume(): void;
  /**
   * Test hook: the model files "installed" now, per folder (a folder left out keeps its list).
   * Seen at once by /object_info, /models and validation, as ComfyUI rescans a model folder
   * whose modification time changed.
   */
  setModels(models: SimulatorOptions['models']): void;
}

/** The model files of the Kontext template (docs/comfyui-protocol.md §9.1). */
export const DEFAULT_MODELS: ModelLists = {
  diffusion_models: ['flux1-dev-kontext_fp8_scaled.safetensors'],
  text_encoders: ['clip_l.safetensors', 't5xxl_fp8_e4m3fn_scaled.safetensors'],
  vae: ['ae.safetensors'],
};

const DEFAULT_MAX_UPLOAD = 100 * 1024 * 1024;

/** Starts a simulator (defaults: 127.0.0.1:8188, 50 ms per step, no previews, a temporary base dir). */
export async function startSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  const host = options.host ?? '127.0.0.1';
  const createdBase = options.baseDir === undefined;
  const baseDir = createdBase ? await fsp.mkdtemp(path.join(os.tmpdir(), 'comfyui-sim-')) : path.resolve(options.baseDir as string);
  const folders: Folders = {
    input: path.join(baseDir, 'input'),
    output: path.join(baseDir, 'output'),
    temp: path.join(baseDir, 'temp'),
  };
  // ComfyUI wipes temp/ when it starts; input/ and output/ are kept.
  await fsp.rm(folders.temp, { recursive: true, force: true });
  for (const dir of Object.values(folders)) await fsp.mkdir(dir, { recursive: true });

  const models: ModelLists = {
    diffusion_models: [...(options.models?.diffusion_models ?? DEFAULT_MODELS.diffusion_models)].sort(codepointCompare),
    text_encoders: [...(options.models?.text_encoders ?? DEFAULT_MODELS.text_encoders)].sort(codepointCompare),
    vae: [...(options.models?.vae ?? DEFAULT_MODELS.vae)].sort(codepointCompare),
  };
  const setModels = (next: SimulatorOptions['models']): void => {
    // In place: the route and node-class contexts hold this object.
    for (const folder of ['diffusion_models', 'text_encoders', 'vae'] as const) {
      const list = next?.[folder];
      if (list) models[folder] = [...list].sort(codepointCompare);
    }
  };
  const classCtx: ClassContext = { folders, models };
  const maxUpload = options.maxUploadSize ?? DEFAULT_MAX_UPLOAD;
  const previewMethod = options.previewMethod ?? 'none';
  // An explicit --max-upload-size makes ComfyUI report a float.
  const maxUploadValue: PyValue = options.maxUploadSize === undefined ? maxUpload : new PyFloat(maxUpload);
  const features = (): PyDict =>
    new Map<string, PyValue>([
      ['supports_preview_metadata', true],
      ['max_upload_size', maxUploadValue],
    ]);

  let closed = false;
  // Every timer of the executor goes through the gate, so a pause freezes execution.
  const gate = new PauseGate();
  const sleep = (ms: number): Promise<number> => gate.sleep(ms);

  const link = new Link({ rttMs: options.linkRttMs, mbit: options.linkMbit });
  const outputCache = new OutputCache();
  const objectCache = new ObjectCache();
  let executor: PromptExecutor | null = null;
  const queue: PromptQueue = new PromptQueue(() => hub.queueUpdated(queue.remaining()));
  const hub: SocketHub = new SocketHub(features, () => ({
    queueRemaining: queue.remaining(),
    runningClientId: executor?.clientId ?? null,
    lastNodeId: executor?.lastNodeId ?? null,
  }), options.onMessageSent, link);
  executor = new PromptExecutor(
    hub,
    classCtx,
    { stepMs: options.stepMs ?? 50, loadMs: options.loadMs ?? 0, failOnText: options.failOnText, previewMethod, previewSize: options.previewSize ?? 512, resultImages: options.resultImages ?? 'derived' },
    outputCache,
    objectCache,
    sleep,
  );
  const exec = executor;

  let running = false;
  let pendingFree = false;
  const freeMemory = (): void => {
    outputCache.clear();
    objectCache.clear();
  };

  const router = new Router();
  let port = options.port ?? 8188;
  registerRoutes(router, {
    folders,
    classCtx,
    queue,
    counter: { next: 0 },
    interrupt: () => exec.interrupt(),
    setFreeFlags: (_unload, free) => {
      if (!free) return;
      if (running) pendingFree = true;
      else freeMemory();
    },
    features,
    systemStats: () =>
      systemStats(['main.py', '--listen', host, '--port', String(port), '--preview-method', previewMethod, '--base-directory', '${COMFY_BASE}']),
  });
  router.add('GET', '/ws', () => text(400, 'No WebSocket UPGRADE hdr: None\n Can "Upgrade" only to "WebSocket".'));

  const server = http.createServer((req, res) => {
    options.onRequest?.(req.method ?? 'GET', req.url ?? '/');
    void router.handle(req, res, maxUpload, () => gate.whenRunning(), link);
  });
  server.keepAliveTimeout = 75_000;
  server.on('connection', (socket) => gate.track(socket));
  gate.onResume(() => hub.hold(false));
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  server.on('upgrade', async (req, socket, head) => {
    // Over a link the handshake takes a round trip (the request there, the 101 back).
    if (link.oneWayMs > 0) await new Promise((r) => setTimeout(r, 2 * link.oneWayMs));
    // A handshake read just before a pause is answered after the resume.
    await gate.whenRunning();
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (closed || (url.pathname !== '/ws' && url.pathname !== '/api/ws')) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\nConnection: close\r\n\r\n404: Not Found');
      return;
    }
    if (originRejected(req)) {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: application/octet-stream\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => hub.accept(ws, url.searchParams.get('clientId')));
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    if (createdBase) await fsp.rm(baseDir, { recursive: true, force: true });
    throw err;
  }
  port = (server.address() as AddressInfo).port;

  // The worker: one prompt at a time, in queue order (ComfyUI's prompt_worker thread).
  const signal = { closed: false };
  const worker = (async () => {
    for (;;) {
      await gate.whenRunning();
      const got = await queue.get(signal);
      if (!got) return;
      running = true;
      let outcome;
      try {
        outcome = await exec.execute(got.item);
      } catch (err) {
        // A simulator bug must not kill the worker; record it as a failed prompt.
        outcome = { success: false, messages: [], outputs: new Map(), meta: new Map() };
        process.emitWarning(`comfyui simulator: prompt ${got.item.promptId} crashed: ${String(err)}`);
      }
      queue.taskDone(got.taskId, { outputs: outcome.outputs, meta: outcome.meta }, {
        statusStr: outcome.success ? 'success' : 'error',
        completed: outcome.success,
        messages: outcome.messages,
      });
      if (exec.clientId !== null) {
        hub.sendSync('executing', new Map<string, PyValue>([['node', null], ['prompt_id', got.item.promptId]]), exec.clientId);
      }
      running = false;
      if (pendingFree) {
        pendingFree = false;
        freeMemory();
      }
    }
  })();

  let httpTimeouts = { headers: server.headersTimeout, request: server.requestTimeout };
  const displayHost = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${displayHost}:${port}`,
    port,
    baseDir,
    dropSockets: () => hub.dropAll(),
    pause: () => {
      if (closed || gate.isPaused) return;
      hub.hold(true);
      gate.pause();
      // Node's own request timeouts would answer 408 during a long pause; a stopped process cannot.
      httpTimeouts = { headers: server.headersTimeout, request: server.requestTimeout };
      server.headersTimeout = 0;
      server.requestTimeout = 0;
    },
    resume: () => {
      if (!gate.isPaused) return;
      server.headersTimeout = httpTimeouts.headers;
      server.requestTimeout = httpTimeouts.request;
      gate.resume();
    },
    setModels,
    close: () => {
      closing ??= (async () => {
        // Like a killed ComfyUI: connections are cut first, so no client hears the abandoned
        // prompt end (no execution_interrupted, no executing null); its history is lost too.
        closed = true;
        signal.closed = true;
        hub.dropAll();
        wss.close();
        server.closeAllConnections();
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        // A paused simulator's held sockets are cut too (SIGKILL works on a stopped process).
        for (const socket of gate.openSockets()) socket.destroy();
        exec.interrupt();
        gate.release();
        queue.wake();
        await Promise.race([worker, new Promise((r) => setTimeout(r, 2000).unref())]);
        await serverClosed;
        if (createdBase) await fsp.rm(baseDir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
