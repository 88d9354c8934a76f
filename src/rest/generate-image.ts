/**
 * `POST /generate-image` (multipart/form-data), the old service's entry point. The file streams
 * through the same upload sink as GraphQL; fields are checked by the same rules. Errors keep
 * FastAPI's shapes: 422 with a `detail` list, 413 and 415 with a readable `detail`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import busboy from 'busboy';
import type { Caller } from '../auth/caller.js';
import type { UrlSigner } from '../auth/url-signer.js';
import { checkGenerateParams, ValidationError, type RawGenerateParams } from '../tasks/generate-params.js';
import { QuotaExceededError } from '../tasks/quota-exceeded-error.js';
import { IdempotencyConflictError, type TaskService } from '../tasks/task-service.js';
import { UploadRejectedError } from '../uploads/upload-rejected-error.js';
import type { StoredUpload } from '../uploads/upload-sink.js';
import { refuse } from './authenticate.js';
import { sendDetail, sendFieldErrors, sendJson, type FieldError } from './respond.js';
import { taskStatusBody } from '../tasks/task-status-body.js';
import { baseUrlOf, signerFor } from './task-status.js';

/** The form fields, as the old service named them. */
const FIELDS = ['description', 'count', 'size', 'steps', 'guidance', 'seed', 'idempotencyKey'] as const;
const NUMERIC = new Set(['count', 'steps', 'guidance', 'seed']);
/** Form fields named apart from the parameter they carry (Replicate's names for the webhook filter). */
const RENAMED = { webhook: 'webhook', webhook_events_filter: 'webhookEvents' } as const;
/** The form field a parameter came from, for the 422's `loc`. */
const fieldOf = (param: string): string => Object.entries(RENAMED).find(([, p]) => p === param)?.[0] ?? param;
const FILE_FIELD = 'referenceImage';

/** Options of the route. */
export interface GenerateImageOptions {
  service: TaskService;
  maxFileSize: number;
  publicUrl: string | undefined;
  /** Who is asking: owner of the task and whose limits apply. */
  caller: Caller;
  /** Signs the image URLs of a caller with a key. @default undefined (unsigned) */
  signer?: UrlSigner;
}

/** The most a whole generate request may take: the image and room for the form fields around it. */
export function uploadBytes(maxFileSize: number): number {
  return maxFileSize + 256 * 1024;
}

/** 429 with Retry-After for a request over a limit (nothing of it is stored). */
function sendQuotaExceeded(req: IncomingMessage, res: ServerResponse, err: QuotaExceededError, maxDrain: number): void {
  refuse(req, res, 429, err.message, { 'retry-after': String(Math.max(1, Math.ceil(err.retryAfterSeconds))) }, maxDrain);
}

