/**
 * The formats images are served and stored in (PNG, JPEG, WebP, AVIF): content type, file extension,
 * the quality used when none is asked for, and the sharp encoder call. Variants (variant-maker.ts)
 * and OUTPUT_FORMAT (tasks/result-store.ts) encode through the same table.
 */
import type { Sharp } from 'sharp';

/** A format an image can be rendered in. */
export type OutputFormat = 'png' | 'jpeg' | 'webp' | 'avif';

/** Every output format, in the order the docs list them. */
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['png', 'jpeg', 'webp', 'avif'];

/** What is known of one output format. */
export interface OutputFormatInfo {
  contentType: string;
  /** File name extension, without the dot. */
  ext: string;
  /** Quality when a request gives none (sharp's defaults); undefined: lossless unless asked (PNG). */
  defaultQuality: number | undefined;
}

/** The table; the default qualities are sharp's. */
export const FORMAT_INFO: Readonly<Record<OutputFormat, OutputFormatInfo>> = {
  png: { contentType: 'image/png', ext: 'png', defaultQuality: undefined },
  jpeg: { contentType: 'image/jpeg', ext: 'jpg', defaultQuality: 80 },
  webp: { contentType: 'image/webp', ext: 'webp', defaultQuality: 80 },
  avif: { contentType: 'image/avif', ext: 'avif', defaultQuality: 50 },
};

/**
 * Most pixels (width x height) sharp decodes from a stored image: far above what the workflow makes
 * (2048x2048 at most), low enough that two decodes at once stay within a few hundred MB.
 */
export const MAX_INPUT_PIXELS = 4096 * 4096;

/** The output format of a stored image's content type; undefined for anything else. */
export function formatOfContentType(contentType: string | null): OutputFormat | undefined {
  return OUTPUT_FORMATS.find((f) => FORMAT_INFO[f].contentType === contentType);
}

/**
 * Sets `pipeline`'s output to `format`. `quality` (1-100) undefined: the format's default; for PNG a
 * quality means a palette image with as few colours as reach it (sharp's `png({ quality })`).
 */
export function encodeAs(pipeline: Sharp, format: OutputFormat, quality: number | undefined): Sharp {
  switch (format) {
    case 'png':
      return quality === undefined ? pipeline.png() : pipeline.png({ palette: true, quality });
    case 'jpeg':
      // mozjpeg: smaller files at the same quality, what a front end wants from a thumbnail.
      return pipeline.jpeg({ quality: quality ?? FORMAT_INFO.jpeg.defaultQuality!, mozjpeg: true });
    case 'webp':
      return pipeline.webp({ quality: quality ?? FORMAT_INFO.webp.defaultQuality! });
    case 'avif':
      return pipeline.avif({ quality: quality ?? FORMAT_INFO.avif.defaultQuality! });
  }
}
