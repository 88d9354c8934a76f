/**
 * Helpers for replaying the recorded ComfyUI transcripts (test/fixtures/comfyui/transcripts) against
 * the simulator: loading them, the collapsed notation of index.json, a reference input image,
 * and a normalizer that makes recorded and replayed JSON comparable (ids, timestamps, and the
 * fields that only a real machine fills in).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { type PyDict, type PyValue, isDict, pyDumps, pyLoads } from '../../simulator/py.js';

/** Repository root (the folder holding package.json). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The transcripts recorded from ComfyUI 0.3.64 (the reference prompts sit beside, in ../reference). */
export const TRANSCRIPTS_DIR = path.resolve(REPO_ROOT, 'test/fixtures/comfyui/transcripts');

/** One recorded event of a case file. */
export interface RecordedEvent {
  t: number;
  dir: 'ws-open' | 'ws-send' | 'ws-recv' | 'http';
  path?: string;
  kind?: 'json' | 'binary';
  /** Raw JSON text of `msg` (floats kept), for ws events. */
  msgText?: string;
  msg?: PyValue;
  method?: string;
  request?: PyValue;
  status?: number;
  response?: PyValue;
}

export interface RecordedCase {
  case: string;
  clientId: string;
  promptIds: string[];
  events: RecordedEvent[];
}

/** Throws a clear error when the transcripts are missing (the tests must fail, not skip). */
export function requireTranscripts(): string {
  if (!existsSync(path.join(TRANSCRIPTS_DIR, 'index.json'))) {
    throw new Error(`ComfyUI transcripts not found at ${TRANSCRIPTS_DIR} (test/fixtures/comfyui/transcripts in the repository).`);
  }
  return TRANSCRIPTS_DIR;
}

/** index.json: case → collapsed sequence. */
export function loadIndex(): Record<string, string[]> {
  const raw = JSON.parse(readFileSync(path.join(requireTranscripts(), 'index.json'), 'utf8')) as Record<string, { sequence: string[] }>;
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, v.sequence]));
}

/** A case file, parsed with Python semantics so recorded floats stay floats. */
export function loadCase(name: string): RecordedCase {
  const doc = pyLoads(readFileSync(path.join(requireTranscripts(), `${name}.json`), 'utf8')) as PyDict;
  const events = (doc.get('events') as PyValue[]).map((e): RecordedEvent => {
    const m = e as PyDict;
    const msg = m.get('msg');
    return {
      t: Number(m.get('t')),
      dir: m.get('dir') as RecordedEvent['dir'],
      path: m.get('path') as string | undefined,
      kind: m.get('kind') as RecordedEvent['kind'],
      msg,
      msgText: msg === undefined ? undefined : pyDumps(msg),
      method: m.get('method') as string | undefined,
      request: m.get('request'),
      status: m.get('status') as number | undefined,
      response: m.get('response'),
    };
  });
  return {
    case: name,
    clientId: String(doc.get('client_id') ?? ''),
    promptIds: ((doc.get('prompt_ids') as PyValue[] | undefined) ?? []).map(String),
    events,
  };
}

/** Collapses runs of equal labels into `label xN`, as index.json does. */
export function collapse(labels: string[]): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < labels.length) {
    let j = i;
    while (j < labels.length && labels[j] === labels[i]) j++;
    out.push(j - i > 1 ? `${labels[i]} x${j - i}` : (labels[i] as string));
    i = j;
  }
  return out;
}

/** Expands `label xN` back into N labels. */
export function expand(seq: string[]): string[] {
  return seq.flatMap((s) => {
    const m = / x(\d+)$/.exec(s);
    return m ? Array(Number(m[1])).fill(s.slice(0, m.index)) : [s];
  });
}

/** index.json's label of a WebSocket text message. */
export function labelOf(msg: PyDict): string {
  const type = String(msg.get('type'));
  const data = msg.get('data') as PyDict;
  if (type === 'status') {
    const q = ((data.get('status') as PyDict).get('exec_info') as PyDict).get('queue_remaining');
    return `status(q=${String(q)})`;
  }
  if (type === 'execution_cached') return `execution_cached(${(data.get('nodes') as PyValue[]).length} nodes)`;
  if (type === 'executing') {
    const node = data.get('node');
    return `executing(${node === null ? 'None' : String(node)})`;
  }
  if (type === 'executed') return `executed(${String(data.get('node'))})`;
  return type;
}

/** index.json's label of a binary frame. */
export function binaryLabel(frame: Buffer): string {
  const event = frame.readUInt32BE(0);
  return event === 1 ? 'binary:PREVIEW_IMAGE' : event === 4 ? 'binary:PREVIEW_IMAGE_WITH_METADATA' : `binary:${event}`;
}

/** index.json's label of an HTTP exchange. */
export function httpLabel(method: string, urlPath: string, status: number): string {
  return `HTTP ${method} ${urlPath.split('?')[0]} -> ${status}`;
}

const SETS = new Set(['executed', 'current_outputs']);
const DROP = new Set(['traceback', 'current_inputs']);

/**
 * Makes a recorded or replayed JSON value comparable: prompt ids mapped to the recorded ones,
 * timestamps zeroed, machine-only fields (traceback, current_inputs) dropped, and the lists that
 * come from Python sets (executed, current_outputs) sorted.
 */
export function normalize(value: PyValue, ids: Map<string, string>): string {
  const walk = (v: PyValue, key: string | null): PyValue => {
    if (typeof v === 'string') return ids.get(v) ?? v;
    if (Array.isArray(v)) {
      const items = v.map((x) => walk(x, null));
      return key !== null && SETS.has(key) ? [...items].sort((a, b) => String(a).localeCompare(String(b))) : items;
    }
    if (isDict(v)) {
      const out: PyDict = new Map();
      for (const [k, x] of v) {
        if (DROP.has(k)) continue;
        const nk = ids.get(k) ?? k;
        out.set(nk, k === 'timestamp' ? 0 : walk(x, k));
      }
      return out;
    }
    return v;
  };
  return pyDumps(walk(value, null));
}

/** A 768×512 PNG standing in for the recorded kontext_input.png: a simple car-and-road scene. */
export async function referencePng(width = 768, height = 512): Promise<Buffer> {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      let rgb: [number, number, number];
      if (y < height * 0.55) rgb = [120 + (y * 80) / height, 170 + (y * 60) / height, 235];
      else rgb = [90 + ((x * 7) % 13), 92, 96];
      const inCar = x > width * 0.25 && x < width * 0.75 && y > height * 0.45 && y < height * 0.72;
      const inRoof = x > width * 0.35 && x < width * 0.62 && y > height * 0.34 && y <= height * 0.45;
      const wheel = [0.34, 0.66].some((c) => (x - width * c) ** 2 + (y - height * 0.73) ** 2 < (height * 0.07) ** 2);
      if (inCar || inRoof) rgb = [40, 80, 200];
      if (wheel) rgb = [25, 25, 28];
      data[o] = rgb[0];
      data[o + 1] = rgb[1];
      data[o + 2] = rgb[2];
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer();
}
