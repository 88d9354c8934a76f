/**
 * The one place uploaded images land, shared by the GraphQL mutation (graphql-upload-minimal) and
 * the REST route (busboy). Bytes go to a temp file as they arrive, hashed and counted on the way, so
 * memory stays flat whatever the file size; the file is then checked (format by its bytes, intact
 * end, header dimensions) and stored under its SHA-256, so identical uploads share one file.
 *
 * The service uses {@link receiveUpload}: the checked file stays in a local temp folder and the
 * caller puts it into its BlobStore (local folder or S3); {@link storeUpload} keeps it in a folder.
 *
 * Any failure leaves nothing behind in `dir` and rejects with an {@link UploadRejectedError} (fs
 * errors are rethrown as they are, after the same cleanup). The source is never destroyed: a
 * busboy part stream that is destroyed stalls the parser and with it the HTTP request, so a
 * source we give up on is unpiped and drained instead.
 */
import { createHash, randomUUID } from 'node:crypto';
import { link, mkdir, open, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { FileEnds } from './file-ends.js';
import { StagedWrites } from './staged-writes.js';
import { checkStructure, readFrom, readImageHeader, SIGNATURE_BYTES, sniffImageFormat, TAIL_BYTES, type ImageFormat, type ImageHeader } from './image-format.js';
import { UploadRejectedError } from './upload-rejected-error.js';

/** What the bytes of an accepted upload proved to be. */
export interface CheckedUpload {
  /** Hex SHA-256 of the bytes. */
  sha256: string;
  /** `${sha256}.${ext}`, with ext `png`, `jpg` or `webp`. */
  fileName: string;
  /** Size of the file in bytes. */
  bytes: number;
  /** From the bytes, never from the name or the declared type. */
  contentType: 'image/png' | 'image/jpeg' | 'image/webp';
  /** As displayed, i.e. after the EXIF orientation is applied (what ComfyUI's LoadImage sees). */
  width: number;
  height: number;
}

/** An accepted upload still in its temp file (see {@link receiveUpload}). */
export interface ReceivedUpload extends CheckedUpload {
  /** Absolute path of the checked, synced temp file: the caller's to move into storage or remove. */
  path: string;
}

/** A stored upload. */
export interface StoredUpload extends CheckedUpload {
  /**
   * Where it is stored: the absolute path of the file (storeUpload), or its key in the service's
   * BlobStore, `uploads/<fileName>` (TaskService.storeReference).
   */
  path: string;
  /** False when identical content was already stored (the existing file is returned). */
  created: boolean;
}

/** Where to store uploads and what to accept. */
export interface StoreUploadOptions {
  /** Directory of the stored files; created when missing. A relative path resolves against the working directory. */
  dir: string;
  /** Largest accepted file, in bytes (the service passes MAX_FILE_SIZE, 10485760 by default). Required. */
  maxBytes: number;
  /** Largest accepted width x height (x frames, for an animated image), from the header, before any decoding (MAX_IMAGE_PIXELS). @default 16_777_216 */
  maxPixels?: number;
  /** Longest accepted side, in pixels. @default 16384 */
  maxSide?: number;
  /** Shortest accepted side, in pixels. @default 16 */
  minSide?: number;
}

/** The defaults of the optional {@link StoreUploadOptions}. */
export const DEFAULT_IMAGE_LIMITS = { maxPixels: 16_777_216, maxSide: 16_384, minSide: 16 } as const;

type Limits = Required<Omit<StoreUploadOptions, 'dir'>>;

/**
 * Streams `source` into `options.dir` and stores it as `${sha256}.${ext}` once it proved to be a
 * complete PNG, JPEG or WebP image within the limits. Rejects with {@link UploadRejectedError}
 * (see its `reason`), leaving nothing behind; `source` is then drained, never destroyed.
 */
export async function storeUpload(source: Readable, options: StoreUploadOptions): Promise<StoredUpload> {
  const received = await receiveUpload(source, options);
  const path = join(dirname(received.path), received.fileName);
  let created: boolean;
  try {
    created = await moveIntoPlace(received.path, path);
  } catch (err) {
    await rm(received.path, { force: true });
    throw err;
  }
  return { ...received, path, created };
}

/**
 * Streams `source` into a new temp file in `options.dir` and checks it as {@link storeUpload} does,
 * but leaves it there: the result's `path` is that file, for the caller to move into storage. Rejects
 * the same way, leaving nothing behind.
 */
export async function receiveUpload(source: Readable, options: StoreUploadOptions): Promise<ReceivedUpload> {
  // Heard at once: the source may fail while we await the directory and the file (a client that
  // left, a body cap), and an 'error' nobody listens to ends the process. `receive` sees it then as
  // a destroyed source.
  source.on('error', ignoreError);
  try {
    const limits = readLimits(options);
    const dir = resolve(options.dir);
    await mkdir(dir, { recursive: true });
    return await receiveAndCheck(source, dir, limits);
  } catch (err) {
    drain(source);
    throw err;
  }
}

async function receiveAndCheck(source: Readable, dir: string, limits: Limits): Promise<ReceivedUpload> {
  const partPath = join(dir, `.upload-${randomUUID()}.part`);
  const file = await open(partPath, 'wx+');
  let fileOpen = true;
  let headerRead: Promise<ImageHeader> | undefined;
  try {
    const { sha256, format, ends } = await receive(source, file, limits.maxBytes);
    const bytes = ends.size;
    const problem = await checkStructure(ends.reader(readFrom(file)), bytes, format);
    if (problem?.truncated) throw new UploadRejectedError('INCOMPLETE', `Image is incomplete: the file ${problem.detail}; the file is truncated`);
    if (problem) throw new UploadRejectedError('CORRUPT', `Image is corrupt: the file ${problem.detail}`);
    // Read while the file syncs (the sync does not change what it reads): under load each of them
    // waits its turn in the thread pool, and one after the other they made every upload wait twice.
    headerRead = readHeader(partPath, format);
    headerRead.catch(() => undefined); // awaited below, or in the cleanup
    // Durable before it gets its permanent name: a crash must not leave a short file under a hash.
    await file.datasync();
    fileOpen = false;
    await file.close();

    const header = await headerRead;
    checkDimensions(header, limits);
    return { sha256, path: partPath, fileName: `${sha256}.${format.ext}`, bytes, contentType: format.contentType, width: header.width, height: header.height };
  } catch (err) {
    // FileHandle.close waits for a write still in flight, and the header read is let finish, so
    // the rm below races neither.
    if (fileOpen) await file.close().catch(() => undefined);
    await headerRead?.catch(() => undefined);
    await rm(partPath, { force: true });
    throw err;
  }
}

interface Received {
  sha256: string;
  format: ImageFormat;
  /** The bytes' count, first and last bytes. */
  ends: FileEnds;
}

/**
 * Writes `source` into `file`, counting, hashing and sniffing on the way; settles when the source
 * ended (and every byte is written), or as soon as the upload is hopeless, and then drains the source.
 */
function receive(source: Readable, file: FileHandle, maxBytes: number): Promise<Received> {
  return new Promise<Received>((resolvePromise, reject) => {
    const hash = createHash('sha256');
    const ends = new FileEnds(SIGNATURE_BYTES, TAIL_BYTES);
    const staged = new StagedWrites(file);
    let format: ImageFormat | undefined;
    let settled = false;

    const stop = (err: Error): void => {
      if (settled) return;
      settled = true;
      source.unpipe(sink);
      drain(source);
      void staged.abandon();
      reject(err);
    };

    const take = (chunk: Buffer): UploadRejectedError | undefined => {
      ends.push(chunk);
      if (ends.size > maxBytes) return tooLarge(maxBytes);
      if (!format) {
        const sniffed = sniffImageFormat(ends.head);
        if (!sniffed) {
          const start = [...ends.head.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
          return new UploadRejectedError('UNSUPPORTED_TYPE', `File is not a PNG, JPEG or WebP image (it starts with ${start})`);
        }
        if (sniffed.complete) format = sniffed.format;
      }
      hash.update(chunk);
      return undefined;
    };

    const finish = (): void => {
      if (isTruncated(source)) return stop(tooLarge(maxBytes));
      if (ends.size === 0) return stop(new UploadRejectedError('EMPTY', 'File is empty'));
      if (!format) {
        const label = sniffImageFormat(ends.head)?.format.label ?? 'image';
        return stop(new UploadRejectedError('INCOMPLETE', `Image is incomplete: the file ends after ${ends.size} bytes, inside the ${label} signature; the file is truncated`));
      }
      settled = true;
      resolvePromise({ sha256: hash.digest('hex'), format, ends });
    };

    // Each chunk is copied into a staging buffer as it arrives and written with others in one
    // write while the next buffer fills (staged-writes.ts): the socket keeps flowing, and its chunk
    // is free at once. The source pauses only while both buffers are busy.
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        if (settled) return done();
        const rejection = take(chunk);
        if (rejection) {
          stop(rejection);
          return done();
        }
        staged.append(chunk).then(() => done(), done);
      },
      final(done) {
        if (settled) return done();
        staged.end().then(() => {
          if (!settled) finish();
          done();
        }, done);
      },
    });
    sink.on('error', stop);

    // Stays after we settle: a source we drain may still fail, and an 'error' nobody listens to
    // would take the process down.
    source.on('error', (err) => stop(new UploadRejectedError('INCOMPLETE', `Upload did not complete: ${err.message}`, { cause: err })));
    // busboy's way to say it cut the file at its `limits.fileSize`; the part stream still ends normally.
    source.once('limit', () => stop(tooLarge(maxBytes)));
    // destroy() without an error (e.g. graphql-upload-minimal on a client disconnect) emits only 'close'.
    source.once('close', () => {
      if (!source.readableEnded) stop(new UploadRejectedError('INCOMPLETE', 'Upload did not complete: the stream closed before its end'));
    });

    if (isTruncated(source)) return stop(tooLarge(maxBytes));
    if (source.destroyed && !source.readableEnded) {
      return stop(new UploadRejectedError('INCOMPLETE', 'Upload did not complete: the stream was already closed'));
    }
    source.pipe(sink);
  });
}

