/**
 * Pixels for the simulator: reading reference images, the resizes the Kontext nodes do, the
 * deterministic "edited" result a sampler produces, PNG output with ComfyUI's text chunks, and
 * the JPEG sampler previews. Everything is RGB, 8 bits per channel, and deterministic.
 */
import { createHash } from 'node:crypto';
import sharp, { type Metadata, type Sharp, type SharpOptions } from 'sharp';
import { PyException, pyRound, pyRepr } from './py.js';

/** One RGB frame (3 bytes per pixel, rows top to bottom). */
export interface RawImage {
  width: number;
  height: number;
  data: Buffer;
}

// Sharp's own thread pool is plenty for a simulator; keep its cache from holding big buffers.
sharp.cache(false);

function rawInput(img: RawImage): SharpOptions {
  return { raw: { width: img.width, height: img.height, channels: 3 } };
}

async function toRaw(s: Sharp): Promise<RawImage> {
  const { data, info } = await s.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`expected RGB, got ${info.channels} channels`);
  return { width: info.width, height: info.height, data };
}

/**
 * Reads an image like LoadImage: EXIF-oriented, converted to RGB, every frame of an animated file
 * that has the first frame's size. Errors carry the Python exception LoadImage would raise.
 */
export async function loadImageFrames(file: string): Promise<{ frames: RawImage[]; hasAlpha: boolean }> {
  let meta: Metadata;
  try {
    meta = await sharp(file).metadata();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const msg = String((err as Error).message ?? '');
    if (code === 'ENOENT' || /no such file|missing/i.test(msg)) {
      throw new PyException('FileNotFoundError', `[Errno 2] No such file or directory: ${pyRepr(file)}`);
    }
    throw new PyException('PIL.UnidentifiedImageError', `cannot identify image file ${pyRepr(file)}`);
  }
  const hasAlpha = meta.hasAlpha === true;
  const pages = meta.pages ?? 1;
  if (pages > 1 && meta.pageHeight) {
    const all = await toRaw(sharp(file, { pages: -1 }));
    const h = meta.pageHeight;
    const stride = all.width * 3 * h;
    const frames: RawImage[] = [];
    for (let i = 0; i * h < all.height; i++) {
      frames.push({ width: all.width, height: h, data: Buffer.from(all.data.subarray(i * stride, (i + 1) * stride)) });
    }
    return { frames, hasAlpha };
  }
  return { frames: [await toRaw(sharp(file).rotate())], hasAlpha };
}

/** Lanczos resize to exactly w×h after a center crop to the target aspect (common_upscale "center"). */
export async function resizeCover(img: RawImage, width: number, height: number): Promise<RawImage> {
  if (img.width === width && img.height === height) return img;
  return toRaw(sharp(img.data, rawInput(img)).resize(width, height, { fit: 'cover', position: 'centre', kernel: 'lanczos3' }));
}

/** Lanczos resize to exactly w×h without cropping (common_upscale "disabled"). */
export async function resizeFill(img: RawImage, width: number, height: number): Promise<RawImage> {
  if (img.width === width && img.height === height) return img;
  return toRaw(sharp(img.data, rawInput(img)).resize(width, height, { fit: 'fill', kernel: 'lanczos3' }));
}

/** VAE encode crop: each side to a multiple of 8, centered (vae_encode_crop_pixels). */
export function cropToMultipleOf8(img: RawImage): RawImage {
  const w = Math.floor(img.width / 8) * 8;
  const h = Math.floor(img.height / 8) * 8;
  if (w === img.width && h === img.height) return img;
  const x0 = Math.floor((img.width % 8) / 2);
  const y0 = Math.floor((img.height % 8) / 2);
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    const src = ((y + y0) * img.width + x0) * 3;
    img.data.copy(data, y * w * 3, src, src + w * 3);
  }
  return { width: w, height: h, data };
}

/** Pads with black to w×h, centered (ImageStitch without size matching). */
export function padCenter(img: RawImage, width: number, height: number): RawImage {
  if (img.width === width && img.height === height) return img;
  const data = Buffer.alloc(width * height * 3);
  const x0 = Math.floor((width - img.width) / 2);
  const y0 = Math.floor((height - img.height) / 2);
  for (let y = 0; y < img.height; y++) {
    img.data.copy(data, ((y + y0) * width + x0) * 3, y * img.width * 3, (y + 1) * img.width * 3);
  }
  return { width, height, data };
}

/** A solid color block. */
export function solid(width: number, height: number, rgb: [number, number, number]): RawImage {
  const data = Buffer.alloc(width * height * 3);
  for (let i = 0; i < data.length; i += 3) {
    data[i] = rgb[0];
    data[i + 1] = rgb[1];
    data[i + 2] = rgb[2];
  }
  return { width, height, data };
}

