/**
 * The node classes the simulator knows: their `/object_info` definitions as ComfyUI 0.3.64 gives
 * them (input names, types, defaults, ranges, output types, output_node, v1 or v3 layout) and what
 * each one does with simulated values. Model-heavy nodes only pass descriptors along; the image
 * nodes really read, resize and write images.
 */
import { randomInt } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { annotatedPath, existsAnnotated, fileSha256, type Folders, getSaveImagePath, listInputImages, pyJoin } from './files.js';
import {
  concat,
  cropToMultipleOf8,
  encodePng,
  loadImageFrames,
  makeRecipe,
  padCenter,
  previewFrame,
  previewJpeg,
  type RawImage,
  recipeForIndex,
  renderEdit,
  resizeCover,
  resizeFill,
  solid,
} from './images.js';
import { photoFrame, photoPng } from './photo.js';
import { PyException, PyFloat, type PyDict, type PyValue, isDict, pyDumps, pyRepr, pyTypeName, toJsNumber, pyBool } from './py.js';
import type { ClipValue, ConditioningValue, ImageValue, LatentValue, MaskValue, ModelValue, SimValue, VaeValue } from './values.js';
import { isSimValue } from './values.js';

/** Model files per folder that the simulated installation has. */
export interface ModelLists {
  diffusion_models: string[];
  text_encoders: string[];
  vae: string[];
}

/** What INPUT_TYPES may depend on. */
export interface ClassContext {
  folders: Folders;
  models: ModelLists;
}

/** An input spec as JSON: `[type]` or `[type, options]`; a v1 combo has the option list as type. */
export type InputSpec = PyValue[];

/** INPUT_TYPES(): category → input name → spec (hidden inputs map to a string such as "PROMPT"). */
export interface InputTypes {
  required: Map<string, InputSpec>;
  optional?: Map<string, InputSpec>;
  hidden?: Map<string, string>;
}

/** What a running node can use. */
export interface NodeRuntime {
  nodeId: string;
  folders: Folders;
  /** Hidden PROMPT: the validated prompt. */
  prompt: PyDict;
  /** Hidden EXTRA_PNGINFO (null when absent). */
  extraPngInfo: PyValue;
  /** Per node-id object state that survives consecutive prompts (ComfyUI's object cache). */
  instance: Record<string, unknown>;
  stepMs: number;
  loadMs: number;
  failOnText: string | undefined;
  previewSize: number;
  /** 'derived' results (from the reference) or cached 'photo' ones of real size (photo.ts). */
  resultImages: 'derived' | 'photo';
  /** Waits `ms` (standing still while paused); resolves with how many ms late it woke. */
  sleep(ms: number): Promise<number>;
  /** True when a sampler preview would reach someone (preview method on, a recipient connected). */
  wantsPreview(): boolean;
  /** The progress hook: checks the interrupt flag, then sends progress_state/progress/previews. */
  progress(value: number, max: number, preview: Buffer | null): void;
}

/** A node's return: its outputs by slot, and the UI dict for `executed` (SaveImage, PreviewImage). */
export interface NodeResult {
  outputs: unknown[];
  ui?: PyDict;
}

/** One node class: its /object_info definition and its behaviour. */
export interface NodeClass {
  name: string;
  displayName: string | null;
  description: string;
  category: string;
  pythonModule: string;
  /** Written with comfy_api (v3): different /object_info layout, combos as "COMBO". */
  v3: boolean;
  outputNode: boolean;
  returnTypes: string[];
  outputTooltips?: Array<string | null>;
  experimental?: boolean;
  /** Qualified name of the Python function, for "unexpected keyword argument" errors. */
  functionName: string;
  inputTypes(ctx: ClassContext): InputTypes;
  /** VALIDATE_INPUTS: the inputs it takes and the check (true = valid, string = reason). */
  validateInputs?: { args: string[]; fn(values: Map<string, unknown>, ctx: ClassContext): true | false | string };
  /** IS_CHANGED: part of the cache signature. */
  isChanged?(inputs: PyDict, ctx: ClassContext): Promise<string>;
  /** Fresh per-node object state (PreviewImage's random file prefix). */
  createInstance?(): Record<string, unknown>;
  execute(args: Map<string, unknown>, rt: NodeRuntime): Promise<NodeResult>;
}

// ---------------------------------------------------------------------------------------------
// Spec helpers
// ---------------------------------------------------------------------------------------------

const F = (x: number): PyFloat => new PyFloat(x);
const opts = (o: Record<string, PyValue>): PyDict => new Map(Object.entries(o));
const spec = (type: PyValue, o?: Record<string, PyValue>): InputSpec => (o === undefined ? [type] : [type, opts(o)]);
const inputs = (entries: Array<[string, InputSpec]>): Map<string, InputSpec> => new Map(entries);
const SAVE_HIDDEN = (): Map<string, string> => new Map([['prompt', 'PROMPT'], ['extra_pnginfo', 'EXTRA_PNGINFO']]);

