/**
 * The HTTP routes of ComfyUI's PromptServer that clients use (docs/comfyui-protocol.md §2), on top of the
 * simulator's state. Each handler follows the order of checks of server.py so the same bad
 * request gets the same status code.
 */
import { randomUUID } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import { annotatedFilepath, folderByType, type Folders, guessMime, isInside, pyBasename, pyJoin } from './files.js';
import { empty, json, type Reply, type Request, type Router } from './http.js';
import { viewVariant } from './images.js';
import { type ClassContext, NODE_CLASSES, nodeInfo } from './node-classes.js';
import { type HistoryEntry, type PromptQueue, queueItemJson } from './prompt-queue.js';
import {
  PyException,
  PyFloat,
  type PyDict,
  type PyValue,
  isDict,
  pyBool,
  pyFloat,
  pyIn,
  pyInt,
  pyLoads,
  pyStr,
  pyTypeName,
} from './py.js';
import { handleUpload } from './upload.js';
import { validatePrompt } from './validation.js';

/** What the routes need from the running simulator. */
export interface RouteState {
  folders: Folders;
  classCtx: ClassContext;
  queue: PromptQueue;
  /** The next server-chosen `number`. */
  counter: { next: number };
  /** Interrupts the running prompt (sets the flag). */
  interrupt(): void;
  /** `/free`: flags applied after the running prompt, or at once when idle. */
  setFreeFlags(unloadModels: boolean, freeMemory: boolean): void;
  features(): PyDict;
  systemStats(): PyDict;
}

const SENSITIVE_KEYS = ['auth_token_comfy_org', 'api_key_comfy_org'];

const MODEL_FOLDERS = [
  'checkpoints', 'configs', 'loras', 'vae', 'text_encoders', 'diffusion_models', 'clip_vision', 'style_models', 'embeddings',
  'diffusers', 'vae_approx', 'controlnet', 'gligen', 'upscale_models', 'custom_nodes', 'hypernetworks', 'photomaker',
  'classifiers', 'model_patches', 'audio_encoders',
];

/** Python `d[key]` on a JSON body value. */
function getItem(d: PyValue, key: string): PyValue {
  if (isDict(d)) {
    if (!d.has(key)) throw new PyException('KeyError', `'${key}'`);
    return d.get(key) as PyValue;
  }
  throw new PyException('TypeError', `${pyTypeName(d)} indices must be integers`);
}

/** Python `for x in value`. */
function pyIter(v: PyValue): PyValue[] {
  if (Array.isArray(v)) return v;
  if (typeof v === 'string') return [...v];
  if (isDict(v)) return [...v.keys()];
  throw new PyException('TypeError', `'${pyTypeName(v)}' object is not iterable`);
}

/** Python `dict.get` on a body that must be a dict (anything else is an AttributeError → 500). */
function dictGet(d: PyValue, key: string): PyValue | undefined {
  if (!isDict(d)) throw new PyException('AttributeError', `'${pyTypeName(d)}' object has no attribute 'get'`);
  return d.get(key);
}

function historyJson(entries: Array<[string, HistoryEntry]>): PyDict {
  const out: PyDict = new Map();
  for (const [id, e] of entries) {
    out.set(
      id,
      new Map<string, PyValue>([
        ['prompt', queueItemJson(e.item, false)],
        ['outputs', e.outputs],
        [
          'status',
          new Map<string, PyValue>([
            ['status_str', e.status.statusStr],
            ['completed', e.status.completed],
            ['messages', e.status.messages.map(([t, d]) => [t, d])],
          ]),
        ],
        ['meta', e.meta],
      ]),
    );
  }
  return out;
}

