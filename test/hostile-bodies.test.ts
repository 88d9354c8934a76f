/**
 * Hostile and broken request bodies against the real service (issue 9, items 2, 3 and 10): a chunked
 * form whose unwanted file part crosses the body cap, uploads the client abandons mid-body (REST and
 * GraphQL multipart), a body that trickles, and JSON bodies over their own limit. Raw sockets, so the
 * test controls exactly which bytes arrive and when the connection is cut.
 */
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { basename, join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JSON_BODY_LIMIT } from '../src/graphql/use-body-limits.js';
import { CSRF, GENERATE, multipartBytes } from './helpers/graphql.js';
import { makeImage } from './helpers/images.js';
import { startStack, until, type Stack } from './helpers/stack.js';

const KiB = 1024;
const MAX_FILE_SIZE = 512 * KiB;
const BODY_TIMEOUT_S = 2;

let stack: Stack;
let port: number;
beforeAll(async () => {
  stack = await startStack({ config: { maxFileSize: MAX_FILE_SIZE, bodyTimeoutS: BODY_TIMEOUT_S } });
  port = Number(new URL(stack.app.url).port);
});
afterAll(async () => {
  await stack.close();
});

// ---------------------------------------------------------------------------------------------
// Raw HTTP over a socket

interface RawResponse {
  status: number;
  headers: string;
  body: string;
}

/** Opens a connection and sends the request head; `response` settles when the server closes the connection. */
async function openRequest(method: string, path: string, headers: Record<string, string | number>): Promise<{ socket: Socket; response: Promise<RawResponse> }> {
  const socket = connect(port, '127.0.0.1');
  // The server may answer and close while we still write: EPIPE/ECONNRESET are expected then.
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const response = new Promise<RawResponse>((resolve) => {
    socket.once('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const head = split < 0 ? text : text.slice(0, split);
      let body = split < 0 ? '' : text.slice(split + 4);
      if (/^transfer-encoding: chunked/im.test(head)) body = unchunk(body);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), headers: head, body });
    });
  });
  const lines = [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Connection: close', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  return { socket, response };
}

function unchunk(body: string): string {
  let out = '';
  for (let at = 0; ; ) {
    const eol = body.indexOf('\r\n', at);
    if (eol < 0) return out;
    const size = parseInt(body.slice(at, eol), 16);
    if (!size) return out;
    out += body.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

/** One HTTP/1.1 chunk. */
const chunk = (bytes: Buffer): Buffer => Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]);
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/** Writes `bytes` in chunks of 16 KiB, waiting for the socket to drain (stops quietly once the server closed it). */
async function writeAll(socket: Socket, bytes: Buffer, chunked: boolean): Promise<void> {
  for (let at = 0; at < bytes.length && !socket.destroyed; at += 16 * KiB) {
    const part = bytes.subarray(at, at + 16 * KiB);
    if (!socket.write(chunked ? chunk(part) : part)) await Promise.race([once(socket, 'drain'), once(socket, 'close')]);
  }
}

