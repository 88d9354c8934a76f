/**
 * What the upload benchmarks send: big incompressible PNGs, each with different bytes (so the
 * service, which stores content once under its hash, stores every one as the baselines do), and a
 * client that posts a batch of them at once as multipart forms, REST's or GraphQL's, over node:http
 * with each file written as one buffer (fetch with a FormData of Blobs took ~0.5 s to start sending).
 */
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';

/** A PNG of random pixels just under 10 MiB (the default MAX_FILE_SIZE): incompressible, so the file really is that big. */
export async function bigPng(side = 1800): Promise<Buffer> {
  return sharp(randomBytes(side * side * 3), { raw: { width: side, height: side, channels: 3 } }).png({ compressionLevel: 0 }).toBuffer();
}

/** `png` with a tEXt chunk naming `label` after its header: still valid, but other bytes and another hash. */
export function variant(png: Buffer, label: string): Buffer {
  const data = Buffer.from(`Comment\0${label}`, 'latin1');
  const chunk = Buffer.alloc(12 + data.length);
  chunk.writeUInt32BE(data.length, 0);
  chunk.write('tEXt', 4, 'latin1');
  data.copy(chunk, 8);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + data.length)), 8 + data.length);
  // Signature (8) and IHDR (4 + 4 + 13 + 4) come first.
  const headerEnd = 33;
  return Buffer.concat([png.subarray(0, headerEnd), chunk, png.subarray(headerEnd)]);
}

/** Which multipart form to send: the REST route's fields, or a GraphQL multipart request of `generate`. */
export type UploadForm = 'rest' | 'graphql';

const GENERATE = 'mutation ($input: GenerateInput!) { generate(input: $input) { __typename } }';

/** The multipart body's parts before and after the file's bytes, with the boundary they use. */
function formAround(kind: UploadForm, i: number): { head: Buffer; tail: Buffer; boundary: string } {
  const boundary = `----kontext-bench-${i}-${Date.now()}`;
  const field = (name: string, value: string) => `--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  const fields =
    kind === 'rest'
      ? field('description', `upload ${i}`)
      : field('operations', JSON.stringify({ query: GENERATE, variables: { input: { description: `upload ${i}`, referenceImage: null } } })) +
        field('map', JSON.stringify({ 0: ['variables.input.referenceImage'] }));
  const fileName = kind === 'rest' ? 'referenceImage' : '0';
  const head = `${fields}--${boundary}\r\ncontent-disposition: form-data; name="${fileName}"; filename="big.png"\r\ncontent-type: image/png\r\n\r\n`;
  return { head: Buffer.from(head), tail: Buffer.from(`\r\n--${boundary}--\r\n`), boundary };
}

/** One upload over node:http: the file is written as one buffer, so the client costs next to nothing. */
function post(url: URL, kind: UploadForm, png: Buffer, i: number, agent: Agent): Promise<{ status: number; text: string }> {
  const { head, tail, boundary } = formAround(kind, i);
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      agent,
      headers: {
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': head.length + png.length + tail.length,
        // Yoga's CSRF prevention wants a header a browser form cannot set.
        ...(kind === 'graphql' ? { 'apollo-require-preflight': '1' } : {}),
      },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.write(head);
    req.write(png);
    req.end(tail);
  });
}

/** Posts every body at once to `url` as a `kind` form; resolves with the milliseconds until the last answer. */
export async function uploadAll(url: string, bodies: readonly Buffer[], kind: UploadForm = 'rest'): Promise<number> {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const target = new URL(url);
  const start = performance.now();
  try {
    await Promise.all(
      bodies.map(async (png, i) => {
        const { status, text } = await post(target, kind, png, i, agent);
        if (status !== 200 || (kind === 'graphql' && !text.includes('GenerateSuccess'))) throw new Error(`upload ${i}: ${status} ${text.slice(0, 300)}`);
      }),
    );
    return performance.now() - start;
  } finally {
    agent.destroy();
  }
}