async function readHeader(path: string, format: ImageFormat): Promise<ImageHeader> {
  let header: ImageHeader;
  try {
    header = await readImageHeader(path);
  } catch (err) {
    // sharp's message may name the temp file's path; keep it for logs only.
    throw new UploadRejectedError('CORRUPT', `Image is corrupt: its ${format.label} header cannot be read`, { cause: err });
  }
  if (header.format !== format.name) {
    throw new UploadRejectedError('CORRUPT', `Image is corrupt: it starts like a ${format.label} but decodes as ${header.format}`);
  }
  return header;
}

function checkDimensions({ width, height, frames }: ImageHeader, limits: Limits): void {
  const size = `${width}x${height}${frames > 1 ? ` with ${frames} frames` : ''}`;
  const pixels = width * height * frames;
  if (pixels > limits.maxPixels) {
    throw new UploadRejectedError('TOO_MANY_PIXELS', `Image is ${size} (${pixels} pixels); the limit is ${limits.maxPixels} pixels (MAX_IMAGE_PIXELS)`);
  }
  if (Math.max(width, height) > limits.maxSide) {
    throw new UploadRejectedError('TOO_MANY_PIXELS', `Image is ${size}; the longest side allowed is ${limits.maxSide} pixels`);
  }
  if (Math.min(width, height) < limits.minSide) {
    throw new UploadRejectedError('TOO_MANY_PIXELS', `Image is ${size}; each side must be at least ${limits.minSide} pixels`);
  }
}

