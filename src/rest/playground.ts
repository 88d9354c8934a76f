/**
 * The playground at `/`: the static files `npm run build:playground` writes to `playground/dist/`
 * (also run by `npm ci`/`npm install`, through `prepare`). `index.html` is revalidated on every load
 * (it names the current hashed files); the files under `/playground/assets/` have content hashes in
 * their names and are cached for a year. Vite wrote each text file brotli- and gzip-compressed
 * beside itself, so nothing is compressed here. Files are read on the first request and kept.
 */
import { IMMUTABLE_CACHE, sendStaticFile, type Encoding } from '../http/static-files.js';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { PACKAGE_ROOT } from '../package-root.js';
import { sendDetail } from './respond.js';

/** URL path of the hashed files (Vite's `base` plus `assets`). */
export const PLAYGROUND_ASSETS_PATH = '/playground/assets';

/** Where the build is, in the package. */
const DIST = join(PACKAGE_ROOT, 'playground', 'dist');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
};


/** A built file, read once. */
interface BuiltFile {
  type: string;
  etag: string;
  body: Buffer;
  /** The precompressed bodies Vite wrote (`.br`, `.gz`), when it did. */
  encoded: Partial<Record<Encoding, Buffer>>;
}

/**
 * The page's Content-Security-Policy: everything from the service itself (WebSocket included), plus
 * PUBLIC_URL's origin for images when it differs; previews are data: URLs, the reference thumbnail a
 * blob: URL. No inline script or style (Preact sets styles through the CSSOM, which CSP allows).
 */
export function playgroundCsp(publicUrl: string | undefined): string {
  const extra = publicUrl ? ` ${new URL(publicUrl).origin}` : '';
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    `img-src 'self' data: blob:${extra}`,
    `connect-src 'self'${extra}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Serves the built playground; `dir` is for tests. @default playground/dist in the package */
export class PlaygroundAssets {
  private loaded: Promise<{ page: BuiltFile | undefined; assets: Map<string, BuiltFile> }> | undefined;

  constructor(private readonly dir = DIST) {}

  /** GET/HEAD `/`: the page, or 503 saying how to build it when it is not built. */
  async servePage(req: IncomingMessage, res: ServerResponse, publicUrl: string | undefined): Promise<void> {
    const { page } = await this.load();
    req.resume();
    if (!page) {
      this.loaded = undefined; // built meanwhile? look again next time
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end('The playground is not built: run `npm run build:playground` (npm ci and npm install run it too).\n');
      return;
    }
    await send(req, res, page, 'no-cache', {
      'content-security-policy': playgroundCsp(publicUrl),
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
    });
  }

  /** GET/HEAD `/playground/assets/<name>`: 200 (compressed when accepted), 304, or 404. */
  async serveAsset(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const file = (await this.load()).assets.get(name);
    req.resume();
    if (!file) return sendDetail(res, 404, 'Not Found');
    await send(req, res, file, IMMUTABLE_CACHE, {});
  }

  private load() {
    // A failed read (a broken install) is not kept: the next request tries again.
    this.loaded ??= loadDist(this.dir).catch((err: unknown) => {
      this.loaded = undefined;
      throw err;
    });
    return this.loaded;
  }
}

function send(req: IncomingMessage, res: ServerResponse, file: BuiltFile, cacheControl: string, extra: Record<string, string>): Promise<void> {
  return sendStaticFile(req, res, { type: file.type, etag: file.etag, body: (encoding) => (encoding ? file.encoded[encoding] : file.body) }, cacheControl, extra);
}

async function loadDist(dir: string): Promise<{ page: BuiltFile | undefined; assets: Map<string, BuiltFile> }> {
  const assets = new Map<string, BuiltFile>();
  const page = await readStatic(join(dir, 'index.html'));
  const names = await readdir(join(dir, 'assets')).catch(() => [] as string[]);
  for (const name of names) {
    if (name.endsWith('.br') || name.endsWith('.gz')) continue;
    const file = await readStatic(join(dir, 'assets', name));
    if (file) assets.set(name, file);
  }
  return { page, assets };
}

/** A file and its precompressed siblings; undefined when it does not exist. */
async function readStatic(path: string): Promise<BuiltFile | undefined> {
  const read = (p: string) => readFile(p).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
  const [body, br, gzip] = await Promise.all([read(path), read(`${path}.br`), read(`${path}.gz`)]);
  if (!body) return undefined;
  return {
    type: TYPES[extname(path)] ?? 'application/octet-stream',
    etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`,
    body,
    encoded: { ...(br ? { br } : {}), ...(gzip ? { gzip } : {}) },
  };
}