/** Concatenates frames side by side (horizontal) or top to bottom; sizes must already agree. */
export function concat(parts: RawImage[], horizontal: boolean): RawImage {
  if (horizontal) {
    const height = parts[0]?.height ?? 0;
    const width = parts.reduce((s, p) => s + p.width, 0);
    const data = Buffer.alloc(width * height * 3);
    for (let y = 0; y < height; y++) {
      let x = 0;
      for (const p of parts) {
        p.data.copy(data, (y * width + x) * 3, y * p.width * 3, (y + 1) * p.width * 3);
        x += p.width;
      }
    }
    return { width, height, data };
  }
  const width = parts[0]?.width ?? 0;
  return { width, height: parts.reduce((s, p) => s + p.height, 0), data: Buffer.concat(parts.map((p) => p.data)) };
}

// ---------------------------------------------------------------------------------------------
// The simulated edit
// ---------------------------------------------------------------------------------------------

/** What the sampler was asked to do; equal recipes give identical pixels. */
export interface EditRecipe {
  /** 32 bytes derived from the prompt text, seed and sampler settings (and the batch index). */
  key: Buffer;
  /** A color named in the prompt text, if any ("make it red"), used as the tint. */
  tint: [number, number, number] | null;
}

const COLOR_WORDS: Array<[RegExp, [number, number, number]]> = [
  [/\bred\b/i, [220, 40, 40]],
  [/\bgreen\b/i, [40, 180, 70]],
  [/\bblue\b/i, [40, 90, 220]],
  [/\byellow\b/i, [235, 210, 40]],
  [/\borange\b/i, [240, 140, 30]],
  [/\b(purple|violet)\b/i, [150, 60, 200]],
  [/\bpink\b/i, [240, 110, 170]],
  [/\b(black|dark|night)\b/i, [30, 30, 40]],
  [/\b(white|snow)\b/i, [245, 245, 245]],
  [/\b(gold|golden)\b/i, [212, 175, 55]],
  [/\b(silver|gr[ae]y)\b/i, [160, 165, 170]],
  [/\bbrown\b/i, [130, 85, 45]],
];

/** Builds the recipe from everything that changes the sampler's result. */
export function makeRecipe(text: string, parts: unknown[]): EditRecipe {
  const key = createHash('sha256').update(JSON.stringify([text, ...parts.map((p) => String(p))])).digest();
  const tint = COLOR_WORDS.find(([re]) => re.test(text))?.[1] ?? null;
  return { key, tint };
}

/** Derives a sub-key (per batch index) from a recipe. */
export function recipeForIndex(r: EditRecipe, index: number): EditRecipe {
  if (index === 0) return r;
  return { tint: r.tint, key: createHash('sha256').update(r.key).update(String(index)).digest() };
}

function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  const [r, g, b] = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][i % 6] as [number, number, number];
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)];
}

/** A soft gradient used when there is no reference image (text-to-image style prompts). */
function gradient(width: number, height: number, key: Buffer): RawImage {
  const a = hsvToRgb((key[10] ?? 0) / 255, 0.5, 0.85);
  const b = hsvToRgb((key[11] ?? 128) / 255, 0.6, 0.35);
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = (x / Math.max(1, width - 1) + y / Math.max(1, height - 1)) / 2;
      const o = (y * width + x) * 3;
      data[o] = a[0] * (1 - t) + b[0] * t;
      data[o + 1] = a[1] * (1 - t) + b[1] * t;
      data[o + 2] = a[2] * (1 - t) + b[2] * t;
    }
  }
  return { width, height, data };
}

/**
 * The sampler's "result": the reference cropped to the output size, recolored towards a tint
 * (a color named in the prompt, else one from the hash), with a seed-dependent glow and a faint
 * wave, so different seeds and prompts give visibly different, deterministic images.
 */
export async function renderEdit(base: RawImage | null, width: number, height: number, recipe: EditRecipe): Promise<RawImage> {
  const src = base ? await resizeCover(base, width, height) : gradient(width, height, recipe.key);
  const k = recipe.key;
  const byte = (i: number): number => k[i] ?? 0;
  const tint = recipe.tint ?? hsvToRgb(byte(0) / 255, 0.65, 0.95);
  // A color named in the prompt shows more strongly than a hash-picked tint.
  const s = (recipe.tint ? 0.4 : 0.22) + (byte(1) / 255) * 0.15;
  const cx = (byte(2) / 255) * width;
  const cy = (byte(3) / 255) * height;
  const r = (0.25 + (byte(4) / 255) * 0.35) * Math.max(width, height);
  const glow = 25 + (byte(5) / 255) * 35;
  const fx = ((1 + (byte(6) % 5)) * 2 * Math.PI) / Math.max(1, width);
  const fy = ((1 + (byte(7) % 5)) * 2 * Math.PI) / Math.max(1, height);
  const phase = (byte(8) / 255) * 2 * Math.PI;
  const ex = new Float32Array(width);
  const sx = new Float32Array(width);
  const cxs = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    ex[x] = Math.exp(-((x - cx) ** 2) / (r * r));
    sx[x] = Math.sin(fx * x + phase);
    cxs[x] = Math.cos(fx * x + phase);
  }
  const tr = tint[0] / 255;
  const tg = tint[1] / 255;
  const tb = tint[2] / 255;
  const out = Buffer.alloc(width * height * 3);
  const d = src.data;
  for (let y = 0; y < height; y++) {
    const ey = Math.exp(-((y - cy) ** 2) / (r * r));
    const sy = Math.sin(fy * y);
    const cy2 = Math.cos(fy * y);
    let o = y * width * 3;
    for (let x = 0; x < width; x++, o += 3) {
      const R = d[o] ?? 0;
      const G = d[o + 1] ?? 0;
      const B = d[o + 2] ?? 0;
      const lum = 0.299 * R + 0.587 * G + 0.114 * B;
      const add = glow * (ex[x] ?? 0) * ey + 4 * ((sx[x] ?? 0) * cy2 + (cxs[x] ?? 0) * sy);
      out[o] = clamp(R * (1 - s) + lum * tr * 1.3 * s + add);
      out[o + 1] = clamp(G * (1 - s) + lum * tg * 1.3 * s + add);
      out[o + 2] = clamp(B * (1 - s) + lum * tb * 1.3 * s + add);
    }
  }
  return { width, height, data: out };
}