// Errors from link(2) on filesystems without hard links (FAT, some network and FUSE mounts).
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/**
 * Gives the finished temp file its content address; false when that address already exists. link(2)
 * never replaces an existing file, unlike rename(2), so of two identical uploads finishing at once
 * exactly one reports `created`.
 */
async function moveIntoPlace(partPath: string, path: string): Promise<boolean> {
  try {
    await link(partPath, path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST') {
      await unlink(partPath);
      return false;
    }
    if (!NO_HARD_LINKS.has(code)) throw err;
    // Still atomic and the content is the same, but two racing uploads may both report `created`.
    if (await exists(path)) {
      await unlink(partPath);
      return false;
    }
    await rename(partPath, path);
    return true;
  }
  await unlink(partPath);
  return true;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function ignoreError(): void {}

/** Lets the rest of `source` flow into nothing, so whoever feeds it (busboy, the HTTP request) can finish. */
function drain(source: Readable): void {
  if (source.listenerCount('error') === 0) source.on('error', ignoreError);
  if (!source.destroyed) source.resume();
}

/** busboy sets `truncated` on a part stream it cut at `limits.fileSize`. */
function isTruncated(source: Readable): boolean {
  return (source as Readable & { truncated?: unknown }).truncated === true;
}

function tooLarge(maxBytes: number): UploadRejectedError {
  return new UploadRejectedError('TOO_LARGE', `File exceeds the ${maxBytes}-byte limit (MAX_FILE_SIZE)`);
}

function readLimits(options: StoreUploadOptions): Limits {
  const limits: Limits = {
    maxBytes: options.maxBytes,
    maxPixels: options.maxPixels ?? DEFAULT_IMAGE_LIMITS.maxPixels,
    maxSide: options.maxSide ?? DEFAULT_IMAGE_LIMITS.maxSide,
    minSide: options.minSide ?? DEFAULT_IMAGE_LIMITS.minSide,
  };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`storeUpload: ${name} must be a positive integer, got ${String(value)}`);
  }
  if (limits.minSide > limits.maxSide) throw new RangeError(`storeUpload: minSide (${limits.minSide}) is larger than maxSide (${limits.maxSide})`);
  return limits;
}
