/**
 * What every route serving files of its own (GraphiQL's, Swagger UI's and the playground's assets)
 * needs the same way: the year-long cache of hashed names, the encoding a client prefers, and
 * conditional requests.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { brotliCompress, constants as zlib, gzip } from 'node:zlib';

/** Cache-Control of an asset whose name changes with its content. */
export const IMMUTABLE_CACHE = 'public, max-age=31536000, immutable';

/** The encodings assets are kept in besides identity. */
export type Encoding = 'br' | 'gzip';

/** The client's preferred encoding among ours, honoring `q=0`; `undefined` for identity. */
export function chooseEncoding(acceptEncoding: string | null | undefined): Encoding | undefined {
  if (!acceptEncoding) return undefined;
  const q = new Map<string, number>();
  for (const part of acceptEncoding.split(',')) {
    const [token, ...params] = part.trim().toLowerCase().split(';');
    const weight = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)).find(Boolean);
    if (token) q.set(token, weight ? Number(weight[1]) : 1);
  }
  const quality = (e: Encoding) => q.get(e) ?? q.get('*') ?? 0;
  return (['br', 'gzip'] as const).filter((e) => quality(e) > 0).sort((a, b) => quality(b) - quality(a))[0];
}

/** Whether an `If-None-Match` header names `etag` (weak comparison, RFC 9110 13.1.2), or is `*`. */
export function etagMatches(ifNoneMatch: string | null | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === '*') return true;
  const opaque = etag.replace(/^W\//, '');
  return ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === opaque);
}

/** An asset kept in memory whose compressed bodies are made on first demand and kept. */
export interface CompressibleAsset {
  body: Buffer;
  encoded: Map<Encoding, Promise<Buffer>>;
}

const compress: Record<Encoding, (body: Buffer) => Promise<Buffer>> = {
  // Quality 9 of 11: within a few percent of the smallest at a fraction of the time.
  br: (body) => promisify(brotliCompress)(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 9, [zlib.BROTLI_PARAM_SIZE_HINT]: body.length } }),
  gzip: (body) => promisify(gzip)(body, { level: 9 }),
};

/** The asset's body in `encoding` (compressed once, concurrent first requests share it), or as it is. */
export function encodedBody(asset: CompressibleAsset, encoding: Encoding | undefined): Promise<Buffer> {
  if (!encoding) return Promise.resolve(asset.body);
  let encoded = asset.encoded.get(encoding);
  if (!encoded) {
    // A failure is not kept: the next request tries again.
    encoded = compress[encoding](asset.body).catch((err: unknown) => {
      asset.encoded.delete(encoding);
      throw err;
    });
    asset.encoded.set(encoding, encoded);
  }
  return encoded;
}

/** A file as `sendStaticFile` answers it. */
export interface StaticFile {
  type: string;
  etag: string;
  /** The body in `encoding` (undefined: not available in it, the identity body is sent). */
  body(encoding: Encoding | undefined): Buffer | undefined | Promise<Buffer | undefined>;
  /** Whether compressing it is worth it (not for images). @default true */
  compressible?: boolean;
}

/**
 * Answers GET/HEAD with `file`: 304 when If-None-Match names its ETag, else 200 in the client's
 * preferred encoding when `file` has it, with `cacheControl` and the `extra` headers.
 */
export async function sendStaticFile(req: IncomingMessage, res: ServerResponse, file: StaticFile, cacheControl: string, extra: Record<string, string> = {}): Promise<void> {
  const headers: Record<string, string> = {
    'content-type': file.type,
    'cache-control': cacheControl,
    etag: file.etag,
    vary: 'Accept-Encoding',
    'x-content-type-options': 'nosniff',
    ...extra,
  };
  if (etagMatches(req.headers['if-none-match'], file.etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const encoding = file.compressible === false ? undefined : chooseEncoding(req.headers['accept-encoding']);
  const encoded = encoding ? await file.body(encoding) : undefined;
  const body = encoded ?? (await file.body(undefined))!;
  if (encoded) headers['content-encoding'] = encoding!;
  headers['content-length'] = String(body.length);
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}