/** Registers every ComfyUI route the simulator serves (each also under /api, except /internal). */
export function registerRoutes(router: Router, s: RouteState): void {
  router.add('GET', '/', () => ({
    status: 200,
    headers: { 'Content-Type': 'text/html; charset=utf-8' },
    body: '<!doctype html><title>ComfyUI simulator</title><p>ComfyUI 0.3.64 protocol simulator (no frontend).</p>',
  }));

  router.add('POST', '/prompt', async (req) => postPrompt(req, s));
  router.add('GET', '/prompt', () => json(new Map([['exec_info', new Map([['queue_remaining', s.queue.remaining()]])]])));

  router.add('GET', '/queue', () =>
    json(
      new Map<string, PyValue>([
        ['queue_running', s.queue.runningItems().map((i) => queueItemJson(i, true))],
        ['queue_pending', s.queue.pendingItems().map((i) => queueItemJson(i, true))],
      ]),
    ),
  );
  router.add('POST', '/queue', async (req) => {
    const body = pyLoads(await req.text());
    if (pyIn('clear', body) && pyBool(getItem(body, 'clear'))) s.queue.wipe();
    if (pyIn('delete', body)) for (const id of pyIter(getItem(body, 'delete'))) s.queue.deletePending(id);
    return empty(200);
  });

  router.add('POST', '/interrupt', async (req) => {
    let body: PyValue;
    try {
      body = pyLoads(await req.text());
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      body = new Map();
    }
    const promptId = dictGet(body, 'prompt_id') ?? null;
    if (pyBool(promptId)) {
      if (s.queue.runningItems().some((i) => i.promptId === promptId)) s.interrupt();
    } else {
      s.interrupt();
    }
    return empty(200);
  });

  router.add('POST', '/free', async (req) => {
    const body = pyLoads(await req.text());
    s.setFreeFlags(pyBool(dictGet(body, 'unload_models') ?? false), pyBool(dictGet(body, 'free_memory') ?? false));
    return empty(200);
  });

  router.add('GET', '/history', (req) => {
    const max = req.query.has('max_items') ? Number(pyInt(req.query.get('max_items'))) : null;
    const offset = req.query.has('offset') ? Number(pyInt(req.query.get('offset'))) : -1;
    return json(historyJson(s.queue.getHistory(max, offset)));
  });
  router.add('GET', '/history/{prompt_id}', (req) => {
    const id = req.params.prompt_id ?? '';
    const e = s.queue.history.get(id);
    return json(e ? historyJson([[id, e]]) : new Map());
  });
  router.add('POST', '/history', async (req) => {
    const body = pyLoads(await req.text());
    if (pyIn('clear', body) && pyBool(getItem(body, 'clear'))) s.queue.history.clear();
    if (pyIn('delete', body)) {
      for (const id of pyIter(getItem(body, 'delete'))) if (typeof id === 'string') s.queue.history.delete(id);
    }
    return empty(200);
  });

  router.add('GET', '/view', (req) => view(req, s.folders));
  router.add('POST', '/upload/image', async (req) => handleUpload(req.headers, await req.body(), s.folders));

  router.add('GET', '/system_stats', () => json(s.systemStats()));
  router.add('GET', '/features', () => json(s.features()));
  router.add('GET', '/object_info', () => {
    const out: PyDict = new Map();
    for (const cls of NODE_CLASSES.values()) out.set(cls.name, nodeInfo(cls, s.classCtx));
    return json(out);
  });
  router.add('GET', '/object_info/{node_class}', (req) => {
    const cls = NODE_CLASSES.get(req.params.node_class ?? '');
    return json(cls ? new Map([[cls.name, nodeInfo(cls, s.classCtx)]]) : new Map());
  });
  router.add('GET', '/models', () => json(MODEL_FOLDERS));
  router.add('GET', '/models/{folder}', (req) => {
    const folder = req.params.folder ?? '';
    if (!MODEL_FOLDERS.includes(folder)) return empty(404);
    const models = s.classCtx.models as unknown as Record<string, string[] | undefined>;
    return json([...(models[folder] ?? [])]);
  });
  router.add('GET', '/embeddings', () => json([]));
  router.add('GET', '/extensions', () => json([]));

  router.add(
    'GET',
    '/internal/files/{directory_type}',
    async (req) => {
      const type = req.params.directory_type ?? '';
      const dir = folderByType(s.folders, type);
      if (dir === null) return json(new Map([['error', 'Invalid directory type']]), 400);
      const entries: Array<[string, number]> = [];
      for (const name of await fsp.readdir(dir)) {
        if (name.startsWith('.')) continue;
        const st = await fsp.stat(pyJoin(dir, name)).catch(() => null);
        if (st?.isFile()) entries.push([name, st.mtimeMs]);
      }
      return json(entries.sort((a, b) => b[1] - a[1]).map(([n]) => n));
    },
    false,
  );
}