/** v3 input options as comfy_api's as_dict() orders them (display_name, tooltip, ..., default, then type-specific). */
const v3 = (type: string, o: Record<string, PyValue> = {}): InputSpec => [type, opts(o)];

const MAX_RESOLUTION = 16384;

/** comfy.samplers.KSampler.SAMPLERS in 0.3.64 (42 names). */
export const SAMPLERS = [
  'euler', 'euler_cfg_pp', 'euler_ancestral', 'euler_ancestral_cfg_pp', 'heun', 'heunpp2', 'dpm_2', 'dpm_2_ancestral',
  'lms', 'dpm_fast', 'dpm_adaptive', 'dpmpp_2s_ancestral', 'dpmpp_2s_ancestral_cfg_pp', 'dpmpp_sde', 'dpmpp_sde_gpu',
  'dpmpp_2m', 'dpmpp_2m_cfg_pp', 'dpmpp_2m_sde', 'dpmpp_2m_sde_gpu', 'dpmpp_2m_sde_heun', 'dpmpp_2m_sde_heun_gpu',
  'dpmpp_3m_sde', 'dpmpp_3m_sde_gpu', 'ddpm', 'lcm', 'ipndm', 'ipndm_v', 'deis', 'res_multistep', 'res_multistep_cfg_pp',
  'res_multistep_ancestral', 'res_multistep_ancestral_cfg_pp', 'gradient_estimation', 'gradient_estimation_cfg_pp',
  'er_sde', 'seeds_2', 'seeds_3', 'sa_solver', 'sa_solver_pece', 'ddim', 'uni_pc', 'uni_pc_bh2',
];

/** comfy.samplers.KSampler.SCHEDULERS. */
export const SCHEDULERS = ['simple', 'sgm_uniform', 'karras', 'exponential', 'ddim_uniform', 'beta', 'normal', 'linear_quadratic', 'kl_optimal'];

/** FluxKontextImageScale's presets (w, h), docs/comfyui-protocol.md §9.2. */
export const KONTEXT_RESOLUTIONS: Array<[number, number]> = [
  [672, 1568], [688, 1504], [720, 1456], [752, 1392], [800, 1328], [832, 1248], [880, 1184], [944, 1104], [1024, 1024],
  [1104, 944], [1184, 880], [1248, 832], [1328, 800], [1392, 752], [1456, 720], [1504, 688], [1568, 672],
];

/** The preset a w×h image is scaled to: closest aspect ratio, ties to the smaller width. */
export function kontextSize(width: number, height: number): [number, number] {
  const ar = width / height;
  let best: [number, number, number] | null = null;
  for (const [w, h] of KONTEXT_RESOLUTIONS) {
    const d = Math.abs(ar - w / h);
    if (best === null || d < best[0] || (d === best[0] && (w < best[1] || (w === best[1] && h < best[2])))) best = [d, w, h];
  }
  return best ? [best[1], best[2]] : [1024, 1024];
}

// ---------------------------------------------------------------------------------------------
// Runtime value helpers
// ---------------------------------------------------------------------------------------------

const MISSING_ATTR: Record<SimValue['kind'], string> = {
  IMAGE: 'shape',
  MASK: 'shape',
  LATENT: 'copy',
  CONDITIONING: 'copy',
  MODEL: 'get_model_object',
  CLIP: 'tokenize',
  VAE: 'encode',
};

/** The input `name` as a simulated value of `kind`, else the AttributeError Python code would hit. */
function need<K extends SimValue['kind']>(args: Map<string, unknown>, name: string, kind: K): Extract<SimValue, { kind: K }> {
  const v = args.get(name);
  if (isSimValue(v) && v.kind === kind) return v as Extract<SimValue, { kind: K }>;
  throw new PyException('AttributeError', `'${isSimValue(v) ? v.kind.toLowerCase() : pyTypeName(v)}' object has no attribute '${MISSING_ATTR[kind]}'`);
}

function literal(args: Map<string, unknown>, name: string): PyValue {
  const v = args.get(name);
  return v === undefined || isSimValue(v) ? null : (v as PyValue);
}

function str(args: Map<string, unknown>, name: string): string {
  const v = literal(args, name);
  return typeof v === 'string' ? v : String(v);
}

function num(args: Map<string, unknown>, name: string): number {
  return toJsNumber(literal(args, name));
}

function image(frames: RawImage[]): ImageValue {
  return { kind: 'IMAGE', frames };
}

function firstFrame(img: ImageValue): RawImage {
  const f = img.frames[0];
  if (!f) throw new PyException('IndexError', 'index 0 is out of bounds for dimension 0 with size 0');
  return f;
}

// ---------------------------------------------------------------------------------------------
// Image saving (SaveImage / PreviewImage)
// ---------------------------------------------------------------------------------------------

