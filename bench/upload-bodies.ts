/**
 * What the upload benchmarks send: big incompressible PNGs, each with different bytes (so the
 * service, which stores content once under its hash, stores every one as the baselines do), and a
 * client that posts a batch of them at once as multipart forms, REST's or GraphQL's.
 */
import { randomBytes } from 'node:crypto';
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

function formOf(kind: UploadForm, png: Buffer, i: number): FormData {
  const form = new FormData();
  // Blob's typings (lib.dom, which Yoga's types pull in) want a plain ArrayBuffer; Node's Buffers are.
  const file = new Blob([png as Uint8Array<ArrayBuffer>], { type: 'image/png' });
  if (kind === 'rest') {
    form.set('description', `upload ${i}`);
    form.set('referenceImage', file, 'big.png');
  } else {
    form.set('operations', JSON.stringify({ query: GENERATE, variables: { input: { description: `upload ${i}`, referenceImage: null } } }));
    form.set('map', JSON.stringify({ 0: ['variables.input.referenceImage'] }));
    form.set('0', file, 'big.png');
  }
  return form;
}

/** Posts every body at once to `url` as a `kind` form; resolves with the milliseconds until the last answer. */
export async function uploadAll(url: string, bodies: readonly Buffer[], kind: UploadForm = 'rest'): Promise<number> {
  const start = performance.now();
  await Promise.all(
    bodies.map(async (png, i) => {
      const res = await fetch(url, {
        method: 'POST',
        body: formOf(kind, png, i),
        // Yoga's CSRF prevention wants a header a browser form cannot set.
        headers: kind === 'graphql' ? { 'apollo-require-preflight': '1' } : {},
      });
      const text = await res.text();
      if (res.status !== 200 || (kind === 'graphql' && !text.includes('GenerateSuccess'))) throw new Error(`upload ${i}: ${res.status} ${text.slice(0, 300)}`);
    }),
  );
  return performance.now() - start;
}