async function postPrompt(req: Request, s: RouteState): Promise<Reply> {
  const body = pyLoads(await req.text());
  let number: number | PyFloat;
  if (pyIn('number', body)) {
    number = pyFloat(getItem(body, 'number'));
  } else {
    number = s.counter.next;
    if (pyIn('front', body) && pyBool(getItem(body, 'front'))) number = number === 0 ? 0 : -number;
    s.counter.next++;
  }
  if (!pyIn('prompt', body)) {
    return json(
      new Map<string, PyValue>([
        ['error', new Map<string, PyValue>([['type', 'no_prompt'], ['message', 'No prompt provided'], ['details', 'No prompt provided'], ['extra_info', new Map()]])],
        ['node_errors', new Map()],
      ]),
      400,
    );
  }
  const prompt = getItem(body, 'prompt');
  const promptIdRaw = dictGet(body, 'prompt_id');
  const promptId = promptIdRaw === undefined ? randomUUID() : pyStr(promptIdRaw);
  const partial = isDict(body) && body.has('partial_execution_targets') ? (body.get('partial_execution_targets') ?? null) : undefined;
  const result = validatePrompt(prompt, partial, s.classCtx);
  let extraData: PyValue = new Map();
  if (pyIn('extra_data', body)) extraData = getItem(body, 'extra_data');
  if (pyIn('client_id', body)) {
    if (!isDict(extraData)) throw new PyException('TypeError', `'${pyTypeName(extraData)}' object does not support item assignment`);
    extraData.set('client_id', getItem(body, 'client_id'));
  }
  if (!result.ok) {
    return json(new Map<string, PyValue>([['error', result.error], ['node_errors', result.nodeErrors]]), 400);
  }
  // Non-dict extra_data would crash ComfyUI's worker later; refuse it here instead.
  if (!isDict(extraData)) throw new PyException('AttributeError', `'${pyTypeName(extraData)}' object has no attribute 'copy'`);
  s.queue.put({
    number,
    promptId,
    prompt: prompt as PyDict,
    extraData,
    outputs: result.goodOutputs,
    sensitiveKeys: SENSITIVE_KEYS.filter((k) => extraData instanceof Map && extraData.has(k)),
  });
  return json(new Map<string, PyValue>([['prompt_id', promptId], ['number', number], ['node_errors', result.nodeErrors]]));
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isFile();
  } catch {
    return false;
  }
}

async function view(req: Request, folders: Folders): Promise<Reply> {
  const q = req.query;
  if (!q.has('filename')) return empty(404);
  const annotated = annotatedFilepath(q.get('filename') ?? '', folders);
  let filename = annotated.name;
  let outputDir = annotated.base;
  if (!filename) return empty(400);
  if (filename.startsWith('/') || filename.includes('..')) return empty(400);
  if (outputDir === null) outputDir = folderByType(folders, q.has('type') ? q.get('type') : 'output');
  if (outputDir === null) return empty(400);
  if (q.has('subfolder')) {
    const full = pyJoin(outputDir, q.get('subfolder') ?? '');
    if (!isInside(outputDir, full)) return empty(403);
    outputDir = full;
  }
  filename = pyBasename(filename);
  const file = pyJoin(outputDir, filename);
  if (!(await isFile(file))) return empty(404);
  const disposition = `filename="${filename}"`;
  const channelParam = q.get('channel');
  if (q.has('preview')) {
    const info = (q.get('preview') ?? '').split(';');
    let format: 'webp' | 'jpeg' = info[0] === 'jpeg' ? 'jpeg' : 'webp';
    if ((channelParam ?? '').includes('a')) format = 'webp';
    const last = info[info.length - 1] ?? '';
    const quality = /^\d+$/.test(last) ? parseInt(last, 10) : 90;
    const body = await viewVariant(file, { preview: format, quality, rgb: channelParam === 'rgb' });
    return { status: 200, headers: { 'Content-Type': `image/${format}`, 'Content-Disposition': disposition }, body };
  }
  const channel = q.has('channel') ? channelParam : 'rgba';
  if (channel === 'rgb' || channel === 'a') {
    const body = await viewVariant(file, { channel });
    return { status: 200, headers: { 'Content-Type': 'image/png', 'Content-Disposition': disposition }, body };
  }
  let contentType = guessMime(filename) ?? 'application/octet-stream';
  if (['text/html', 'text/html-sandboxed', 'application/xhtml+xml', 'text/javascript', 'text/css'].includes(contentType)) {
    contentType = 'application/octet-stream';
  }
  const st = await fsp.stat(file);
  return {
    status: 200,
    headers: { 'Content-Type': contentType, 'Content-Disposition': disposition, 'Last-Modified': st.mtime.toUTCString() },
    body: await fsp.readFile(file),
  };
}

/** `/system_stats` for a CPU machine like the recorded server. */
export function systemStats(argv: string[]): PyDict {
  const total = os.totalmem();
  const free = os.freemem();
  return new Map<string, PyValue>([
    [
      'system',
      new Map<string, PyValue>([
        ['os', process.platform === 'win32' ? 'nt' : 'posix'],
        ['ram_total', total],
        ['ram_free', free],
        ['comfyui_version', '0.3.64'],
        ['required_frontend_version', '1.27.10'],
        ['installed_templates_version', null],
        ['required_templates_version', '0.1.95'],
        ['python_version', '3.11.2 (main, Apr 28 2025, 14:11:48) [GCC 12.2.0]'],
        ['pytorch_version', '2.8.0+cpu'],
        ['embedded_python', false],
        ['argv', argv],
      ]),
    ],
    [
      'devices',
      [
        new Map<string, PyValue>([
          ['name', 'cpu'],
          ['type', 'cpu'],
          ['index', null],
          ['vram_total', total],
          ['vram_free', free],
          ['torch_vram_total', total],
          ['torch_vram_free', free],
        ]),
      ],
    ],
  ]);
}