async function saveImages(
  args: Map<string, unknown>,
  rt: NodeRuntime,
  dir: string,
  type: 'output' | 'temp',
  prefixAppend: string,
  level: number,
): Promise<NodeResult> {
  const images = need(args, 'images', 'IMAGE');
  const rawPrefix = args.has('filename_prefix') ? literal(args, 'filename_prefix') : 'ComfyUI';
  const prefix = `${typeof rawPrefix === 'string' ? rawPrefix : String(rawPrefix)}${prefixAppend}`;
  const first = firstFrame(images);
  const target = await getSaveImagePath(prefix, dir, first.width, first.height);
  const texts: Array<[string, string]> = [['prompt', pyDumps(rt.prompt)]];
  if (isDict(rt.extraPngInfo)) for (const [k, v] of rt.extraPngInfo) texts.push([k, pyDumps(v)]);
  const results: PyValue[] = [];
  let counter = target.counter;
  for (let batch = 0; batch < images.frames.length; batch++) {
    const frame = images.frames[batch] as RawImage;
    const name = `${target.filename.replaceAll('%batch_num%', String(batch))}_${String(counter).padStart(5, '0')}_.png`;
    const png = rt.resultImages === 'photo' ? await photoPng(frame, level, texts) : await encodePng(frame, level, texts);
    await fsp.writeFile(pyJoin(target.fullOutputFolder, name), png);
    results.push(new Map<string, PyValue>([['filename', name], ['subfolder', target.subfolder], ['type', type]]));
    counter++;
  }
  return { outputs: [], ui: new Map([['images', results]]) };
}

const TEMP_LETTERS = 'abcdefghijklmnopqrstupvxyz'; // sic: ComfyUI's alphabet has two p's and no w

// ---------------------------------------------------------------------------------------------
// The classes
// ---------------------------------------------------------------------------------------------

const KSampler: NodeClass = {
  name: 'KSampler',
  displayName: 'KSampler',
  description: 'Uses the provided model, positive and negative conditioning to denoise the latent image.',
  category: 'sampling',
  pythonModule: 'nodes',
  v3: false,
  outputNode: false,
  returnTypes: ['LATENT'],
  outputTooltips: ['The denoised latent.'],
  functionName: 'KSampler.sample',
  inputTypes: () => ({
    required: inputs([
      ['model', spec('MODEL', { tooltip: 'The model used for denoising the input latent.' })],
      ['seed', spec('INT', { default: 0, min: 0, max: 0xffffffffffffffffn, control_after_generate: true, tooltip: 'The random seed used for creating the noise.' })],
      ['steps', spec('INT', { default: 20, min: 1, max: 10000, tooltip: 'The number of steps used in the denoising process.' })],
      ['cfg', spec('FLOAT', {
        default: F(8.0), min: F(0.0), max: F(100.0), step: F(0.1), round: F(0.01),
        tooltip: 'The Classifier-Free Guidance scale balances creativity and adherence to the prompt. Higher values result in images more closely matching the prompt however too high values will negatively impact quality.',
      })],
      ['sampler_name', spec(SAMPLERS, { tooltip: 'The algorithm used when sampling, this can affect the quality, speed, and style of the output.' })],
      ['scheduler', spec(SCHEDULERS, { tooltip: 'The scheduler controls how noise is gradually removed to form the image.' })],
      ['positive', spec('CONDITIONING', { tooltip: 'The conditioning describing the attributes you want to include in the image.' })],
      ['negative', spec('CONDITIONING', { tooltip: 'The conditioning describing the attributes you want to exclude from the image.' })],
      ['latent_image', spec('LATENT', { tooltip: 'The latent image to denoise.' })],
      ['denoise', spec('FLOAT', {
        default: F(1.0), min: F(0.0), max: F(1.0), step: F(0.01),
        tooltip: 'The amount of denoising applied, lower values will maintain the structure of the initial generation allowing for image to image sampling.',
      })],
    ]),
  }),
  async execute(args, rt) {
    need(args, 'model', 'MODEL');
    const positive = need(args, 'positive', 'CONDITIONING');
    const negative = need(args, 'negative', 'CONDITIONING');
    const latent = need(args, 'latent_image', 'LATENT');
    const steps = Math.max(0, Math.floor(num(args, 'steps')));
    const denoise = num(args, 'denoise');
    const total = denoise > 0 ? steps : 0;
    const text = positive.texts.join('\n');
    const base = positive.referenceLatents[0]?.source?.[0] ?? latent.source?.[0] ?? null;
    const recipeParts = [
      literal(args, 'seed'), steps, num(args, 'cfg'), literal(args, 'sampler_name'), literal(args, 'scheduler'), denoise,
      positive.guidance ?? '', negative.texts.join('\n'), latent.width, latent.height,
    ];
    const fail = rt.failOnText;
    const failAt = fail && [...positive.texts, ...negative.texts].some((t) => t.includes(fail)) ? Math.ceil(total / 2) : -1;
    let small: RawImage | null = null;
    const recipe = makeRecipe(text, recipeParts);
    // A GPU's steps take their time whatever the host's CPU does: a step that woke late (a busy
    // event loop) makes the next ones shorter, so a prompt takes steps x stepMs, not more.
    let late = 0;
    for (let i = 0; i < total; i++) {
      const ask = Math.max(0, rt.stepMs - late);
      late = Math.max(0, late + ask + (await rt.sleep(ask)) - rt.stepMs);
      if (failAt === i + 1) {
        throw new PyException('RuntimeError', `FAKE_FAIL_ON_TEXT: prompt contains ${pyRepr(fail)}; simulated sampler failure at step ${i + 1}/${total}`);
      }
      let preview: Buffer | null = null;
      if (rt.wantsPreview()) {
        small ??= await renderEdit(base, Math.max(1, latent.width / 8), Math.max(1, latent.height / 8), recipe);
        preview = await previewJpeg(previewFrame(small, recipe.key, i + 1, total), rt.previewSize);
      }
      rt.progress(i + 1, total, preview);
    }
    const out: LatentValue = total > 0 ? { ...latent, sampled: { base, text, recipeParts } } : latent;
    return { outputs: [out] };
  },
};

