import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { Readable } from 'node:stream';
import busboy from 'busboy';
import sharp from 'sharp';
import { Client } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeImage, pngChunk, pngClaiming, PNG_SIGNATURE } from './helpers/images.js';
import { UploadRejectedError, type UploadRejectReason } from '../src/uploads/upload-rejected-error.js';
import { storeUpload, type StoredUpload } from '../src/uploads/upload-sink.js';

const MiB = 1024 * 1024;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'upload-sink-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Fixtures, made here rather than committed

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function inChunks(bytes: Buffer, size: number): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  return Readable.from(chunks);
}

/**
 * A source that starts with `prefix` and keeps producing until `total` bytes, like a client
 * sending a huge body; it stops after `pauseAfter` bytes until `release()` is called, so a test can
 * look at the world before the rest is drained.
 */
function endlessSource(prefix: Buffer, total: number, pauseAfter: number) {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const state = { produced: 0, completed: false };
  const first = Buffer.alloc(64 * 1024, 0x41);
  prefix.copy(first);
  const rest = Buffer.alloc(64 * 1024, 0x41);
  async function* produce() {
    while (state.produced < total) {
      if (state.produced >= pauseAfter) await gate;
      yield state.produced === 0 ? first : rest;
      state.produced += first.length;
    }
    state.completed = true;
  }
  const source = Readable.from(produce());
  const ended = once(source, 'end');
  return { source, state, release, ended };
}

