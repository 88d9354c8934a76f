/**
 * Where finished images go: downloaded from ComfyUI, checked with the same format module as uploads
 * (format by its bytes, dimensions from its header), converted to OUTPUT_FORMAT when ComfyUI wrote
 * another one, stripped of ComfyUI's workflow metadata, and stored under
 * `images/<task>/<index>.<ext>` in the BlobStore (DATA_DIR, a shared folder or S3).
 * The work happens in this replica's temp folder; only the finished file reaches the store.
 */
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { ComfyBackend } from '../comfyui/backend.js';
import type { FileRef } from '../comfyui/protocol.js';
import { encodeAs, FORMAT_INFO, MAX_INPUT_PIXELS, type OutputFormat } from '../images/output-formats.js';
import { stripPngMetadata } from '../images/strip-png-metadata.js';
import type { BlobStore } from '../storage/blob-store.js';
import { readImageHeader, SIGNATURE_BYTES, sniffImageFormat } from '../uploads/image-format.js';
import type { StoredImage } from './transitions/complete-image.js';

/** Largest result file accepted from ComfyUI. */
const MAX_RESULT_BYTES = 200 * 1024 * 1024;

/** Quality of a stored original in a lossy OUTPUT_FORMAT: above the variants' defaults, since variants are made from it. */
const STORED_QUALITY: Readonly<Record<OutputFormat, number | undefined>> = { png: undefined, jpeg: 90, webp: 90, avif: 65 };

export class ResultStore {
  /**
   * @param store where finished images go
   * @param tmpDir this replica's local temp folder (absolute), for downloads in progress
   * @param keepImageMetadata keep ComfyUI's prompt and workflow in PNG text chunks (KEEP_IMAGE_METADATA)
   * @param outputFormat the format images are stored in (OUTPUT_FORMAT); a result in another one is converted. @default 'png'
   */
  constructor(
    private readonly blobs: BlobStore,
    private readonly tmpDir: string,
    private readonly keepImageMetadata: boolean,
    private readonly outputFormat: OutputFormat = 'png',
  ) {}

  /** Downloads `file` of image `index` of `taskId` from `server` and stores it in the output format; rejects when it is no PNG, JPEG or WebP image. */
  async store(server: ComfyBackend, taskId: string, index: number, file: FileRef): Promise<StoredImage> {
    const tmp = join(this.tmpDir, `${taskId}-${index}.download`);
    const converted = `${tmp}.${FORMAT_INFO[this.outputFormat].ext}`;
    // Whatever the store has not taken is removed at the end.
    let leftovers = [tmp, converted];
    try {
      // The download makes the temp folder when it is missing (the first store, or removed by hand).
      // A temp file: the store syncs what it keeps (a folder store once, as it moves it into place;
      // S3 never needs it), so syncing the download and the stripped copy too cost two more
      // flushes of ~1.5 MB on the last image's way to the client.
      let { bytes } = await server.download(file, tmp, { maxBytes: MAX_RESULT_BYTES, durable: false });
      const format = sniffImageFormat(await head(tmp));
      const header = format?.complete ? await readImageHeader(tmp).catch(() => undefined) : undefined;
      if (!format?.complete || !header || header.format !== format.format.name) {
        throw new Error(`ComfyUI at ${server.url} returned ${file.filename}, which is not a PNG, JPEG or WebP image`);
      }
      const { contentType, ext } = FORMAT_INFO[this.outputFormat];
      let source = tmp;
      if (format.format.name !== this.outputFormat) {
        // Re-encoded by sharp, which copies no metadata: ComfyUI's workflow is left behind too.
        source = converted;
        const pipeline = sharp(tmp, { limitInputPixels: MAX_INPUT_PIXELS });
        bytes = (await encodeAs(pipeline, this.outputFormat, STORED_QUALITY[this.outputFormat]).toFile(source)).size;
      } else if (format.format.name === 'png' && !this.keepImageMetadata) {
        // ComfyUI writes the whole workflow and prompt into its PNGs: not for whoever downloads the image.
        bytes = await stripPngMetadata(tmp, { durable: false });
      }
      // The key is also the recorded file_path: the same relative form as before stores existed.
      const key = `images/${taskId}/${index}.${ext}`;
      await this.blobs.put(key, source, { move: true, contentType });
      // The store took `source`; only a converted image's download is left.
      leftovers = source === tmp ? [] : [tmp];
      return { file_path: key, width: header.width, height: header.height, bytes, content_type: contentType };
    } finally {
      // Left by a failed download, check, conversion or put (rm waits behind fsyncs too: not when nothing is left).
      for (const path of leftovers) await rm(path, { force: true });
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