const CLIPTextEncode: NodeClass = {
  name: 'CLIPTextEncode',
  displayName: 'CLIP Text Encode (Prompt)',
  description: 'Encodes a text prompt using a CLIP model into an embedding that can be used to guide the diffusion model towards generating specific images.',
  category: 'conditioning',
  pythonModule: 'nodes',
  v3: false,
  outputNode: false,
  returnTypes: ['CONDITIONING'],
  outputTooltips: ['A conditioning containing the embedded text used to guide the diffusion model.'],
  functionName: 'CLIPTextEncode.encode',
  inputTypes: () => ({
    required: inputs([
      ['text', spec('STRING', { multiline: true, dynamicPrompts: true, tooltip: 'The text to be encoded.' })],
      ['clip', spec('CLIP', { tooltip: 'The CLIP model used for encoding the text.' })],
    ]),
  }),
  async execute(args) {
    const clip = args.get('clip');
    if (clip === null || clip === undefined) {
      throw new PyException('RuntimeError', 'ERROR: clip input is invalid: None\n\nIf the clip is from a checkpoint loader node your checkpoint does not contain a valid clip or text encoder model.');
    }
    need(args, 'clip', 'CLIP');
    const cond: ConditioningValue = { kind: 'CONDITIONING', texts: [str(args, 'text')], zeroed: false, referenceLatents: [] };
    return { outputs: [cond] };
  },
};

const VAEDecode: NodeClass = {
  name: 'VAEDecode',
  displayName: 'VAE Decode',
  description: 'Decodes latent images back into pixel space images.',
  category: 'latent',
  pythonModule: 'nodes',
  v3: false,
  outputNode: false,
  returnTypes: ['IMAGE'],
  outputTooltips: ['The decoded image.'],
  functionName: 'VAEDecode.decode',
  inputTypes: () => ({
    required: inputs([
      ['samples', spec('LATENT', { tooltip: 'The latent to be decoded.' })],
      ['vae', spec('VAE', { tooltip: 'The VAE model used for decoding the latent.' })],
    ]),
  }),
  async execute(args, rt) {
    const latent = need(args, 'samples', 'LATENT');
    need(args, 'vae', 'VAE');
    const frames: RawImage[] = [];
    for (let i = 0; i < latent.batch; i++) {
      if (latent.sampled) {
        const s = latent.sampled;
        const recipe = recipeForIndex(makeRecipe(s.text, s.recipeParts), i);
        frames.push(rt.resultImages === 'photo' ? photoFrame(latent.width, latent.height, recipe.key) : await renderEdit(s.base, latent.width, latent.height, recipe));
      } else if (latent.source && latent.source.length > 0) {
        const src = latent.source[Math.min(i, latent.source.length - 1)] as RawImage;
        frames.push(await resizeCover(src, latent.width, latent.height));
      } else {
        frames.push(solid(latent.width, latent.height, [128, 128, 128]));
      }
    }
    return { outputs: [image(frames)] };
  },
};

const VAEEncode: NodeClass = {
  name: 'VAEEncode',
  displayName: 'VAE Encode',
  description: '',
  category: 'latent',
  pythonModule: 'nodes',
  v3: false,
  outputNode: false,
  returnTypes: ['LATENT'],
  functionName: 'VAEEncode.encode',
  inputTypes: () => ({ required: inputs([['pixels', spec('IMAGE')], ['vae', spec('VAE')]]) }),
  async execute(args) {
    const pixels = need(args, 'pixels', 'IMAGE');
    need(args, 'vae', 'VAE');
    const frames = pixels.frames.map(cropToMultipleOf8);
    const f = frames[0];
    const latent: LatentValue = { kind: 'LATENT', width: f?.width ?? 0, height: f?.height ?? 0, batch: frames.length, channels: 16, source: frames };
    return { outputs: [latent] };
  },
};

