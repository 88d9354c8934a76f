/**
 * The image formats an upload may have (PNG, JPEG, WebP), recognised by their bytes and never by a
 * file name or a declared type, plus checks that read only a few bytes of a stored file: whether its
 * end is intact, and what its header says about its size. Nothing here decodes pixels, so a
 * decompression bomb costs no memory until something decides to decode it.
 */
import type { FileHandle } from 'node:fs/promises';
import sharp from 'sharp';

/** One accepted format. */
export interface ImageFormat {
  /** As sharp's `metadata().format` names it. */
  readonly name: 'png' | 'jpeg' | 'webp';
  /** For messages. */
  readonly label: 'PNG' | 'JPEG' | 'WebP';
  readonly contentType: 'image/png' | 'image/jpeg' | 'image/webp';
  /** File name extension, without the dot. */
  readonly ext: 'png' | 'jpg' | 'webp';
}

const PNG: ImageFormat = { name: 'png', label: 'PNG', contentType: 'image/png', ext: 'png' };
const JPEG: ImageFormat = { name: 'jpeg', label: 'JPEG', contentType: 'image/jpeg', ext: 'jpg' };
const WEBP: ImageFormat = { name: 'webp', label: 'WebP', contentType: 'image/webp', ext: 'webp' };

// `undefined` matches any byte (the RIFF size field).
const SIGNATURES: ReadonlyArray<{ format: ImageFormat; bytes: ReadonlyArray<number | undefined> }> = [
  { format: PNG, bytes: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] },
  { format: JPEG, bytes: [0xff, 0xd8, 0xff] },
  // "RIFF", 4 bytes of size, "WEBP"
  { format: WEBP, bytes: [0x52, 0x49, 0x46, 0x46, undefined, undefined, undefined, undefined, 0x57, 0x45, 0x42, 0x50] },
];

/** How many leading bytes identify any accepted format. */
export const SIGNATURE_BYTES = Math.max(...SIGNATURES.map((s) => s.bytes.length));

/** What the first bytes say: a format whose signature is `complete`, or only a prefix of one so far. */
export interface Sniffed {
  format: ImageFormat;
  /** False while `head` is shorter than the signature; more bytes may still rule the format out. */
  complete: boolean;
}

/** Identifies the format from the first bytes of a file; `undefined` when they fit no accepted format. */
export function sniffImageFormat(head: Uint8Array): Sniffed | undefined {
  if (head.length === 0) return undefined;
  for (const { format, bytes } of SIGNATURES) {
    const n = Math.min(head.length, bytes.length);
    let matches = true;
    for (let i = 0; i < n && matches; i++) matches = bytes[i] === undefined || bytes[i] === head[i];
    if (matches) return { format, complete: head.length >= bytes.length };
  }
  return undefined;
}

/** A defect in the file's structure: `truncated` when its end is missing, else malformed. */
export interface StructureProblem {
  truncated: boolean;
  /** Completes "the file ...", e.g. "does not end with the PNG IEND chunk". */
  detail: string;
}

// The whole IEND chunk: length 0, type "IEND", and the CRC of "IEND".
const PNG_IEND = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);
const JPEG_EOI = Buffer.from([0xff, 0xd9]);

/** How many last bytes {@link checkStructure} reads of a file, unless a JPEG ends in more zero padding than that. */
export const TAIL_BYTES = 4096;

/** Reads exactly `length` bytes of a file at `position` (fewer only at the end of the file). */
export type ReadBytes = (position: number, length: number) => Promise<Buffer>;

/**
 * Checks that a file of `size` bytes, whose signature said `format`, ends the way that format must
 * end, reading only its last bytes (and, for WebP, the RIFF size in its header) through `read`.
 * A truncated upload fails this even when the decoder would still read its header happily.
 */
export async function checkStructure(read: ReadBytes, size: number, format: ImageFormat): Promise<StructureProblem | undefined> {
  switch (format.name) {
    case 'png': {
      const tail = size >= PNG_IEND.length + 8 ? await read(size - PNG_IEND.length, PNG_IEND.length) : undefined;
      return tail?.equals(PNG_IEND) ? undefined : { truncated: true, detail: 'does not end with the PNG IEND chunk' };
    }
    case 'jpeg': {
      // Some encoders pad the end with zero bytes; the marker must come right before the padding.
      const end = await endWithoutZeroPadding(read, size);
      const tail = end >= 4 ? await read(end - 2, 2) : undefined;
      return tail?.equals(JPEG_EOI) ? undefined : { truncated: true, detail: 'does not end with the JPEG end-of-image marker (FF D9)' };
    }
    case 'webp': {
      if (size < 12) return { truncated: true, detail: 'ends inside the RIFF header' };
      // The RIFF size counts from byte 8; a chunk of odd size is followed by one padding byte.
      const riffSize = (await read(4, 4)).readUInt32LE(0);
      const expected = 8 + riffSize + (riffSize % 2);
      if (size === expected || size === 8 + riffSize) return undefined;
      return size < expected
        ? { truncated: true, detail: `has ${size} bytes but its RIFF header announces ${8 + riffSize}` }
        : { truncated: false, detail: `has ${size - expected} bytes after the end of its RIFF container` };
    }
  }
}

/** A {@link ReadBytes} over an open file. */
export function readFrom(file: FileHandle): ReadBytes {
  return async (position, length) => {
    const buffer = Buffer.alloc(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await file.read(buffer, filled, length - filled, position + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buffer.subarray(0, filled);
  };
}

/** What the header of an image file says about its size. */
export interface ImageHeader {
  /** The format the decoder recognised (sharp's name), to compare with the sniffed one. */
  format: string;
  /** As displayed, i.e. after the EXIF orientation is applied (what ComfyUI's LoadImage sees too). */
  width: number;
  height: number;
  /** Frames of an animated image, 1 otherwise; each one is decoded when the image is loaded. */
  frames: number;
}

/**
 * Reads width, height and frame count from the header of the image at `path` with sharp, without
 * decoding pixels. Rejects with sharp's error when the header is unreadable.
 *
 * Passing a path, not a stream, keeps the file out of memory. libvips may keep the file open in its
 * file cache afterwards (it does for WebP): see `sharp.cache({ files: 0 })`.
 */
export async function readImageHeader(path: string): Promise<ImageHeader> {
  // sharp's own pixel cap (about 268 Mpx) would refuse absurd headers before we can name our limit.
  const meta = await sharp(path, { limitInputPixels: false }).metadata();
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height)) throw new Error('the header has no dimensions');
  return { format: meta.format, width, height, frames: Math.max(1, meta.pages ?? 1) };
}

/** The file size once trailing zero bytes are left out, reading backwards {@link TAIL_BYTES} at a time. */
async function endWithoutZeroPadding(read: ReadBytes, size: number): Promise<number> {
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - TAIL_BYTES);
    const block = await read(start, end - start);
    let i = block.length - 1;
    while (i >= 0 && block[i] === 0) i--;
    if (i >= 0) return start + i + 1;
    end = start;
  }
  return 0;
}
