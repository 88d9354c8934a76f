/**
 * A small HTTP layer that answers like aiohttp does for ComfyUI: routes also under `/api`, empty
 * `application/octet-stream` bodies for bare status answers, aiohttp's plain-text 404/405/413/500
 * pages, ComfyUI's Host/Origin check and cache-control middleware.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Link } from './link.js';
import { PyException, pyDumps } from './py.js';

/** A complete HTTP answer. */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: Buffer | string;
}

/** What a route handler sees of a request. */
export interface Request {
  method: string;
  query: URLSearchParams;
  params: Record<string, string>;
  headers: IncomingMessage['headers'];
  /** The whole body; throws BodyTooLarge past the upload limit. */
  body(): Promise<Buffer>;
  /** The body decoded as UTF-8 (invalid UTF-8 throws, like aiohttp's text()). */
  text(): Promise<string>;
}

/** A route handler; a thrown error becomes aiohttp's plain-text 500. */
export type Handler = (req: Request) => Promise<Reply> | Reply;

/** A body over the limit: aiohttp's 413 reports the size read when the limit was crossed. */
export class BodyTooLarge extends Error {
  constructor(
    readonly max: number,
    readonly actual: number,
  ) {
    super(`Maximum request body size ${max} exceeded, actual body size ${actual}`);
  }
}

/** `web.json_response`. */
export function json(value: unknown, status = 200): Reply {
  return { status, headers: { 'Content-Type': 'application/json; charset=utf-8' }, body: pyDumps(value) };
}

/** `web.Response(status=...)`: empty, application/octet-stream. */
export function empty(status = 200): Reply {
  return { status, headers: { 'Content-Type': 'application/octet-stream' }, body: '' };
}

/** A plain-text answer (aiohttp's error pages). */
export function text(status: number, body: string): Reply {
  return { status, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body };
}

/** aiohttp's answer to an unhandled exception. */
export const SERVER_ERROR = (): Reply => text(500, '500 Internal Server Error\n\nServer got itself in trouble');

interface Route {
  method: string;
  parts: string[];
  handler: Handler;
}

const IMG_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pbm', '.pgm', '.tiff', '.tif', '.webp'];

/** Routes by method and path pattern (`{name}` matches one segment). */
export class Router {
  private readonly routes: Route[] = [];

  /** Adds a route; with `api` (the default) it is also served under `/api`. */
  add(method: string, pattern: string, handler: Handler, api = true): void {
    this.routes.push({ method, parts: pattern.split('/'), handler });
    if (api) this.routes.push({ method, parts: `/api${pattern}`.split('/'), handler });
  }

  /** Every route whose path pattern matches (any method), with its path parameters. */
  private match(path: string): Array<{ route: Route; params: Record<string, string> }> {
    const segs = path.split('/');
    const out: Array<{ route: Route; params: Record<string, string> }> = [];
    for (const route of this.routes) {
      if (route.parts.length !== segs.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < segs.length; i++) {
        const p = route.parts[i] as string;
        const s = segs[i] as string;
        if (p.startsWith('{') && p.endsWith('}')) {
          if (s === '') {
            ok = false;
            break;
          }
          params[p.slice(1, -1)] = safeDecode(s);
        } else if (p !== safeDecode(s)) {
          ok = false;
          break;
        }
      }
      if (ok) out.push({ route, params });
    }
    return out;
  }

  /**
   * Answers one request (never throws). `beforeReply` is awaited before anything is written
   * (a paused simulator holds its answers); `link` delays and paces the request and the answer
   * (simulator/link.ts). @default none, none
   */
  async handle(req: IncomingMessage, res: ServerResponse, maxBody: number, beforeReply?: () => Promise<void>, link?: Link): Promise<void> {
    let reply: Reply;
    const url = new URL(req.url ?? '/', 'http://localhost');
    const paced = link && !link.transparent ? link : undefined;
    try {
      if (paced) await paced.arrive();
      reply = await this.dispatch(req, url, maxBody, paced);
    } catch (err) {
      reply = err instanceof BodyTooLarge ? text(413, err.message) : SERVER_ERROR();
    }
    applyCacheControl(url.pathname, reply);
    if (beforeReply) await beforeReply();
    const body = typeof reply.body === 'string' ? Buffer.from(reply.body, 'utf8') : reply.body;
    const headers = { ...reply.headers, 'Content-Length': String(body.length) };
    const sent = req.method === 'HEAD' ? undefined : body;
    if (paced) return paced.reply(res, reply.status, headers, sent).catch(() => undefined);
    res.writeHead(reply.status, headers);
    res.end(sent);
  }