const VAELoader: NodeClass = {
  name: 'VAELoader',
  displayName: 'Load VAE',
  description: '',
  category: 'loaders',
  pythonModule: 'nodes',
  v3: false,
  outputNode: false,
  returnTypes: ['VAE'],
  functionName: 'VAELoader.load_vae',
  inputTypes: (ctx) => ({ required: inputs([['vae_name', spec([...ctx.models.vae, 'pixel_space'])]]) }),
  async execute(args) {
    const vae: VaeValue = { kind: 'VAE', name: str(args, 'vae_name') };
    return { outputs: [vae] };
  },
};

function emptyLatent(args: Map<string, unknown>, channels: number): LatentValue {
  const w = Math.floor(num(args, 'width') / 8) * 8;
  const h = Math.floor(num(args, 'height') / 8) * 8;
  return { kind: 'LATENT', width: w, height: h, batch: Math.max(1, Math.floor(num(args, 'batch_size'))), channels };
}

const EmptyLatentImage: NodeClass = {
  name: 'EmptyLatentImage',
  displayName: 'Empty Latent Image',
  description: 'Create a new batch of empty latent images to be denoised via sampling.',
  category: 'latent',
  pythonModule: 'nodes',
  v3: false,
  outputNode: false,
  returnTypes: ['LATENT'],
  outputTooltips: ['The empty latent image batch.'],
  functionName: 'EmptyLatentImage.generate',
  inputTypes: () => ({
    required: inputs([
      ['width', spec('INT', { default: 512, min: 16, max: MAX_RESOLUTION, step: 8, tooltip: 'The width of the latent images in pixels.' })],
      ['height', spec('INT', { default: 512, min: 16, max: MAX_RESOLUTION, step: 8, tooltip: 'The height of the latent images in pixels.' })],
      ['batch_size', spec('INT', { default: 1, min: 1, max: 4096, tooltip: 'The number of latent images in the batch.' })],
    ]),
  }),
  async execute(args) {
    return { outputs: [emptyLatent(args, 4)] };
  },
};

const SaveImage: NodeClass = {
  name: 'SaveImage',
  displayName: 'Save Image',
  description: 'Saves the input images to your ComfyUI output directory.',
  category: 'image',
  pythonModule: 'nodes',
  v3: false,
  outputNode: true,
  returnTypes: [],
  functionName: 'SaveImage.save_images',
  inputTypes: () => ({
    required: inputs([
      ['images', spec('IMAGE', { tooltip: 'The images to save.' })],
      ['filename_prefix', spec('STRING', {
        default: 'ComfyUI',
        tooltip: 'The prefix for the file to save. This may include formatting information such as %date:yyyy-MM-dd% or %Empty Latent Image.width% to include values from nodes.',
      })],
    ]),
    hidden: SAVE_HIDDEN(),
  }),
  execute: (args, rt) => saveImages(args, rt, rt.folders.output, 'output', '', 4),
};

const PreviewImage: NodeClass = {
  name: 'PreviewImage',
  displayName: 'Preview Image',
  // Inherited from SaveImage in ComfyUI, hence the same text.
  description: 'Saves the input images to your ComfyUI output directory.',
  category: 'image',
  pythonModule: 'nodes',
  v3: false,
  outputNode: true,
  returnTypes: [],
  functionName: 'PreviewImage.save_images',
  inputTypes: () => ({ required: inputs([['images', spec('IMAGE')]]), hidden: SAVE_HIDDEN() }),
  createInstance: () => ({
    prefixAppend: `_temp_${Array.from({ length: 5 }, () => TEMP_LETTERS[randomInt(TEMP_LETTERS.length)]).join('')}`,
  }),
  execute: (args, rt) => saveImages(args, rt, rt.folders.temp, 'temp', String(rt.instance.prefixAppend ?? '_temp_aaaaa'), 1),
};

async function loadImage(args: Map<string, unknown>, rt: NodeRuntime): Promise<NodeResult> {
  const name = literal(args, 'image');
  if (typeof name !== 'string') throw new PyException('AttributeError', `'${pyTypeName(name)}' object has no attribute 'endswith'`);
  const file = annotatedPath(name, rt.folders);
  if (file === null) throw new PyException('FileNotFoundError', `[Errno 2] No such file or directory: ${pyRepr(name)}`);
  const { frames, hasAlpha } = await loadImageFrames(file);
  const f = frames[0] as RawImage;
  const mask: MaskValue = hasAlpha
    ? { kind: 'MASK', width: f.width, height: f.height, batch: frames.length }
    : { kind: 'MASK', width: 64, height: 64, batch: 1 };
  return { outputs: [image(frames), mask] };
}

const imageValidator: NonNullable<NodeClass['validateInputs']> = {
  args: ['s', 'image'],
  fn(values, ctx) {
    const name = values.get('image');
    if (typeof name !== 'string') throw new PyException('AttributeError', `'${pyTypeName(name)}' object has no attribute 'endswith'`);
    return existsAnnotated(name, ctx.folders) ? true : `Invalid image file: ${name}`;
  },
};