function clamp(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** A sampler preview at step i of n: noise fading into the target (both at latent resolution). */
export function previewFrame(target: RawImage, key: Buffer, i: number, n: number): RawImage {
  let state = key.readUInt32LE(12) ^ 0x9e3779b9;
  const rand = (): number => {
    // mulberry32: tiny, fast and deterministic
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const t = n > 0 ? Math.min(1, i / n) : 1;
  const data = Buffer.alloc(target.data.length);
  for (let o = 0; o < data.length; o++) data[o] = clamp((target.data[o] ?? 0) * t + rand() * 255 * (1 - t));
  return { width: target.width, height: target.height, data };
}

/** Size a preview is scaled to: PIL's ImageOps.contain into size×size. */
export function containSize(width: number, height: number, size: number): [number, number] {
  const im = width / height;
  if (im === 1) return [size, size];
  if (im > 1) return [size, Math.max(1, pyRound((height / width) * size))];
  return [Math.max(1, pyRound((width / height) * size)), size];
}

/** JPEG (quality 95) of a preview frame, scaled bilinearly to fit maxSize×maxSize. */
export async function previewJpeg(img: RawImage, maxSize: number): Promise<Buffer> {
  const [w, h] = containSize(img.width, img.height, maxSize);
  return sharp(img.data, rawInput(img)).resize(w, h, { fit: 'fill', kernel: 'linear' }).jpeg({ quality: 95 }).toBuffer();
}

// ---------------------------------------------------------------------------------------------
// PNG output with text chunks
// ---------------------------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = (CRC_TABLE[(c ^ (buf[i] ?? 0)) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function textChunk(keyword: string, text: string): Buffer {
  const body = Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.from([0]), Buffer.from(text, 'latin1')]);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write('tEXt', 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
  return Buffer.concat([head, body, crc]);
}

/** PNG of a frame at zlib `level`, with tEXt chunks (ComfyUI's "prompt" and extra_pnginfo keys) after IHDR. */
export async function encodePng(img: RawImage, level: number, texts: Array<[string, string]>): Promise<Buffer> {
  const png = await sharp(img.data, rawInput(img)).png({ compressionLevel: level, adaptiveFiltering: false }).toBuffer();
  return withTextChunks(png, texts);
}

/** `png` with tEXt chunks inserted after IHDR (where PIL writes them). */
export function withTextChunks(png: Buffer, texts: Array<[string, string]>): Buffer {
  if (texts.length === 0) return png;
  const ihdrEnd = 8 + 8 + png.readUInt32BE(8) + 4;
  return Buffer.concat([png.subarray(0, ihdrEnd), ...texts.map(([k, v]) => textChunk(k, v)), png.subarray(ihdrEnd)]);
}

/** Re-encodings `/view` offers: webp/jpeg previews, RGB-only PNG, alpha-only PNG. */
export async function viewVariant(
  file: string,
  kind: { preview: 'webp' | 'jpeg'; quality: number; rgb: boolean } | { channel: 'rgb' | 'a' },
): Promise<Buffer> {
  if ('preview' in kind) {
    let s = sharp(file);
    if (kind.preview === 'jpeg' || kind.rgb) s = s.removeAlpha();
    return kind.preview === 'jpeg'
      ? s.jpeg({ quality: Math.max(1, Math.min(100, kind.quality)) }).toBuffer()
      : s.webp({ quality: Math.max(1, Math.min(100, kind.quality)) }).toBuffer();
  }
  if (kind.channel === 'rgb') return sharp(file).removeAlpha().png().toBuffer();
  // PIL: a new transparent black RGBA image whose alpha is the file's alpha (255 without one).
  const { data: alpha, info } = await sharp(file).ensureAlpha().extractChannel(3).raw().toBuffer({ resolveWithObject: true });
  const rgba = Buffer.alloc(alpha.length * 4);
  for (let i = 0; i < alpha.length; i++) rgba[i * 4 + 3] = alpha[i] ?? 0;
  return sharp(rgba, { raw: { width: info.width, height: info.height, channels: 4 } }).png().toBuffer();
}
