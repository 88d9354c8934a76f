/**
 * `POST /generate-image` (multipart/form-data), the old service's entry point. The file streams
 * through the same upload sink as GraphQL; fields are checked by the same rules. Errors keep
 * FastAPI's shapes: 422 with a `detail` list, 413 and 415 with a readable `detail`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import busboy from 'busboy';
import { checkGenerateParams, type RawGenerateParams } from '../tasks/generate-params.js';
import { IdempotencyConflictError, type TaskService } from '../tasks/task-service.js';
import { UploadRejectedError } from '../uploads/upload-rejected-error.js';
import type { StoredUpload } from '../uploads/upload-sink.js';
import { sendDetail, sendFieldErrors, sendJson, type FieldError } from './respond.js';
import { baseUrlOf, taskStatusBody } from './task-status.js';

/** The form fields, as the old service named them. */
const FIELDS = ['description', 'count', 'size', 'steps', 'guidance', 'seed', 'idempotencyKey'] as const;
const NUMERIC = new Set(['count', 'steps', 'guidance', 'seed']);
const FILE_FIELD = 'referenceImage';

/** Options of the route. */
export interface GenerateImageOptions {
  service: TaskService;
  maxFileSize: number;
  publicUrl: string | undefined;
}

export async function handleGenerateImage(req: IncomingMessage, res: ServerResponse, options: GenerateImageOptions): Promise<void> {
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

  let parsed: { fields: Record<string, string>; upload: Promise<StoredUpload> | undefined };
  try {
    parsed = await parseForm(req, options.service, options.maxFileSize, maxBody);
  } catch (err) {
    res.shouldKeepAlive = false;
    if (err instanceof BodyTooLargeError) return sendDetail(res, 413, err.message);
    return sendDetail(res, 400, `Malformed multipart body: ${(err as Error).message}`);
  }

  let stored: StoredUpload | undefined;
  let rejected: UploadRejectedError | undefined;
  try {
    stored = await parsed.upload;
  } catch (err) {
    if (!(err instanceof UploadRejectedError)) throw err;
    rejected = err;
  }
  if (rejected?.reason === 'TOO_LARGE') return sendDetail(res, 413, rejected.message);
  if (rejected?.reason === 'UNSUPPORTED_TYPE') return sendDetail(res, 415, rejected.message);

  const raw: RawGenerateParams = {};
  for (const name of FIELDS) {
    const value = parsed.fields[name];
    if (value === undefined || value === '') continue;
    raw[name] = NUMERIC.has(name) && /^-?\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : value;
  }
  const idempotencyKey = req.headers['idempotency-key'];
  if (typeof idempotencyKey === 'string' && raw.idempotencyKey === undefined) raw.idempotencyKey = idempotencyKey;
  const checked = checkGenerateParams(raw);
  const errors: FieldError[] = 'errors' in checked ? checked.errors.map((e) => ({ loc: ['body', e.field], msg: e.message, type: 'value_error' })) : [];
  if (rejected) errors.push({ loc: ['body', FILE_FIELD], msg: rejected.message, type: `upload_${rejected.reason.toLowerCase()}` });
  else if (!stored) errors.push({ loc: ['body', FILE_FIELD], msg: 'Field required', type: 'missing' });
  if (errors.length || 'errors' in checked || !stored) {
    if (stored) await options.service.discardUpload(stored);
    return sendFieldErrors(res, errors);
  }
  try {
    const view = await options.service.createTask(checked.params, stored);
    sendJson(res, 200, taskStatusBody(view, baseUrlOf(req, options.publicUrl)));
  } catch (err) {
    await options.service.discardUpload(stored);
    if (err instanceof IdempotencyConflictError) return sendDetail(res, 409, err.message);
    throw err;
  }
}

class BodyTooLargeError extends Error {}

/** Streams the form: fields are collected, the reference image goes straight into the upload sink. */
function parseForm(
  req: IncomingMessage,
  service: TaskService,
  maxFileSize: number,
  maxBody: number,
): Promise<{ fields: Record<string, string>; upload: Promise<StoredUpload> | undefined }> {
  return new Promise((resolve, reject) => {
    const fields: Record<string, string> = {};
    let upload: Promise<StoredUpload> | undefined;
    // busboy reports a file of exactly `fileSize` bytes as truncated: give it one byte more, the sink enforces the limit.
    const bb = busboy({ headers: req.headers, limits: { files: 1, fileSize: maxFileSize + 1, fields: 20, fieldSize: 64 * 1024, parts: 30 } });
    bb.on('field', (name, value) => {
      fields[name] = value;
    });
    bb.on('file', (name, stream) => {
      if (name !== FILE_FIELD || upload) {
        stream.resume();
        return;
      }
      upload = service.storeReference(stream);
      upload.catch(() => undefined); // awaited by the caller once the form is read
    });
    bb.on('close', () => resolve({ fields, upload }));
    bb.on('error', (err: Error) => reject(err));
    let seen = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done: TransformCallback) {
        seen += chunk.length;
        if (seen > maxBody) return done(new BodyTooLargeError(`Request body exceeds the limit of ${maxBody} bytes (MAX_FILE_SIZE is ${maxFileSize})`));
        done(null, chunk);
      },
    });
    counter.on('error', (err) => {
      req.unpipe(counter);
      req.resume();
      // Ends the file part with an error, so the upload sink cleans up instead of waiting for bytes.
      bb.destroy(err);
      reject(err);
    });
    req.on('error', reject);
    req.pipe(counter).pipe(bb);
  });
}