async function imageSha(inputs: PyDict, ctx: ClassContext): Promise<string> {
  const name = inputs.get('image');
  const file = typeof name === 'string' ? annotatedPath(name, ctx.folders) : null;
  if (file === null) throw new PyException('FileNotFoundError', `[Errno 2] No such file or directory: ${pyRepr(name)}`);
  return fileSha256(file);
}

const LoadImage: NodeClass = {
  name: 'LoadImage',
  displayName: 'Load Image',
  description: '',
  category: 'image',
  pythonModule: 'nodes',
  v3: false,
  outputNode: false,
  returnTypes: ['IMAGE', 'MASK'],
  functionName: 'LoadImage.load_image',
  inputTypes: (ctx) => ({ required: inputs([['image', spec(listInputImages(ctx.folders.input), { image_upload: true })]]) }),
  validateInputs: imageValidator,
  isChanged: imageSha,
  execute: loadImage,
};

const LoadImageOutput: NodeClass = {
  name: 'LoadImageOutput',
  displayName: 'Load Image (from Outputs)',
  description:
    'Load an image from the output folder. When the refresh button is clicked, the node will update the image list and automatically select the first image, allowing for easy iteration.',
  category: 'image',
  pythonModule: 'nodes',
  v3: false,
  outputNode: false,
  returnTypes: ['IMAGE', 'MASK'],
  experimental: true,
  functionName: 'LoadImageOutput.load_image',
  inputTypes: () => ({
    required: inputs([
      ['image', spec('COMBO', {
        image_upload: true,
        image_folder: 'output',
        remote: opts({ route: '/internal/files/output', refresh_button: true, control_after_refresh: 'first' }),
      })],
    ]),
  }),
  validateInputs: imageValidator,
  isChanged: imageSha,
  execute: loadImage,
};

const ConditioningZeroOut: NodeClass = {
  name: 'ConditioningZeroOut',
  displayName: 'ConditioningZeroOut',
  description: '',
  category: 'advanced/conditioning',
  pythonModule: 'nodes',
  v3: false,
  outputNode: false,
  returnTypes: ['CONDITIONING'],
  functionName: 'ConditioningZeroOut.zero_out',
  inputTypes: () => ({ required: inputs([['conditioning', spec('CONDITIONING')]]) }),
  async execute(args) {
    const c = need(args, 'conditioning', 'CONDITIONING');
    return { outputs: [{ ...c, texts: [], zeroed: true }] };
  },
};

const UNETLoader: NodeClass = {
  name: 'UNETLoader',
  displayName: 'Load Diffusion Model',
  description: '',
  category: 'advanced/loaders',
  pythonModule: 'nodes',
  v3: false,
  outputNode: false,
  returnTypes: ['MODEL'],
  functionName: 'UNETLoader.load_unet',
  inputTypes: (ctx) => ({
    required: inputs([
      ['unet_name', spec([...ctx.models.diffusion_models])],
      ['weight_dtype', spec(['default', 'fp8_e4m3fn', 'fp8_e4m3fn_fast', 'fp8_e5m2'])],
    ]),
  }),
  async execute(args) {
    const model: ModelValue = { kind: 'MODEL', name: str(args, 'unet_name'), dtype: str(args, 'weight_dtype') };
    return { outputs: [model] };
  },
};

const DualCLIPLoader: NodeClass = {
  name: 'DualCLIPLoader',
  displayName: 'DualCLIPLoader',
  description:
    '[Recipes]\n\nsdxl: clip-l, clip-g\nsd3: clip-l, clip-g / clip-l, t5 / clip-g, t5\nflux: clip-l, t5\nhidream: at least one of t5 or llama, recommended t5 and llama\nhunyuan_image: qwen2.5vl 7b and byt5 small',
  category: 'advanced/loaders',
  pythonModule: 'nodes',
  v3: false,
  outputNode: false,
  returnTypes: ['CLIP'],
  functionName: 'DualCLIPLoader.load_clip',
  inputTypes: (ctx) => ({
    required: inputs([
      ['clip_name1', spec([...ctx.models.text_encoders])],
      ['clip_name2', spec([...ctx.models.text_encoders])],
      ['type', spec(['sdxl', 'sd3', 'flux', 'hunyuan_video', 'hidream', 'hunyuan_image'])],
    ]),
    optional: inputs([['device', spec(['default', 'cpu'], { advanced: true })]]),
  }),
  async execute(args) {
    const clip: ClipValue = { kind: 'CLIP', names: [str(args, 'clip_name1'), str(args, 'clip_name2')], type: str(args, 'type') };
    return { outputs: [clip] };
  },
};

