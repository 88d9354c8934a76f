/**
 * `GET /api/image/{task_id}?index=0`: a finished image's bytes. Images never change once stored,
 * so they carry an ETag and long cache headers; `Range` requests are honoured. The bytes stream
 * from the BlobStore (DATA_DIR, a shared folder or S3), whichever replica stored them.
 *
 * `format`, `width` and `quality` ask for a variant (images/variant-query.ts): made once with sharp,
 * stored beside the original, then served exactly like it (its own ETag, the same cache headers).
 *
 * Once keys exist a request needs a key that sees the task (read scope) or the `exp` and `sig` of
 * a signed URL (what an `<img>` can send); shared caches then may not keep the image (`private`),
 * and a signed answer is kept no longer than its URL works. A signature covers the image (task and
 * index), not the rendering: any variant of a signed image may be fetched with its URL.
 */
import { etagMatches } from '../http/static-files.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Authenticator } from '../auth/authenticator.js';
import { OPEN_CALLER, type Caller } from '../auth/caller.js';
import type { UrlSigner } from '../auth/url-signer.js';
import { FORMAT_INFO, formatOfContentType } from '../images/output-formats.js';
import { variantMakerFor, type VariantMaker } from '../images/variant-maker.js';
import { parseVariantQuery, type VariantRequest } from '../images/variant-query.js';
import { renderingSuffix, resolveRendering, variantKey } from '../images/variant-spec.js';
import type { TaskService } from '../tasks/task-service.js';
import { keyOf, permitted, refuse, WWW_AUTHENTICATE } from './authenticate.js';
import { sendDetail, sendFieldErrors, type FieldError } from './respond.js';

/** What the image route needs. */
export interface ImageRouteOptions {
  service: TaskService;
  auth: Authenticator;
  /** Checks the `exp` and `sig` of signed image URLs. */
  signer: UrlSigner;
  /** Makes the variants. @default the one maker of `service.store` in this process */
  variants?: VariantMaker;
}

/** Cache-Control of images in open mode: they never change, anyone may keep them. */
const PUBLIC_CACHE = 'public, max-age=31536000, immutable';
/** Cache-Control of images fetched with a key: only the caller's own cache may keep them. */
const PRIVATE_CACHE = 'private, max-age=31536000, immutable';

/** Serves image `index` of `taskId` to a caller with a key or a signed URL; see the module comment. */
export async function handleImage(req: IncomingMessage, res: ServerResponse, taskId: string, query: URLSearchParams, options: ImageRouteOptions): Promise<void> {
  const raw = query.get('index') ?? '0';
  const validIndex = /^\d{1,3}$/.test(raw);
  const access = await accessOf(req, res, taskId, validIndex ? Number(raw) : undefined, query, options);
  if (!access) return;
  const { request, problems } = parseVariantQuery(query);
  const errors: FieldError[] = problems.map(({ param, msg, type }) => ({ loc: ['query', param], msg, type }));
  if (!validIndex) errors.unshift({ loc: ['query', 'index'], msg: 'Input should be a valid integer from 0 to 3', type: 'int_parsing' });
  if (errors.length > 0) return sendFieldErrors(res, errors);
  await serveImage(req, res, taskId, Number(raw), request, options, access);
}

/** Who may fetch the image, and how long caches may keep it. */
interface Access {
  caller: Caller;
  cacheControl: string;
}

/**
 * The access a request has; undefined once a refusal was sent. A valid signature is enough on its
 * own; otherwise a key decides (so a key still works with an expired URL); with neither, 401.
 */
async function accessOf(
  req: IncomingMessage,
  res: ServerResponse,
  taskId: string,
  index: number | undefined,
  query: URLSearchParams,
  options: ImageRouteOptions,
): Promise<Access | undefined> {
  const key = keyOf(req);
  // From the authenticator's caches when they tell it (no promises), else looked up.
  const result = options.auth.known(key) ?? (await options.auth.authenticate(key));
  if (result.ok && result.caller.keyId === null) return { caller: result.caller, cacheControl: PUBLIC_CACHE }; // open mode
  const signed = query.has('sig') || query.has('exp');
  const exp = query.get('exp');
  const check = !signed ? undefined : index === undefined ? 'invalid' : options.signer.check(taskId, index, exp, query.get('sig'));
  if (check === 'valid') {
    // The URL was made for this one image: it may be fetched as if by its owner, until it expires.
    const left = Math.max(0, Number(exp) - Math.floor(Date.now() / 1000));
    return { caller: OPEN_CALLER, cacheControl: `private, max-age=${left}` };
  }
  if (key !== undefined) {
    const caller = permitted(req, res, result, 'read');
    return caller && { caller, cacheControl: PRIVATE_CACHE };
  }
  if (check === 'expired') refuse(req, res, 403, `This image URL expired at ${new Date(Number(exp) * 1000).toISOString()}: read the task again for a new one`);
  else if (check === 'invalid') refuse(req, res, 403, 'The signature of this image URL is not valid (exp and sig must be as the API returned them)');
  else refuse(req, res, 401, 'An API key ("Authorization: Bearer <key>" or X-API-Key) or a signed image URL is required', { 'www-authenticate': WWW_AUTHENTICATE });
  return undefined;
}

