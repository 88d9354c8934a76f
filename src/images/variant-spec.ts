/**
 * A request (variant-query.ts) against one stored image becomes a concrete rendering: the format,
 * the width it will really have (never more than the original's) and the quality it is encoded
 * with. Requests that render alike share one rendering, so one stored object: `width=4096` of a
 * 1024 wide image is the full width, and `format=webp` is `format=webp&quality=80`.
 */
import { FORMAT_INFO, type OutputFormat } from './output-formats.js';
import type { VariantRequest } from './variant-query.js';

/** A rendering of a stored image other than the original. */
export interface Rendering {
  format: OutputFormat;
  /** Undefined: the original's width. */
  width: number | undefined;
  /** Undefined: lossless (PNG without a quality). */
  quality: number | undefined;
}

/** What is known of the original, from its row. */
export interface OriginalImage {
  /** Its format; undefined when the row's content type is none of the output formats. */
  format: OutputFormat | undefined;
  /** Its width in pixels; undefined when not recorded (then sharp alone keeps it from growing). */
  width: number | undefined;
}

/** The rendering `request` asks of `original`; undefined when that is the original itself. */
export function resolveRendering(request: VariantRequest, original: OriginalImage): Rendering | undefined {
  const format = request.format ?? original.format ?? 'png';
  // Never enlarged: a width at or above the original's is the original's.
  const width = request.width !== undefined && (original.width === undefined || request.width < original.width) ? request.width : undefined;
  if (format === original.format && width === undefined && request.quality === undefined) return undefined;
  return { format, width, quality: request.quality ?? FORMAT_INFO[format].defaultQuality };
}

/** The rendering's part of its storage key and ETag, e.g. `w256.q80.webp`. */
export function renderingSuffix(rendering: Rendering): string {
  const parts: string[] = [];
  if (rendering.width !== undefined) parts.push(`w${rendering.width}`);
  if (rendering.quality !== undefined) parts.push(`q${rendering.quality}`);
  parts.push(FORMAT_INFO[rendering.format].ext);
  return parts.join('.');
}

/** Where the rendering of the image stored under `originalKey` is stored: beside it, e.g. `images/<task>/0.png.w256.q80.webp`. */
export function variantKey(originalKey: string, rendering: Rendering): string {
  return `${originalKey}.${renderingSuffix(rendering)}`;
}