const ImageStitch: NodeClass = {
  name: 'ImageStitch',
  displayName: 'Image Stitch',
  description:
    '\nStitches image2 to image1 in the specified direction.\nIf image2 is not provided, returns image1 unchanged.\nOptional spacing can be added between images.\n',
  category: 'image/transform',
  pythonModule: 'comfy_extras.nodes_images',
  v3: false,
  outputNode: false,
  returnTypes: ['IMAGE'],
  functionName: 'ImageStitch.stitch',
  inputTypes: () => ({
    required: inputs([
      ['image1', spec('IMAGE')],
      ['direction', spec(['right', 'down', 'left', 'up'], { default: 'right' })],
      ['match_image_size', spec('BOOLEAN', { default: true })],
      ['spacing_width', spec('INT', { default: 0, min: 0, max: 1024, step: 2 })],
      ['spacing_color', spec(['white', 'black', 'red', 'green', 'blue'], { default: 'white' })],
    ]),
    optional: inputs([['image2', spec('IMAGE')]]),
  }),
  async execute(args) {
    const image1 = need(args, 'image1', 'IMAGE');
    const image2v = args.get('image2');
    if (image2v === undefined || image2v === null) return { outputs: [image1] };
    const image2 = need(args, 'image2', 'IMAGE');
    const direction = str(args, 'direction');
    const horizontal = direction === 'left' || direction === 'right';
    const colors: Record<string, [number, number, number]> = {
      white: [255, 255, 255], black: [0, 0, 0], red: [255, 0, 0], green: [0, 255, 0], blue: [0, 0, 255],
    };
    const color = colors[str(args, 'spacing_color')];
    if (!color) throw new PyException('KeyError', pyRepr(str(args, 'spacing_color')));
    const n = Math.max(image1.frames.length, image2.frames.length);
    const pick = (img: ImageValue, i: number): RawImage => img.frames[Math.min(i, img.frames.length - 1)] as RawImage;
    const match = pyBool(literal(args, 'match_image_size'));
    let spacing = Math.max(0, Math.floor(num(args, 'spacing_width')));
    spacing += spacing % 2;
    const out: RawImage[] = [];
    for (let i = 0; i < n; i++) {
      let a = pick(image1, i);
      let b = pick(image2, i);
      if (match) {
        const ar = b.width / b.height;
        b = horizontal ? await resizeFill(b, Math.trunc(a.height * ar), a.height) : await resizeFill(b, a.width, Math.trunc(a.width / ar));
      } else if (horizontal) {
        const h = Math.max(a.height, b.height);
        a = padCenter(a, a.width, h);
        b = padCenter(b, b.width, h);
      } else {
        const w = Math.max(a.width, b.width);
        a = padCenter(a, w, a.height);
        b = padCenter(b, w, b.height);
      }
      const parts = direction === 'left' || direction === 'up' ? [b, a] : [a, b];
      if (spacing > 0) {
        const gap = horizontal ? solid(spacing, Math.max(a.height, b.height), color) : solid(Math.max(a.width, b.width), spacing, color);
        parts.splice(1, 0, gap);
      }
      out.push(concat(parts, horizontal));
    }
    return { outputs: [image(out)] };
  },
};

// --- v3 (comfy_api) nodes --------------------------------------------------------------------

const EmptySD3LatentImage: NodeClass = {
  name: 'EmptySD3LatentImage',
  displayName: null,
  description: '',
  category: 'latent/sd3',
  pythonModule: 'comfy_extras.nodes_sd3',
  v3: true,
  outputNode: false,
  returnTypes: ['LATENT'],
  outputTooltips: [null],
  functionName: 'EmptySD3LatentImage.execute',
  inputTypes: () => ({
    required: inputs([
      ['width', v3('INT', { default: 1024, min: 16, max: MAX_RESOLUTION, step: 16 })],
      ['height', v3('INT', { default: 1024, min: 16, max: MAX_RESOLUTION, step: 16 })],
      ['batch_size', v3('INT', { default: 1, min: 1, max: 4096 })],
    ]),
  }),
  async execute(args) {
    return { outputs: [emptyLatent(args, 16)] };
  },
};

const FluxGuidance: NodeClass = {
  name: 'FluxGuidance',
  displayName: null,
  description: '',
  category: 'advanced/conditioning/flux',
  pythonModule: 'comfy_extras.nodes_flux',
  v3: true,
  outputNode: false,
  returnTypes: ['CONDITIONING'],
  outputTooltips: [null],
  functionName: 'FluxGuidance.execute',
  inputTypes: () => ({
    required: inputs([
      ['conditioning', v3('CONDITIONING')],
      ['guidance', v3('FLOAT', { default: F(3.5), min: F(0.0), max: F(100.0), step: F(0.1) })],
    ]),
  }),
  async execute(args) {
    const c = need(args, 'conditioning', 'CONDITIONING');
    return { outputs: [{ ...c, guidance: num(args, 'guidance') }] };
  },
};

