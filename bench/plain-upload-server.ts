/**
 * The upload benchmark's baselines, each a plain `node:http` server run as its own process
 * (`node --import tsx bench/plain-upload-server.ts <dir> checked|bare`), printing its URL:
 * - `checked`: the same multipart body parsed by busboy (the parser the REST route uses), the file
 *   part piped through the checks the service must make (size limit, type sniff of the first bytes,
 *   SHA-256 of every byte) into a new file, fdatasync'ed before the reply; 413/415 as the service.
 * - `bare`: the whole request body piped into a file, nothing else (no parsing, hash or fsync).
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import { SIGNATURE_BYTES, sniffImageFormat } from '../src/uploads/image-format.js';

/** The service's default MAX_FILE_SIZE. */
const MAX_BYTES = 10 * 1024 * 1024;

class Refused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Counts, sniffs and hashes the bytes passing through; fails with a 413 or 415 as the service would. */
function checker(): Transform & { sha256(): string } {
  const hash = createHash('sha256');
  let bytes = 0;
  let head: Buffer | undefined = Buffer.alloc(0);
  const t = new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      bytes += chunk.length;
      if (bytes > MAX_BYTES) return done(new Refused(413, `File exceeds the ${MAX_BYTES}-byte limit`));
      if (head) {
        head = Buffer.concat([head, chunk.subarray(0, SIGNATURE_BYTES - head.length)]);
        const sniffed = sniffImageFormat(head);
        if (!sniffed) return done(new Refused(415, 'not a PNG, JPEG or WebP image'));
        if (sniffed.complete) head = undefined;
      }
      hash.update(chunk);
      done(null, chunk);
    },
  });
  return Object.assign(t, { sha256: () => hash.digest('hex') });
}

let n = 0;

async function receiveChecked(req: IncomingMessage, dir: string): Promise<string> {
  const bb = busboy({ headers: req.headers, limits: { files: 1, fileSize: MAX_BYTES + 1 } });
  let stored: Promise<string> | undefined;
  bb.on('file', (_name, stream) => {
    const path = join(dir, `checked-${n++}`);
    const check = checker();
    // flush: the file is fsync'ed before it closes, and the pipeline settles only then.
    stored = pipeline(stream, check, createWriteStream(path, { flags: 'wx', flush: true })).then(
      () => check.sha256(),
      async (err: unknown) => {
        stream.resume();
        await rm(path, { force: true });
        throw err;
      },
    );
    stored.catch(() => undefined);
  });
  await pipeline(req, bb);
  if (!stored) throw new Refused(422, 'no file');
  return stored;
}

function handleChecked(dir: string, req: IncomingMessage, res: ServerResponse): void {
  receiveChecked(req, dir).then(
    (sha256) => res.end(JSON.stringify({ sha256 })),
    (err: Error) => {
      res.statusCode = err instanceof Refused ? err.status : 400;
      res.end(JSON.stringify({ detail: err.message }));
    },
  );
}

function handleBare(dir: string, req: IncomingMessage, res: ServerResponse): void {
  req.pipe(createWriteStream(join(dir, `bare-${n++}`))).on('finish', () => res.end('{}'));
}

const [dir, mode] = process.argv.slice(2);
if (!dir || (mode !== 'checked' && mode !== 'bare')) throw new Error('usage: plain-upload-server.ts <dir> checked|bare');
const handle = mode === 'checked' ? handleChecked : handleBare;
const server = createServer((req, res) => handle(dir, req, res));
// Exits through 'exit' handlers (bench/cpu-profile-preload.mjs writes its profile there).
process.once('SIGTERM', () => process.exit(0));
server.listen(0, '127.0.0.1', () => console.log(`plain listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`));
