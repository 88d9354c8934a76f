/**
 * The values that flow between simulated nodes (what tensors and model objects are in ComfyUI),
 * and their Python-style `str()` for `execution_error.current_inputs`.
 */
import { createHash } from 'node:crypto';
import type { RawImage } from './images.js';
import { floatRepr, pyRepr } from './py.js';

/** IMAGE: a batch of same-size RGB frames. */
export interface ImageValue {
  kind: 'IMAGE';
  frames: RawImage[];
}

/** MASK: only its size matters here. */
export interface MaskValue {
  kind: 'MASK';
  width: number;
  height: number;
  batch: number;
}

/** What a sampler produced; decoded lazily by VAEDecode. */
export interface SampledLatent {
  base: RawImage | null;
  text: string;
  recipeParts: unknown[];
}

/** LATENT: pixel size (a multiple of 8), batch, and where its content comes from. */
export interface LatentValue {
  kind: 'LATENT';
  width: number;
  height: number;
  batch: number;
  channels: number;
  /** Frames a VAE encoded (VAEEncode); absent for empty latents. */
  source?: RawImage[];
  /** Set by a sampler. */
  sampled?: SampledLatent;
}

/** CONDITIONING: the texts behind it, reference latents and guidance. */
export interface ConditioningValue {
  kind: 'CONDITIONING';
  texts: string[];
  zeroed: boolean;
  referenceLatents: LatentValue[];
  guidance?: number;
}

/** MODEL: a diffusion model descriptor. */
export interface ModelValue {
  kind: 'MODEL';
  name: string;
  dtype: string;
}

/** CLIP: the text encoders. */
export interface ClipValue {
  kind: 'CLIP';
  names: string[];
  type: string;
}

/** VAE: its file name. */
export interface VaeValue {
  kind: 'VAE';
  name: string;
}

/** Any value a node output can hold. */
export type SimValue = ImageValue | MaskValue | LatentValue | ConditioningValue | ModelValue | ClipValue | VaeValue;

/** True for a node output value (as opposed to a literal from the prompt). */
export function isSimValue(v: unknown): v is SimValue {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map) && typeof (v as { kind?: unknown }).kind === 'string';
}

/** A stable fake memory address, so reprs look like CPython's `<... object at 0x7f...>`. */
function address(seed: string): string {
  return `0x7f${createHash('sha1').update(seed).digest('hex').slice(0, 10)}`;
}

function tensorRepr(dims: number[], fill: string): string {
  // torch prints summarized tensors; keep the nesting and the "..." of a big tensor.
  let inner = `[${fill}, ${fill}, ${fill},  ..., ${fill}, ${fill}, ${fill}]`;
  for (let i = 1; i < dims.length; i++) inner = `[${inner},\n${' '.repeat(i + 7)}...,\n${' '.repeat(i + 7)}${inner}]`;
  return `tensor(${inner})`;
}

/** Python `str()` of a node value, as `format_value` puts it into `current_inputs`. */
export function simStr(v: SimValue): string {
  switch (v.kind) {
    case 'IMAGE': {
      const f = v.frames[0];
      return tensorRepr([v.frames.length, f?.height ?? 0, f?.width ?? 0, 3], '0.5020');
    }
    case 'MASK':
      return tensorRepr([v.batch, v.height, v.width], '0.');
    case 'LATENT':
      return `{'samples': ${tensorRepr([v.batch, v.channels, v.height / 8, v.width / 8], '0.')}}`;
    case 'CONDITIONING': {
      const extra: string[] = [`'pooled_output': ${tensorRepr([1, 768], v.zeroed ? '0.' : '0.1847')}`];
      if (v.referenceLatents.length > 0) {
        extra.push(`'reference_latents': [${v.referenceLatents.map((l) => tensorRepr([l.batch, l.channels, l.height / 8, l.width / 8], '-0.4713')).join(', ')}]`);
      }
      if (v.guidance !== undefined) extra.push(`'guidance': ${floatRepr(v.guidance)}`);
      return `[[${tensorRepr([1, 512, 4096], v.zeroed ? '0.' : '1.1847')}, {${extra.join(', ')}}]]`;
    }
    case 'MODEL':
      return `<comfy.model_patcher.ModelPatcher object at ${address(`${v.name}/${v.dtype}`)}>`;
    case 'CLIP':
      return `<comfy.sd.CLIP object at ${address(v.names.join('/') + v.type)}>`;
    case 'VAE':
      return `<comfy.sd.VAE object at ${address(v.name)}>`;
  }
}

/** Short description for error messages about a value of the wrong kind. */
export function describeValue(v: unknown): string {
  if (isSimValue(v)) return v.kind;
  return pyRepr(v);
}