const FluxKontextImageScale: NodeClass = {
  name: 'FluxKontextImageScale',
  displayName: null,
  description: 'This node resizes the image to one that is more optimal for flux kontext.',
  category: 'advanced/conditioning/flux',
  pythonModule: 'comfy_extras.nodes_flux',
  v3: true,
  outputNode: false,
  returnTypes: ['IMAGE'],
  outputTooltips: [null],
  functionName: 'FluxKontextImageScale.execute',
  inputTypes: () => ({ required: inputs([['image', v3('IMAGE')]]) }),
  async execute(args) {
    const img = need(args, 'image', 'IMAGE');
    const f = firstFrame(img);
    const [w, h] = kontextSize(f.width, f.height);
    return { outputs: [image(await Promise.all(img.frames.map((fr) => resizeCover(fr, w, h))))] };
  },
};

const ReferenceLatent: NodeClass = {
  name: 'ReferenceLatent',
  displayName: null,
  description:
    'This node sets the guiding latent for an edit model. If the model supports it you can chain multiple to set multiple reference images.',
  category: 'advanced/conditioning/edit_models',
  pythonModule: 'comfy_extras.nodes_edit_model',
  v3: true,
  outputNode: false,
  returnTypes: ['CONDITIONING'],
  outputTooltips: [null],
  functionName: 'ReferenceLatent.execute',
  inputTypes: () => ({
    required: inputs([['conditioning', v3('CONDITIONING')]]),
    optional: inputs([['latent', v3('LATENT')]]),
  }),
  async execute(args) {
    const c = need(args, 'conditioning', 'CONDITIONING');
    const l = args.get('latent');
    if (l === undefined || l === null) return { outputs: [c] };
    const latent = need(args, 'latent', 'LATENT');
    return { outputs: [{ ...c, referenceLatents: [...c.referenceLatents, latent] }] };
  },
};

/** Every class, in the order `/object_info` lists them (nodes.py first, then comfy_extras). */
export const NODE_CLASSES: ReadonlyMap<string, NodeClass> = new Map(
  [
    KSampler, CLIPTextEncode, VAEDecode, VAEEncode, VAELoader, EmptyLatentImage, SaveImage, PreviewImage, LoadImage,
    LoadImageOutput, ConditioningZeroOut, UNETLoader, DualCLIPLoader, EmptySD3LatentImage, FluxGuidance,
    FluxKontextImageScale, ImageStitch, ReferenceLatent,
  ].map((c) => [c.name, c]),
);

/** ComfyUI's get_input_info: [type, category, options] of an input, or nulls when unknown. */
export function getInputInfo(types: InputTypes, name: string): { type: PyValue; category: 'required' | 'optional' | 'hidden'; options: PyDict } | null {
  const req = types.required.get(name);
  if (req) return { type: req[0] ?? null, category: 'required', options: optionsOf(req) };
  const opt = types.optional?.get(name);
  if (opt) return { type: opt[0] ?? null, category: 'optional', options: optionsOf(opt) };
  const hid = types.hidden?.get(name);
  if (hid !== undefined) return { type: hid, category: 'hidden', options: new Map() };
  return null;
}

function optionsOf(s: InputSpec): PyDict {
  const o = s[1];
  return isDict(o) ? o : new Map();
}

/** The `/object_info` entry of a class. */
export function nodeInfo(cls: NodeClass, ctx: ClassContext): PyDict {
  const t = cls.inputTypes(ctx);
  const input: PyDict = new Map<string, PyValue>([['required', new Map(t.required)]]);
  const order: PyDict = new Map<string, PyValue>([['required', [...t.required.keys()]]]);
  if (t.optional) {
    input.set('optional', new Map(t.optional));
    order.set('optional', [...t.optional.keys()]);
  }
  if (t.hidden) {
    input.set('hidden', new Map([...t.hidden].map(([k, v]) => [k, cls.v3 ? [v] : v])));
    order.set('hidden', [...t.hidden.keys()]);
  }
  const outputs = [...cls.returnTypes];
  if (cls.v3) {
    return new Map<string, PyValue>([
      ['input', input],
      ['input_order', order],
      ['output', outputs],
      ['output_is_list', outputs.map(() => false)],
      ['output_name', outputs],
      ['output_tooltips', cls.outputTooltips ?? outputs.map(() => null)],
      ['name', cls.name],
      ['display_name', cls.displayName],
      ['description', cls.description],
      ['python_module', cls.pythonModule],
      ['category', cls.category],
      ['output_node', cls.outputNode],
      ['deprecated', false],
      ['experimental', cls.experimental === true],
      ['api_node', false],
    ]);
  }
  const info = new Map<string, PyValue>([
    ['input', input],
    ['input_order', order],
    ['output', outputs],
    ['output_is_list', outputs.map(() => false)],
    ['output_name', outputs],
    ['name', cls.name],
    ['display_name', cls.displayName ?? cls.name],
    ['description', cls.description],
    ['python_module', cls.pythonModule],
    ['category', cls.category],
    ['output_node', cls.outputNode],
  ]);
  if (cls.outputTooltips) info.set('output_tooltips', cls.outputTooltips);
  if (cls.experimental) info.set('experimental', true);
  return info;
}