/** A multipart/form-data body with the given parts, as a browser would send it. */
function formBody(boundary: string, parts: { name: string; file?: string; content: Buffer }[]): Buffer {
  return Buffer.concat([
    ...parts.flatMap((p) => [
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.file ? `; filename="${p.file}"\r\nContent-Type: image/png` : ''}\r\n\r\n`,
      ),
      p.content,
      Buffer.from('\r\n'),
    ]),
    Buffer.from(`--${boundary}--\r\n`),
  ]);
}

// Uploads are received in the replica's temp folder below DATA_DIR/tmp, then moved into the store.
const tmpDir = () => join(stack.config.dataDir, 'tmp');
const partFiles = async () =>
  (await readdir(tmpDir(), { recursive: true }).catch(() => [] as string[])).filter((n) => basename(n).startsWith('.upload-'));
const openFds = async () => (await readdir('/proc/self/fd')).length;

/** A PNG start followed by filler: accepted by the sink while it streams, so a part file exists. */
async function pngOfSize(bytes: number): Promise<Buffer> {
  const png = await makeImage('png', 64, 64);
  return Buffer.concat([png.subarray(0, png.length - 12), Buffer.alloc(bytes - png.length, 0x41)]);
}

// ---------------------------------------------------------------------------------------------

describe('POST /generate-image survives a chunked body whose unwanted file part crosses the cap', () => {
  it('answers 413 with a detail naming the limit, and keeps answering', async () => {
    const boundary = 'hostile-boundary';
    const body = formBody(boundary, [
      { name: 'description', content: Buffer.from('make it night') },
      { name: 'notTheReference', file: 'big.png', content: Buffer.alloc(MAX_FILE_SIZE + 2 * 1024 * KiB, 0x41) },
    ]);
    const { socket, response } = await openRequest('POST', '/generate-image', {
      'Content-Type': `multipart/form-data; boundary=${boundary}`,
      'Transfer-Encoding': 'chunked',
    });
    await writeAll(socket, body, true);
    if (!socket.destroyed) socket.end(LAST_CHUNK);
    const res = await response;
    expect(res.status).toBe(413);
    const maxBody = MAX_FILE_SIZE + 1024 * KiB;
    expect(JSON.parse(res.body)).toEqual({ detail: `Request body exceeds the limit of ${maxBody} bytes (MAX_FILE_SIZE is ${MAX_FILE_SIZE})` });
    expect((await fetch(`${stack.app.url}/health`)).status).toBe(200);
  });
});

describe('an upload the client abandons leaves no part file and no open file behind', () => {
  /** Sends 95% of `body`, waits until the upload is being written to a part file, then cuts the connection. */
  async function abandon(path: string, headers: Record<string, string | number>, body: Buffer): Promise<void> {
    const { socket } = await openRequest('POST', path, { ...headers, 'Content-Length': body.length });
    await writeAll(socket, body.subarray(0, Math.floor(body.length * 0.95)), false);
    await until('the upload to reach a part file', async () => (await partFiles()).length > 0, 5_000);
    socket.destroy();
  }

  it('REST: 5 uploads cut off at 95%', async () => {
    const fdsBefore = await openFds();
    const boundary = 'abandon-boundary';
    const body = formBody(boundary, [
      { name: 'description', content: Buffer.from('make it night') },
      { name: 'referenceImage', file: 'ref.png', content: await pngOfSize(MAX_FILE_SIZE - 10 * KiB) },
    ]);
    for (let i = 0; i < 5; i++) {
      await abandon('/generate-image', { 'Content-Type': `multipart/form-data; boundary=${boundary}` }, body);
      await until('the part file to be deleted', async () => (await partFiles()).length === 0, 5_000);
    }
    await until('the open files to return to where they were', async () => (await openFds()) <= fdsBefore, 5_000);
  });

  it('GraphQL multipart: 5 uploads cut off at 95%', async () => {
    const fdsBefore = await openFds();
    const { body, contentType } = await multipartBytes(GENERATE, { description: 'make it night' }, await pngOfSize(MAX_FILE_SIZE - 10 * KiB));
    for (let i = 0; i < 5; i++) {
      await abandon('/graphql', { ...CSRF, 'Content-Type': contentType }, body);
      await until('the part file to be deleted', async () => (await partFiles()).length === 0, 5_000);
    }
    await until('the open files to return to where they were', async () => (await openFds()) <= fdsBefore, 5_000);
  });
});

describe('BODY_TIMEOUT cuts a body that trickles', () => {
  it(`a REST upload still arriving after ${BODY_TIMEOUT_S} s is cut, its part file deleted; a WebSocket opened before stays open`, { timeout: 15_000 }, async () => {
    const ws = new WebSocket(`${stack.app.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
    const messages: { type: string }[] = [];
    ws.on('message', (data: Buffer) => messages.push(JSON.parse(data.toString('utf8')) as { type: string }));
    await once(ws, 'open');
    ws.send(JSON.stringify({ type: 'connection_init' }));
    await until('connection_ack', () => messages.some((m) => m.type === 'connection_ack'), 5_000);

    const boundary = 'trickle-boundary';
    const body = formBody(boundary, [
      { name: 'description', content: Buffer.from('make it night') },
      { name: 'referenceImage', file: 'ref.png', content: await pngOfSize(64 * KiB) },
    ]);
    const started = Date.now();
    const { socket, response } = await openRequest('POST', '/generate-image', {
      'Content-Type': `multipart/form-data; boundary=${boundary}`,
      'Content-Length': body.length,
    });
    socket.write(body.subarray(0, 1024));
    await until('the upload to reach a part file', async () => (await partFiles()).length > 0, 5_000);
    // A byte every 100 ms: never idle for long, but far too slow to finish (it would take ~2 hours).
    let at = 1024;
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write(body.subarray(at, ++at));
    }, 100);
    try {
      const res = await response;
      expect(Date.now() - started).toBeGreaterThanOrEqual(BODY_TIMEOUT_S * 1000);
      expect(res.status).toBe(408);
    } finally {
      clearInterval(trickle);
    }
    await until('the part file to be deleted', async () => (await partFiles()).length === 0, 5_000);

    // The WebSocket is older than BODY_TIMEOUT and was not cut with the upload.
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.send(JSON.stringify({ type: 'ping' }));
    await until('pong', () => messages.some((m) => m.type === 'pong'), 5_000);
    ws.close();
  });
});

describe('GraphQL bodies that are not multipart have their own, smaller limit', () => {
  const limitMessage = new RegExp(`exceeds the limit of ${JSON_BODY_LIMIT} bytes`);
  const json = (bytes: number): Buffer => {
    const head = '{"query":"{ __typename }","variables":{"pad":"';
    const tail = '"}}';
    return Buffer.from(head + 'x'.repeat(bytes - head.length - tail.length) + tail);
  };

  it('is 1 MiB', () => {
    expect(JSON_BODY_LIMIT).toBe(1024 * 1024);
  });

  it('a 2 MB JSON POST is refused with 413 from its Content-Length, before the body is sent', async () => {
    const body = json(2 * 1000 * 1000);
    const { socket, response } = await openRequest('POST', '/graphql', { 'Content-Type': 'application/json', 'Content-Length': body.length });
    socket.write(body.subarray(0, 1024)); // the rest never comes: only an answer from the header ends this
    const res = await response;
    expect(res.status).toBe(413);
    const parsed = JSON.parse(res.body) as { errors: { message: string; extensions?: { code?: string } }[] };
    expect(parsed.errors[0]!.message).toMatch(limitMessage);
    expect(parsed.errors[0]!.extensions?.code).toBe('REQUEST_ENTITY_TOO_LARGE');
  });

  it('a 2 MB JSON POST sent chunked is refused with 413 once it crosses the limit', async () => {
    const { socket, response } = await openRequest('POST', '/graphql', { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    await writeAll(socket, json(2 * 1000 * 1000), true);
    if (!socket.destroyed) socket.end(LAST_CHUNK);
    const res = await response;
    expect(res.status).toBe(413);
    expect((JSON.parse(res.body) as { errors: { message: string }[] }).errors[0]!.message).toMatch(limitMessage);
  });

  it('a JSON body just under the limit is still served', async () => {
    const res = await fetch(`${stack.app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: json(JSON_BODY_LIMIT - 100).toString('utf8') });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: { __typename: 'Query' } });
  });
});
