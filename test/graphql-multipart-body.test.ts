/**
 * GraphQL multipart bodies read from the Node request (src/graphql/node-multipart-body.ts) keep what
 * the web-stream path guaranteed: the body cap answers 413 naming the limit even before the parser
 * found a field, a client that leaves mid-file leaves no part file, and the service keeps answering.
 */
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { Agent } from 'node:http';
import { connect } from 'node:net';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeImage } from './helpers/images.js';
import { CSRF, GENERATE, generate, multipartBytes, rawRequest } from './helpers/graphql.js';
import { startStack, until, type Stack } from './helpers/stack.js';

const MAX_FILE = 64 * 1024;
const TASK = { description: 'make it night, keep the car', size: '256x256', steps: 1 };

let stack: Stack;
let url: string;
beforeAll(async () => {
  stack = await startStack({ config: { maxFileSize: MAX_FILE } });
  url = stack.app.url;
});
afterAll(async () => {
  await stack.close();
});

const partFiles = async () =>
  (await readdir(join(stack.config.dataDir, 'tmp'), { recursive: true }).catch(() => [] as string[])).filter((n) => basename(n).startsWith('.upload-'));

/** Cut in 16 KiB pieces, so a raw request sends it chunked. */
const pieces = (body: Buffer): Buffer[] => Array.from({ length: Math.ceil(body.length / 16_384) }, (_, i) => body.subarray(i * 16_384, (i + 1) * 16_384));

describe('GraphQL multipart read from the Node request', () => {
  it('a chunked body crossing the cap before any field (a long preamble): 413 naming the limit, the connection closed', async () => {
    const { body, contentType } = await multipartBytes(GENERATE, TASK, await makeImage('png', 64, 64));
    // Busboy skips whatever comes before the first boundary, so only the cap can stop this.
    const preamble = Buffer.alloc(MAX_FILE + 256 * 1024, 0x41);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const res = await rawRequest(`${url}/graphql`, {
        method: 'POST',
        agent,
        headers: { ...CSRF, 'content-type': contentType, 'transfer-encoding': 'chunked' },
        body: pieces(Buffer.concat([preamble, Buffer.from('\r\n'), body])),
      });
      expect(res.status).toBe(413);
      expect(res.headers.connection).toBe('close');
      const { errors } = JSON.parse(res.body) as { errors: Array<{ message: string; extensions: { code: string } }> };
      expect(errors[0]!.message).toMatch(new RegExp(`exceeds the limit of ${MAX_FILE + 128 * 1024} bytes for a multipart request`));
      expect(errors[0]!.extensions.code).toBe('REQUEST_ENTITY_TOO_LARGE');
    } finally {
      agent.destroy();
    }
    expect(await generate(url, TASK, await makeImage('png', 64, 64))).toMatchObject({ __typename: 'GenerateSuccess' });
  });

  it('a chunked upload the client leaves mid-file leaves no part file, and the next upload works', async () => {
    const png = await makeImage('png', 64, 64);
    // A PNG start and filler: the sink accepts it while it streams, so a part file exists.
    const file = Buffer.concat([png.subarray(0, png.length - 12), Buffer.alloc(MAX_FILE - png.length - 1024, 0x41)]);
    const { body, contentType } = await multipartBytes(GENERATE, TASK, file);
    const port = Number(new URL(url).port);
    for (let i = 0; i < 3; i++) {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      await once(socket, 'connect');
      const head = [`POST /graphql HTTP/1.1`, `Host: 127.0.0.1:${port}`, `Content-Type: ${contentType}`, 'Transfer-Encoding: chunked', 'x-graphql-yoga-csrf: 1'];
      socket.write(`${head.join('\r\n')}\r\n\r\n`);
      const half = body.subarray(0, Math.floor(body.length * 0.9));
      socket.write(Buffer.concat([Buffer.from(`${half.length.toString(16)}\r\n`), half, Buffer.from('\r\n')]));
      await until('the upload to reach a part file', async () => (await partFiles()).length > 0, 5_000);
      socket.destroy();
      await until('the part file to be deleted', async () => (await partFiles()).length === 0, 5_000);
    }
    expect(await generate(url, TASK, png)).toMatchObject({ __typename: 'GenerateSuccess' });
  });
});
