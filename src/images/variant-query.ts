/**
 * What a client may ask of an image besides the original: `format`, `width` and `quality`, their
 * limits, and the checks REST (query parameters) and GraphQL (`Image.url` arguments) share, so both
 * refuse the same values with the same words.
 */
import { OUTPUT_FORMATS, type OutputFormat } from './output-formats.js';

/** A requested rendering; every part is optional (none: the original). */
export interface VariantRequest {
  format?: OutputFormat;
  /** Pixels; the height follows the aspect ratio. */
  width?: number;
  /** 1-100. */
  quality?: number;
}

/** The limits, also shown in error messages and the API docs. */
export const VARIANT_LIMITS = {
  width: { min: 16, max: 4096 },
  quality: { min: 1, max: 100 },
} as const;

/** The thumbnail `Image.thumbnailUrl` points to. */
export const THUMBNAIL: Readonly<VariantRequest> = { format: 'webp', width: 256 };

/** One refused parameter, in the words of a FastAPI 422 entry (type as pydantic names it). */
export interface VariantProblem {
  param: 'format' | 'width' | 'quality';
  msg: string;
  type: 'enum' | 'int_parsing' | 'greater_than_equal' | 'less_than_equal';
}

const FORMAT_MESSAGE = `format must be one of ${OUTPUT_FORMATS.join(', ')}`;

/** The message for a bad width or quality: it names the parameter and the limits. */
function rangeMessage(param: 'width' | 'quality'): string {
  const { min, max } = VARIANT_LIMITS[param];
  return `${param} must be a whole number from ${min} to ${max}`;
}

/** Checks a whole number `value` of `param` against its limits. */
function checkRange(param: 'width' | 'quality', value: number): VariantProblem | undefined {
  const { min, max } = VARIANT_LIMITS[param];
  if (!Number.isSafeInteger(value)) return { param, msg: rangeMessage(param), type: 'int_parsing' };
  if (value < min) return { param, msg: rangeMessage(param), type: 'greater_than_equal' };
  if (value > max) return { param, msg: rangeMessage(param), type: 'less_than_equal' };
  return undefined;
}

/** Reads `format`, `width` and `quality` from a query string; every bad one is listed in `problems`. */
export function parseVariantQuery(query: URLSearchParams): { request: VariantRequest; problems: VariantProblem[] } {
  const request: VariantRequest = {};
  const problems: VariantProblem[] = [];
  const format = query.get('format');
  if (format !== null) {
    // Lower case only, as the URLs the API hands out spell it; `jpg` is not a second name.
    if ((OUTPUT_FORMATS as readonly string[]).includes(format)) request.format = format as OutputFormat;
    else problems.push({ param: 'format', msg: FORMAT_MESSAGE, type: 'enum' });
  }
  for (const param of ['width', 'quality'] as const) {
    const raw = query.get(param);
    if (raw === null) continue;
    // Digits only: no sign, exponent or fraction; a long run of digits is simply too large.
    const problem = /^\d{1,9}$/.test(raw) ? checkRange(param, Number(raw)) : { param, msg: rangeMessage(param), type: 'int_parsing' as const };
    if (problem) problems.push(problem);
    else request[param] = Number(raw);
  }
  return { request, problems };
}

/** Checks the `width` and `quality` of a GraphQL request (format is an enum there); the first problem, if any. */
export function checkVariantArgs(request: VariantRequest): VariantProblem | undefined {
  for (const param of ['width', 'quality'] as const) {
    const value = request[param];
    const problem = value === undefined ? undefined : checkRange(param, value);
    if (problem) return problem;
  }
  return undefined;
}

/** The query parameters of a request (`format=webp&width=256`), empty for the original. */
export function variantQuery(request: VariantRequest): string {
  const parts: string[] = [];
  if (request.format !== undefined) parts.push(`format=${request.format}`);
  if (request.width !== undefined) parts.push(`width=${request.width}`);
  if (request.quality !== undefined) parts.push(`quality=${request.quality}`);
  return parts.join('&');
}