/** Handles the route for an authenticated `caller`; see the module comment. */
export async function handleGenerateImage(req: IncomingMessage, res: ServerResponse, options: GenerateImageOptions): Promise<void> {
  // A caller over a limit is refused before its upload is read: a refusal costs no disk.
  try {
    await options.service.checkLimits(options.caller);
  } catch (err) {
    if (err instanceof QuotaExceededError) return sendQuotaExceeded(req, res, err, uploadBytes(options.maxFileSize));
    throw err;
  }
  // The whole body may be the file plus a little: refuse larger bodies before reading them.
  const maxBody = options.maxFileSize + 1024 * 1024;
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > maxBody) {
    res.shouldKeepAlive = false;
    sendDetail(res, 413, `Request body of ${declared} bytes exceeds the limit of ${maxBody} bytes (MAX_FILE_SIZE is ${options.maxFileSize})`);
    req.resume();
    return;
  }
  if (!/^multipart\/form-data/i.test(req.headers['content-type'] ?? '')) {
    return sendFieldErrors(res, [{ loc: ['body', FILE_FIELD], msg: 'Field required (send multipart/form-data)', type: 'missing' }]);
  }

  const form: Form = { fields: {}, upload: undefined };
  try {
    await parseForm(req, form, options.service, options.maxFileSize, maxBody);
  } catch (err) {
    // A file stored before the form failed (a later part crossed the cap, the client left) has no task.
    if (form.upload) void form.upload.then((s) => options.service.discardUpload(s)).catch(() => undefined);
    res.shouldKeepAlive = false;
    if (err instanceof BodyTooLargeError) return sendDetail(res, 413, err.message);
    return sendDetail(res, 400, `Malformed multipart body: ${(err as Error).message}`);
  }

  let stored: StoredUpload | undefined;
  let rejected: UploadRejectedError | undefined;
  try {
    stored = await form.upload;
  } catch (err) {
    if (!(err instanceof UploadRejectedError)) throw err;
    rejected = err;
  }
  if (rejected?.reason === 'TOO_LARGE') return sendDetail(res, 413, rejected.message);
  if (rejected?.reason === 'UNSUPPORTED_TYPE') return sendDetail(res, 415, rejected.message);

  const raw: RawGenerateParams = {};
  for (const name of FIELDS) {
    const value = form.fields[name];
    if (value === undefined || value === '') continue;
    raw[name] = NUMERIC.has(name) && /^-?\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : value;
  }
  for (const [name, param] of Object.entries(RENAMED)) {
    const value = form.fields[name];
    if (value !== undefined && value !== '') raw[param] = value;
  }
  const idempotencyKey = req.headers['idempotency-key'];
  if (typeof idempotencyKey === 'string' && raw.idempotencyKey === undefined) raw.idempotencyKey = idempotencyKey;
  const checked = checkGenerateParams(raw);
  const errors: FieldError[] = 'errors' in checked ? checked.errors.map((e) => ({ loc: ['body', fieldOf(e.field)], msg: e.message, type: 'value_error' })) : [];
  if (rejected) errors.push({ loc: ['body', FILE_FIELD], msg: rejected.message, type: `upload_${rejected.reason.toLowerCase()}` });
  else if (!stored) errors.push({ loc: ['body', FILE_FIELD], msg: 'Field required', type: 'missing' });
  if (errors.length || 'errors' in checked || !stored) {
    if (stored) await options.service.discardUpload(stored);
    return sendFieldErrors(res, errors);
  }
  try {
    const view = await options.service.createTask(checked.params, stored, options.caller);
    sendJson(res, 200, taskStatusBody(view, baseUrlOf(req, options.publicUrl), signerFor(options.caller, options.signer)));
  } catch (err) {
    await options.service.discardUpload(stored);
    if (err instanceof IdempotencyConflictError) return sendDetail(res, 409, err.message);
    // The webhook target, refused by where it resolves (checked as the task is created).
    if (err instanceof ValidationError) return sendFieldErrors(res, [{ loc: ['body', fieldOf(err.field)], msg: err.message, type: 'value_error' }]);
    // Limits are checked again, exactly, as the task is stored: a request racing another can still be over.
    if (err instanceof QuotaExceededError) return sendQuotaExceeded(req, res, err, uploadBytes(options.maxFileSize));
    throw err;
  }
}

class BodyTooLargeError extends Error {}

/** What the form brought: the fields, and the reference image while it streams into the sink. */
interface Form {
  fields: Record<string, string>;
  upload: Promise<StoredUpload> | undefined;
}

/**
 * Streams the form into `form`: fields are collected, the reference image goes straight into the
 * upload sink. Rejects when the body is malformed, too large or cut off; busboy is then destroyed,
 * which fails the file part still streaming, so the sink deletes its part file.
 */
function parseForm(req: IncomingMessage, form: Form, service: TaskService, maxFileSize: number, maxBody: number): Promise<void> {
  return new Promise((resolve, reject) => {
    // busboy reports a file of exactly `fileSize` bytes as truncated: give it one byte more, the sink enforces the limit.
    const bb = busboy({ headers: req.headers, limits: { files: 1, fileSize: maxFileSize + 1, fields: 20, fieldSize: 64 * 1024, parts: 30 } });
    const fail = (err: Error): void => {
      req.unpipe(counter);
      req.resume();
      bb.destroy(err);
      reject(err);
    };
    bb.on('field', (name, value) => {
      form.fields[name] = value;
    });
    bb.on('file', (name, stream) => {
      // busboy destroys the part stream with its own error when the form fails; unheard, that error ends the process.
      stream.on('error', () => undefined);
      if (name !== FILE_FIELD || form.upload) {
        stream.resume();
        return;
      }
      form.upload = service.storeReference(stream);
      form.upload.catch(() => undefined); // awaited by the caller once the form is read
    });
    bb.on('close', () => resolve());
    bb.on('error', (err: Error) => reject(err));
    let seen = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done: TransformCallback) {
        seen += chunk.length;
        if (seen > maxBody) return done(new BodyTooLargeError(`Request body exceeds the limit of ${maxBody} bytes (MAX_FILE_SIZE is ${maxFileSize})`));
        done(null, chunk);
      },
    });
    counter.on('error', fail);
    req.on('error', fail);
    // A client that leaves mid-body (or is cut by BODY_TIMEOUT) ends neither busboy nor the file
    // part: without this the sink would wait for the rest forever, its part file open on disk.
    req.once('close', () => {
      if (!req.complete) fail(new Error('the client closed the connection before the body ended'));
    });
    req.pipe(counter).pipe(bb);
  });
}
