/**
 * The `photo` result mode: results the size real ones are. A FLUX.1 Kontext result at 1024x1024
 * is a 1-2 MB PNG because a photograph has smooth light, hard edges and fine grain; the derived
 * results (images.ts renderEdit) are smooth and compress to a fraction of that. Here a picture is
 * painted from a seed (sky gradient, soft blobs, hard-edged shapes, a grain layer) and its PNG is
 * encoded once: a few variants per size are cached, so the simulator's CPU stays out of the way.
 */
import { encodePng, withTextChunks, type RawImage } from './images.js';

/** Distinct pictures per size; a seed picks one, so equal seeds give equal bytes. */
export const PHOTO_VARIANTS = 6;
/** Grain amplitude (± levels per channel); tuned so 1024x1024 lands in 1-2 MB at ComfyUI's level 4. */
const GRAIN = 1.5;

const frames = new Map<string, RawImage>();
const pngs = new WeakMap<Buffer, Map<number, Promise<Buffer>>>();

/** mulberry32: small, fast and deterministic. */
function random(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The picture variant a recipe key (prompt, seed, settings) picks. */
export function photoVariant(key: Buffer): number {
  return key.readUInt32LE(16) % PHOTO_VARIANTS;
}

/** The cached photographic frame of `width` x `height` for `key` (same key, same pixels). */
export function photoFrame(width: number, height: number, key: Buffer): RawImage {
  const id = `${width}x${height}:${photoVariant(key)}`;
  let frame = frames.get(id);
  if (!frame) {
    frame = paint(width, height, photoVariant(key));
    frames.set(id, frame);
  }
  return frame;
}

/** Paints and encodes every variant of `width` x `height` now (at zlib `level`, default 4 as SaveImage), so no prompt pays for it; their PNG sizes. */
export async function preparePhotos(width: number, height: number, level = 4): Promise<number[]> {
  const sizes: number[] = [];
  for (let v = 0; v < PHOTO_VARIANTS; v++) {
    const key = Buffer.alloc(32);
    key.writeUInt32LE(v, 16);
    sizes.push((await photoPng(photoFrame(width, height, key), level, [])).length);
  }
  return sizes;
}

/** PNG bytes of a frame at zlib `level` with `texts` chunks; a photo frame is encoded once and reused. */
export async function photoPng(frame: RawImage, level: number, texts: Array<[string, string]>): Promise<Buffer> {
  let byLevel = pngs.get(frame.data);
  if (!byLevel) {
    byLevel = new Map();
    pngs.set(frame.data, byLevel);
  }
  let plain = byLevel.get(level);
  if (!plain) {
    plain = encodePng(frame, level, []);
    byLevel.set(level, plain);
  }
  return withTextChunks(await plain, texts);
}

/** Paints variant `v`: a vertical light gradient, soft blobs, hard-edged rectangles, then grain. */
function paint(width: number, height: number, v: number): RawImage {
  const rand = random(0x5eed0000 + v * 7919 + width * 31 + height);
  const top = [90 + rand() * 120, 110 + rand() * 110, 150 + rand() * 100];
  const bottom = [30 + rand() * 90, 30 + rand() * 80, 20 + rand() * 70];
  const f = new Float32Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const t = y / Math.max(1, height - 1);
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) f[o + c] = top[c]! * (1 - t) + bottom[c]! * t;
    }
  }
  const scale = Math.max(width, height);
  for (let b = 0; b < 14; b++) {
    const cx = rand() * width;
    const cy = rand() * height;
    const r = (0.05 + rand() * 0.25) * scale;
    const color = [rand() * 255, rand() * 255, rand() * 255];
    const strength = 0.4 + rand() * 0.5;
    const x0 = Math.max(0, Math.floor(cx - 2 * r));
    const x1 = Math.min(width, Math.ceil(cx + 2 * r));
    for (let y = Math.max(0, Math.floor(cy - 2 * r)); y < Math.min(height, Math.ceil(cy + 2 * r)); y++) {
      for (let x = x0; x < x1; x++) {
        const a = strength * Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (r * r));
        const o = (y * width + x) * 3;
        for (let c = 0; c < 3; c++) f[o + c] = f[o + c]! * (1 - a) + color[c]! * a;
      }
    }
  }
  for (let s = 0; s < 10; s++) {
    const x0 = Math.floor(rand() * width);
    const y0 = Math.floor(rand() * height);
    const x1 = Math.min(width, x0 + Math.floor((0.05 + rand() * 0.3) * width));
    const y1 = Math.min(height, y0 + Math.floor((0.05 + rand() * 0.3) * height));
    const color = [rand() * 255, rand() * 255, rand() * 255];
    for (let y = y0; y < y1; y++) {
      // A lit side: shapes shade across, as objects in a photo do.
      const shade = 0.75 + 0.25 * ((y - y0) / Math.max(1, y1 - y0));
      for (let x = x0; x < x1; x++) {
        const o = (y * width + x) * 3;
        for (let c = 0; c < 3; c++) f[o + c] = color[c]! * shade;
      }
    }
  }
  const data = Buffer.alloc(width * height * 3);
  for (let i = 0; i < data.length; i++) {
    const v2 = f[i]! + (rand() + rand() - 1) * GRAIN;
    data[i] = v2 < 0 ? 0 : v2 > 255 ? 255 : v2;
  }
  return { width, height, data };
}