/** What is sent: the stored object, its size and the headers naming it. */
interface Served {
  key: string;
  size: number;
  etag: string;
  contentType: string;
}

/** Streams the image or its variant (or a range of it, or a 304) with ETag and `access`'s cache headers. */
async function serveImage(
  req: IncomingMessage,
  res: ServerResponse,
  taskId: string,
  index: number,
  request: VariantRequest,
  options: ImageRouteOptions,
  access: Access,
): Promise<void> {
  const { service } = options;
  const found = await service.imageFile(taskId, index, access.caller);
  if (!found) {
    // Only a miss pays for telling a missing task from a missing image.
    if (!(await service.visibleTask(taskId, access.caller))) return sendDetail(res, 404, 'Task not found');
    return sendDetail(res, 404, `Image ${index} of this task does not exist (yet)`);
  }
  const missing = () => sendDetail(res, 404, `Image ${index} of this task is missing from storage`);
  const { image } = found;
  const rendering = resolveRendering(request, { format: formatOfContentType(image.content_type), width: image.width ?? undefined });
  let served: Served;
  try {
    if (rendering) {
      const key = variantKey(found.key, rendering);
      const made = await (options.variants ?? variantMakerFor(service.store)).ensure(found.key, key, rendering);
      if (!made) return missing();
      const contentType = FORMAT_INFO[rendering.format].contentType;
      // The original's ETag with the rendering in it: one per variant, the same on every replica.
      served = { key, size: made.size, etag: `"${image.prompt_id}-${renderingSuffix(rendering)}-${made.size}"`, contentType };
    } else {
      const stat = await service.store.stat(found.key);
      if (!stat) return missing();
      // From the prompt id and size, not the store's own ETag: the same on every replica and every store.
      served = { key: found.key, size: stat.size, etag: `"${image.prompt_id}-${stat.size}"`, contentType: image.content_type ?? 'application/octet-stream' };
    }
  } catch (err) {
    // A recorded path no store accepts as a key (a hand-edited row) cannot have been stored.
    if (isBadKey(err)) return missing();
    throw err;
  }
  const { size, etag } = served;
  const headers: Record<string, string | number> = {
    'content-type': served.contentType,
    etag,
    'cache-control': access.cacheControl,
    'accept-ranges': 'bytes',
  };
  if (etagMatches(req.headers['if-none-match'], etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const range = parseRange(req.headers.range, size);
  if (range === 'invalid') {
    res.writeHead(416, { 'content-range': `bytes */${size}`, 'content-type': 'application/json' });
    res.end(JSON.stringify({ detail: 'Range not satisfiable' }));
    return;
  }
  const [start, end] = range ?? [0, size - 1];
  let body: Readable | undefined;
  if (req.method !== 'HEAD') {
    // Opened before the head is sent, so an object deleted since the stat still gets its 404.
    body = await service.store.get(served.key, range ? { range: { start, end } } : {});
    if (!body) return missing();
  }
  res.writeHead(range ? 206 : 200, {
    ...headers,
    'content-length': end - start + 1,
    ...(range ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
  });
  if (!body) return void res.end();
  await pipeline(body, res);
}

function isBadKey(err: unknown): boolean {
  return err instanceof TypeError && err.message.startsWith('invalid storage key');
}

/** One `bytes=` range, clamped to the file; undefined for none or one we ignore (several ranges). */
function parseRange(header: string | undefined, size: number): [number, number] | 'invalid' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, a, b] = m;
  let start: number;
  let end: number;
  if (a === '') {
    if (b === '') return 'invalid';
    start = Math.max(0, size - Number(b));
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  }
  if (start > end || start >= size) return 'invalid';
  return [start, end];
}