async function rejection(promise: Promise<unknown>, reason: UploadRejectReason): Promise<UploadRejectedError> {
  const err = await promise.then(
    () => {
      throw new Error(`expected the upload to be rejected with ${reason}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UploadRejectedError);
  expect((err as UploadRejectedError).reason).toBe(reason);
  return err as UploadRejectedError;
}

const leftovers = () => readdir(dir);

// ---------------------------------------------------------------------------------------------

// A regression here tends to hang rather than fail, so fail fast.
const fast = { timeout: 5_000 };

describe('storeUpload: accepted images', fast, () => {
  it.each([
    ['png', 'image/png', 'png'],
    ['jpeg', 'image/jpeg', 'jpg'],
    ['webp', 'image/webp', 'webp'],
  ] as const)('stores a %s under its SHA-256 with its size, type and dimensions', async (format, contentType, ext) => {
    const bytes = await makeImage(format, 64, 48);
    const stored = await storeUpload(inChunks(bytes, 7), { dir, maxBytes: MiB });

    const hash = sha256(bytes);
    expect(stored).toEqual({
      sha256: hash,
      path: join(dir, `${hash}.${ext}`),
      fileName: `${hash}.${ext}`,
      bytes: bytes.length,
      contentType,
      width: 64,
      height: 48,
      created: true,
    } satisfies StoredUpload);
    expect(isAbsolute(stored.path)).toBe(true);
    expect(await readFile(stored.path)).toEqual(bytes);
    expect(await leftovers()).toEqual([stored.fileName]);
  });

  it('sniffs the format one byte at a time', async () => {
    const bytes = await makeImage('webp');
    const stored = await storeUpload(inChunks(bytes, 1), { dir, maxBytes: MiB });
    expect(stored.contentType).toBe('image/webp');
  });

  it('keeps one file for identical content, and says so the second time', async () => {
    const bytes = await makeImage('png');
    const first = await storeUpload(Readable.from([bytes]), { dir, maxBytes: MiB });
    const second = await storeUpload(Readable.from([bytes]), { dir, maxBytes: MiB });
    expect(first.created).toBe(true);
    expect(second).toEqual({ ...first, created: false });
    expect(await leftovers()).toEqual([first.fileName]);
  });

  it('lets exactly one of two identical concurrent uploads create the file', async () => {
    const bytes = await makeImage('jpeg');
    const results = await Promise.all([1, 2, 3].map(() => storeUpload(inChunks(bytes, 100), { dir, maxBytes: MiB })));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(await leftovers()).toEqual([results[0]!.fileName]);
  });

  it('creates the directory when it is missing', async () => {
    const nested = join(dir, 'a', 'b');
    const stored = await storeUpload(Readable.from([await makeImage('png')]), { dir: nested, maxBytes: MiB });
    expect(await readdir(nested)).toEqual([stored.fileName]);
  });

  it('reports the dimensions as displayed, after the EXIF orientation', async () => {
    const bytes = await sharp({ create: { width: 64, height: 32, channels: 3, background: '#123456' } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const stored = await storeUpload(Readable.from([bytes]), { dir, maxBytes: MiB });
    expect([stored.width, stored.height]).toEqual([32, 64]);
  });

  it('accepts a JPEG padded with zero bytes after its end marker', async () => {
    const bytes = Buffer.concat([await makeImage('jpeg'), Buffer.alloc(5000)]);
    const stored = await storeUpload(Readable.from([bytes]), { dir, maxBytes: MiB });
    expect(stored.bytes).toBe(bytes.length);
  });

  it('finds the end marker of a JPEG padded with more zero bytes than the sink keeps in memory', async () => {
    // In small chunks, so only the last few KiB are in memory and the marker is read from the file.
    const bytes = Buffer.concat([await makeImage('jpeg'), Buffer.alloc(20_000)]);
    const stored = await storeUpload(inChunks(bytes, 1000), { dir, maxBytes: MiB });
    expect(stored.bytes).toBe(bytes.length);
  });
});

describe('storeUpload: rejected uploads leave nothing behind', fast, () => {
  afterEach(async () => {
    expect(await leftovers()).toEqual([]);
  });

  it('rejects an empty file', async () => {
    const err = await rejection(storeUpload(Readable.from([]), { dir, maxBytes: MiB }), 'EMPTY');
    expect(err.message).toBe('File is empty');
  });

  it('rejects text as soon as its first bytes arrive (a name like photo.png never matters)', async () => {
    const { source, state, release, ended } = endlessSource(Buffer.from('hello, this is not an image\n'), 20 * MiB, 2 * MiB);
    const err = await rejection(storeUpload(source, { dir, maxBytes: 100 * MiB }), 'UNSUPPORTED_TYPE');
    expect(err.message).toBe('File is not a PNG, JPEG or WebP image (it starts with 68 65 6c 6c)');
    expect(state.produced).toBeLessThanOrEqual(2 * MiB);
    release();
    await ended;
    expect(state.completed).toBe(true);
  });

  it('rejects an oversized upload at the limit, then drains the source instead of destroying it', async () => {
    const { source, state, release, ended } = endlessSource(PNG_SIGNATURE, 20 * MiB, 2 * MiB);
    let errored = false;
    source.on('error', () => (errored = true));

    const err = await rejection(storeUpload(source, { dir, maxBytes: MiB }), 'TOO_LARGE');
    expect(err.message).toBe(`File exceeds the ${MiB}-byte limit (MAX_FILE_SIZE)`);
    // Rejected while the client was still sending, with the temp file already gone.
    expect(state.produced).toBeLessThanOrEqual(2 * MiB);
    expect(source.destroyed).toBe(false);
    expect(await leftovers()).toEqual([]);

    release();
    await ended;
    expect(state).toEqual({ produced: 20 * MiB, completed: true });
    expect(errored).toBe(false);
  });

  it.each(['png', 'jpeg', 'webp'] as const)('rejects a truncated %s as INCOMPLETE', async (format) => {
    const bytes = await makeImage(format, 256, 256);
    const cut = bytes.subarray(0, Math.floor(bytes.length * 0.6));
    const err = await rejection(storeUpload(Readable.from([cut]), { dir, maxBytes: MiB }), 'INCOMPLETE');
    expect(err.message).toMatch(/the file is truncated$/);
  });

  it('rejects a JPEG whose zero padding, longer than what the sink keeps in memory, follows no end marker', async () => {
    const jpeg = await makeImage('jpeg', 256, 256);
    const bytes = Buffer.concat([jpeg.subarray(0, jpeg.length - 2), Buffer.alloc(20_000)]);
    const err = await rejection(storeUpload(inChunks(bytes, 1000), { dir, maxBytes: MiB }), 'INCOMPLETE');
    expect(err.message).toMatch(/end-of-image marker/);
  });

  it('rejects a file that ends inside the signature as INCOMPLETE', async () => {
    const err = await rejection(storeUpload(Readable.from([PNG_SIGNATURE.subarray(0, 5)]), { dir, maxBytes: MiB }), 'INCOMPLETE');
    expect(err.message).toBe('Image is incomplete: the file ends after 5 bytes, inside the PNG signature; the file is truncated');
  });

  it('rejects a complete-looking PNG whose header is garbage as CORRUPT, without leaking the temp path', async () => {
    const garbage = Buffer.concat([PNG_SIGNATURE, Buffer.alloc(200, 0x5a), pngChunk('IEND', Buffer.alloc(0))]);
    const err = await rejection(storeUpload(Readable.from([garbage]), { dir, maxBytes: MiB }), 'CORRUPT');
    expect(err.message).toBe('Image is corrupt: its PNG header cannot be read');
    expect(err.message).not.toContain(dir);
  });

  it('rejects a WebP with bytes after its RIFF container as CORRUPT', async () => {
    const bytes = Buffer.concat([await makeImage('webp'), Buffer.from('trailer')]);
    const err = await rejection(storeUpload(Readable.from([bytes]), { dir, maxBytes: MiB }), 'CORRUPT');
    expect(err.message).toBe('Image is corrupt: the file has 7 bytes after the end of its RIFF container');
  });

  it('rejects a PNG claiming 100000x100000 from its header alone', async () => {
    const bomb = pngClaiming(100_000, 100_000);
    expect(bomb.length).toBeLessThan(200);
    const err = await rejection(storeUpload(Readable.from([bomb]), { dir, maxBytes: MiB }), 'TOO_MANY_PIXELS');
    expect(err.message).toBe('Image is 100000x100000 (10000000000 pixels); the limit is 16777216 pixels (MAX_IMAGE_PIXELS)');
  });

  it('rejects a side longer than maxSide even under the pixel limit', async () => {
    const err = await rejection(storeUpload(Readable.from([pngClaiming(20_000, 100)]), { dir, maxBytes: MiB }), 'TOO_MANY_PIXELS');
    expect(err.message).toBe('Image is 20000x100; the longest side allowed is 16384 pixels');
  });

  it('rejects an image with a side shorter than minSide', async () => {
    const err = await rejection(storeUpload(Readable.from([await makeImage('png', 8, 100)]), { dir, maxBytes: MiB }), 'TOO_MANY_PIXELS');
    expect(err.message).toBe('Image is 8x100; each side must be at least 16 pixels');
  });

  it('counts every frame of an animated image', async () => {
    // Distinct frames: libwebp merges identical ones.
    const frames = await Promise.all(['#f00', '#0f0', '#00f'].map((background) =>
      sharp({ create: { width: 64, height: 64, channels: 3, background } }).png().toBuffer(),
    ));
    const animated = await sharp(frames, { join: { animated: true } }).webp().toBuffer();
    const err = await rejection(storeUpload(Readable.from([animated]), { dir, maxBytes: MiB, maxPixels: 64 * 64 * 2 }), 'TOO_MANY_PIXELS');
    expect(err.message).toBe('Image is 64x64 with 3 frames (12288 pixels); the limit is 8192 pixels (MAX_IMAGE_PIXELS)');
  });

  it('rejects a source that fails midway (a client disconnect) as INCOMPLETE', async () => {
    const bytes = await makeImage('png', 256, 256);
    async function* disconnecting() {
      yield bytes.subarray(0, 100);
      await new Promise((r) => setTimeout(r, 5));
      throw new Error('aborted');
    }
    const err = await rejection(storeUpload(Readable.from(disconnecting()), { dir, maxBytes: MiB }), 'INCOMPLETE');
    expect(err.message).toBe('Upload did not complete: aborted');
  });

  it('rejects a source that fails before the sink opened its file as INCOMPLETE, without an unhandled error', async () => {
    // busboy does this to a part stream when the body cap trips or the client leaves, at any moment.
    const source = new Readable({ read() {} });
    const stored = storeUpload(source, { dir, maxBytes: MiB });
    source.destroy(new Error('the client left'));
    await rejection(stored, 'INCOMPLETE');
    expect(await leftovers()).toEqual([]);
  });

  it('rejects a source destroyed without an error as INCOMPLETE', async () => {
    const source = new Readable({ read() {} });
    source.push(PNG_SIGNATURE);
    setTimeout(() => source.destroy(), 5);
    await rejection(storeUpload(source, { dir, maxBytes: MiB }), 'INCOMPLETE');
  });

  it("takes busboy's 'limit' event as TOO_LARGE", async () => {
    const source = new Readable({ read() {} });
    source.push(PNG_SIGNATURE);
    // As with busboy, 'limit' comes once the data flows, i.e. once the sink reads (never before it listens).
    // A 'resume' listener, unlike a 'data' listener, does not start the flow itself.
    source.once('resume', () => source.emit('limit'));
    const ended = once(source, 'end');
    await rejection(storeUpload(source, { dir, maxBytes: MiB }), 'TOO_LARGE');
    source.push(Buffer.alloc(1000));
    source.push(null);
    await ended;
  });

  it("takes busboy's truncated flag as TOO_LARGE when the 'limit' event came before us", async () => {
    const source = Object.assign(Readable.from([PNG_SIGNATURE]), { truncated: true });
    const ended = once(source, 'end');
    await rejection(storeUpload(source, { dir, maxBytes: MiB }), 'TOO_LARGE');
    await ended;
  });

  it('refuses invalid options but still drains the source', async () => {
    const source = Readable.from([PNG_SIGNATURE]);
    const ended = once(source, 'end');
    await expect(storeUpload(source, { dir, maxBytes: 0 })).rejects.toThrow('storeUpload: maxBytes must be a positive integer, got 0');
    await ended;
  });
});

// ---------------------------------------------------------------------------------------------

function multipart(boundary: string, fileName: string, content: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="${fileName}"\r\nContent-Type: image/png\r\n\r\n`,
    ),
    content,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
}

describe('storeUpload behind busboy on a real HTTP server', fast, () => {
  const maxBytes = 256 * 1024;
  const boundary = 'kontext-test-boundary';
  let server: Server;
  let client: Client;
  const connectionIds = new WeakMap<Socket, number>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'x-connection': String(connectionIds.get(req.socket)) });
      res.end(JSON.stringify(body));
    };
    // busboy flags a file of exactly `fileSize` bytes as truncated, so it gets one byte of slack
    // and the sink enforces the real limit.
    const bb = busboy({ headers: req.headers, limits: { files: 1, fileSize: maxBytes + 1 } });
    let stored: Promise<StoredUpload> | undefined;
    bb.on('file', (_field, stream) => {
      stored = storeUpload(stream, { dir, maxBytes });
      stored.catch(() => undefined); // handled once busboy is done
    });
    bb.on('error', (err: Error) => send(400, { message: err.message }));
    // 'close' comes only after the file stream ended, i.e. after the sink drained it.
    bb.on('close', () => {
      if (!stored) return send(400, { message: 'no file' });
      stored.then(
        (s) => send(200, s),
        (err: unknown) => {
          if (!(err instanceof UploadRejectedError)) return send(500, { message: String(err) });
          send(err.reason === 'TOO_LARGE' ? 413 : 422, { reason: err.reason, message: err.message });
        },
      );
    });
    req.pipe(bb);
  }

  beforeAll(async () => {
    let next = 0;
    server = createServer((req, res) => void handle(req, res));
    server.on('connection', (socket) => connectionIds.set(socket, ++next));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    // One connection, so consecutive requests share it; short timeouts turn a hang into a failure.
    client = new Client(`http://127.0.0.1:${port}`, { pipelining: 1, headersTimeout: 5_000, bodyTimeout: 5_000 });
  });
  afterAll(async () => {
    await client.close();
    server.close();
  });

  async function post(content: Buffer, fileName = 'photo.png') {
    const res = await client.request({
      method: 'POST',
      path: '/generate-image',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: multipart(boundary, fileName, content),
    });
    return { status: res.statusCode, connection: res.headers['x-connection'], body: (await res.body.json()) as Record<string, unknown> };
  }

  it('stores a valid upload, rejects an oversized one and keeps the connection usable', async () => {
    const png = await makeImage('png');
    const ok = await post(png);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ sha256: sha256(png), contentType: 'image/png', created: true });

    const huge = Buffer.concat([PNG_SIGNATURE, Buffer.alloc(3 * MiB, 0x41)]);
    const tooLarge = await post(huge);
    expect(tooLarge).toMatchObject({ status: 413, body: { reason: 'TOO_LARGE', message: `File exceeds the ${maxBytes}-byte limit (MAX_FILE_SIZE)` } });
    expect(await leftovers()).toEqual([`${sha256(png)}.png`]);

    const text = await post(Buffer.from('GIF89a? no: plain text named photo.png'));
    expect(text).toMatchObject({ status: 422, body: { reason: 'UNSUPPORTED_TYPE' } });

    const again = await post(await makeImage('jpeg'), 'photo.jpg');
    expect(again.status).toBe(200);
    expect(new Set([ok.connection, tooLarge.connection, text.connection, again.connection]).size).toBe(1);
    expect(await leftovers()).toHaveLength(2);
  });

  it('accepts a file of exactly maxBytes', async () => {
    const png = await makeImage('png');
    // Pad inside the PNG with an ancillary chunk so the file stays valid at exactly maxBytes.
    const pad = maxBytes - png.length - 12;
    const iendAt = png.length - 12;
    const exact = Buffer.concat([png.subarray(0, iendAt), pngChunk('zzPd', Buffer.alloc(pad)), png.subarray(iendAt)]);
    expect(exact.length).toBe(maxBytes);
    const res = await post(exact);
    expect(res).toMatchObject({ status: 200, body: { bytes: maxBytes } });
  });
});