  private async dispatch(req: IncomingMessage, url: URL, maxBody: number, link?: Link): Promise<Reply> {
    if (originRejected(req)) return empty(403);
    const method = req.method ?? 'GET';
    if (method === 'OPTIONS') return empty(200);
    const matches = this.match(url.pathname);
    const wanted = method === 'HEAD' ? 'GET' : method;
    const hit = matches.find((m) => m.route.method === wanted);
    if (!hit) {
      if (matches.length > 0) {
        const allow = [...new Set(matches.map((m) => m.route.method))];
        if (allow.includes('GET')) allow.push('HEAD');
        const r = text(405, '405: Method Not Allowed');
        r.headers.Allow = allow.join(',');
        return r;
      }
      return text(404, '404: Not Found');
    }
    let cached: Promise<Buffer> | null = null;
    const body = (): Promise<Buffer> => {
      cached ??= readBody(req, maxBody).then(async (b) => {
        await link?.upload(b.length);
        return b;
      });
      return cached;
    };
    const request: Request = {
      method,
      query: url.searchParams,
      params: hit.params,
      headers: req.headers,
      body,
      text: async () => {
        try {
          return new TextDecoder('utf-8', { fatal: true }).decode(await body());
        } catch (err) {
          if (err instanceof BodyTooLarge) throw err;
          throw new PyException('UnicodeDecodeError', "'utf-8' codec can't decode bytes");
        }
      },
    };
    return hit.route.handler(request);
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * Reads the whole body. Past `max` bytes the rest is drained (so the client can read the answer)
 * and BodyTooLarge reports the size at which the limit was crossed.
 */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = 0;
    req.on('data', (chunk: Buffer) => {
      if (over > 0) return;
      size += chunk.length;
      if (size > max) {
        over = size;
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => (over > 0 ? reject(new BodyTooLarge(max, over)) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

/** ComfyUI's origin_only_middleware: a loopback Host with another Origin is refused. */
export function originRejected(req: IncomingMessage): boolean {
  const host = req.headers.host;
  const origin = req.headers.origin;
  if (!host || !origin) return false;
  const hostDomain = host.toLowerCase();
  let originDomain = '';
  try {
    originDomain = new URL(origin).host.toLowerCase();
  } catch {
    originDomain = '';
  }
  let hostname = hostDomain;
  try {
    hostname = new URL(`http://${hostDomain}`).hostname;
  } catch {
    return false;
  }
  hostname = hostname.replace(/^\[|\]$/g, '');
  const loopback = hostname === 'localhost' || hostname === '::1' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
  return loopback && originDomain.length > 0 && hostDomain !== originDomain;
}

function applyCacheControl(path: string, reply: Reply): void {
  const last = path.slice(path.lastIndexOf('/') + 1);
  const entry = last.startsWith('index') && last.endsWith('.json');
  if (path.endsWith('.js') || path.endsWith('.css') || entry) {
    reply.headers['Cache-Control'] ??= 'no-cache';
    return;
  }
  if (!IMG_EXTENSIONS.some((e) => path.toLowerCase().endsWith(e))) return;
  if (reply.status === 404) reply.headers['Cache-Control'] ??= 'public, max-age=3600';
  else if ([200, 201, 202, 203, 204, 205, 206, 301, 308].includes(reply.status)) reply.headers['Cache-Control'] ??= 'public, max-age=86400';
  else if ([302, 303, 307].includes(reply.status)) reply.headers['Cache-Control'] ??= 'no-cache';
}
