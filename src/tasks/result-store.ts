/**
 * Where finished images go: downloaded from ComfyUI, checked with the same format module as uploads
 * (format by its bytes, dimensions from its header), stripped of ComfyUI's workflow metadata, and
 * stored under `images/<task>/<index>.<ext>` in the BlobStore (DATA_DIR, a shared folder or S3).
 * The work happens in this replica's temp folder; only the finished file reaches the store.
 */
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ComfyBackend } from '../comfyui/backend.js';
import type { FileRef } from '../comfyui/protocol.js';
import { stripPngMetadata } from '../images/strip-png-metadata.js';
import type { BlobStore } from '../storage/blob-store.js';
import { readImageHeader, SIGNATURE_BYTES, sniffImageFormat } from '../uploads/image-format.js';
import type { StoredImage } from './transitions/complete-image.js';

/** Largest result file accepted from ComfyUI. */
const MAX_RESULT_BYTES = 200 * 1024 * 1024;

export class ResultStore {
  /**
   * @param store where finished images go
   * @param tmpDir this replica's local temp folder (absolute), for downloads in progress
   * @param keepImageMetadata keep ComfyUI's prompt and workflow in PNG text chunks (KEEP_IMAGE_METADATA)
   */
  constructor(
    private readonly blobs: BlobStore,
    private readonly tmpDir: string,
    private readonly keepImageMetadata: boolean,
  ) {}

  /** Downloads `file` of image `index` of `taskId` from `server` and stores it; rejects when it is no PNG, JPEG or WebP image. */
  async store(server: ComfyBackend, taskId: string, index: number, file: FileRef): Promise<StoredImage> {
    const tmp = join(this.tmpDir, `${taskId}-${index}.download`);
    await mkdir(this.tmpDir, { recursive: true });
    try {
      let { bytes } = await server.download(file, tmp, { maxBytes: MAX_RESULT_BYTES });
      const format = sniffImageFormat(await head(tmp));
      const header = format?.complete ? await readImageHeader(tmp).catch(() => undefined) : undefined;
      if (!format?.complete || !header || header.format !== format.format.name) {
        throw new Error(`ComfyUI at ${server.url} returned ${file.filename}, which is not a PNG, JPEG or WebP image`);
      }
      // ComfyUI writes the whole workflow and prompt into its PNGs: not for whoever downloads the image.
      if (format.format.name === 'png' && !this.keepImageMetadata) bytes = await stripPngMetadata(tmp);
      // The key is also the recorded file_path: the same relative form as before stores existed.
      const key = `images/${taskId}/${index}.${format.format.ext}`;
      await this.blobs.put(key, tmp, { move: true, contentType: format.format.contentType });
      return { file_path: key, width: header.width, height: header.height, bytes, content_type: format.format.contentType };
    } finally {
      // Gone already when the store took it; left by a failed download, check or put.
      await rm(tmp, { force: true });
    }
  }
}

/** The first bytes of a file, enough to tell its format. */
async function head(path: string): Promise<Uint8Array> {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(SIGNATURE_BYTES);
    const { bytesRead } = await file.read(buffer, 0, SIGNATURE_BYTES, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}
