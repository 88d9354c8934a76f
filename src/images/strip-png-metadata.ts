/**
 * Removes the text chunks (tEXt, iTXt, zTXt) from a stored PNG, where ComfyUI writes the whole
 * prompt and workflow of an image. Every other chunk is copied byte for byte: no decode, no
 * re-encode, so the pixels cannot change and it costs one read and one write of the file.
 */
import { randomUUID } from 'node:crypto';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const TEXT_CHUNKS = new Set(['tEXt', 'iTXt', 'zTXt']);

/**
 * Rewrites the PNG at `path` in place without its text chunks and resolves with its new size in
 * bytes. The new file replaces the old one atomically (temp file in the same folder, then rename),
 * so a reader sees either the old or the new file, never half of one. A file that is not a
 * well-formed PNG, or has no text chunks, is left as it is (resolves with its current size).
 * `durable: false` skips syncing the new file: for a temp file that is synced where it ends up.
 * @default options.durable true
 */
export async function stripPngMetadata(path: string, options: { durable?: boolean } = {}): Promise<number> {
  const bytes = await readFile(path);
  const kept = keptParts(bytes);
  if (!kept) return bytes.length;
  const tmp = join(dirname(path), `.${basename(path)}.${randomUUID()}.tmp`);
  const { mode } = await stat(path);
  const file = await open(tmp, 'wx', mode);
  try {
    let size = 0;
    for (const part of kept) {
      await file.write(part);
      size += part.length;
    }
    // Durable before the rename, or a crash could leave an empty file under the image's name.
    if (options.durable ?? true) await file.datasync();
    await file.close();
    await rename(tmp, path);
    return size;
  } catch (err) {
    await file.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * The slices of `png` to keep, in order, or undefined when there is nothing to strip (no text
 * chunk) or the bytes are not a PNG whose chunks can be walked safely.
 */
function keptParts(png: Buffer): Buffer[] | undefined {
  if (png.length < SIGNATURE.length || !png.subarray(0, SIGNATURE.length).equals(SIGNATURE)) return undefined;
  const parts: Buffer[] = [];
  let keepFrom = 0;
  let stripped = false;
  let at = SIGNATURE.length;
  for (;;) {
    // length (4) + type (4) + data + CRC (4)
    if (at + 12 > png.length) return undefined;
    const end = at + 12 + png.readUInt32BE(at);
    if (end > png.length) return undefined;
    const type = png.toString('latin1', at + 4, at + 8);
    if (TEXT_CHUNKS.has(type)) {
      parts.push(png.subarray(keepFrom, at));
      keepFrom = end;
      stripped = true;
    }
    at = end;
    // Anything after IEND is kept as it is, like every chunk we do not know.
    if (type === 'IEND') break;
  }
  if (!stripped) return undefined;
  parts.push(png.subarray(keepFrom));
  return parts.filter((p) => p.length > 0);
}
