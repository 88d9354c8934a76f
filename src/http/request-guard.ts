/**
 * Who may talk to the service from a browser: the same-origin policy for every route and the
 * WebSocket upgrade, and the `Host` check against DNS rebinding. Pure decisions from headers and
 * config; `app.ts` applies them once before REST and Yoga, `graphql/ws.ts` before the handshake.
 *
 * A browser always sends `Origin` on cross-site requests (and on same-site POSTs); curl, scripts
 * and servers send none and are never refused for it.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Config } from '../config.js';

/** What the guard needs from the config. */
export type GuardConfig = Pick<Config, 'host' | 'allowedHosts' | 'publicUrl' | 'corsOrigins'>;

/** A refused request: the status and the sentence for the client. */
export interface Refusal {
  status: 403 | 421;
  detail: string;
}

/** The request parts the guard looks at. */
export interface GuardedRequest {
  headers: IncomingHttpHeaders;
}

/** The guard for one service: decides once per request, `undefined` when the request may pass. */
export type RequestGuard = (req: GuardedRequest) => Refusal | undefined;

/** Host names a loopback-bound service always answers to (any port). */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/** A `Host` header: a name, an IPv4 address or a bracketed IPv6 address, and an optional port. Nothing else (no `user@`). */
const HOST_HEADER = /^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::\d{1,5})?$/i;

/** Builds the guard from the config (CORS_ORIGINS, ALLOWED_HOSTS, PUBLIC_URL, HOST). */
export function createRequestGuard(config: GuardConfig): RequestGuard {
  const hosts = allowedHostNames(config);
  return (req) => checkHost(req.headers.host, hosts) ?? checkOrigin(req.headers, config);
}

/**
 * The host names accepted in `Host`, or `undefined` for any. Bound to loopback: loopback names,
 * PUBLIC_URL's host and ALLOWED_HOSTS (a rebinding page's `Host` is its own name). Bound wider:
 * checked only when ALLOWED_HOSTS is set (clients may use any of the box's names and addresses).
 */
export function allowedHostNames(config: GuardConfig): Set<string> | undefined {
  if (!isLoopback(config.host) && config.allowedHosts.length === 0) return undefined;
  const names = new Set(LOOPBACK_NAMES);
  if (config.publicUrl) names.add(new URL(config.publicUrl).hostname.toLowerCase());
  for (const h of config.allowedHosts) names.add(normalizeHostName(h));
  return names;
}

/** A 421 when `Host` names a host this service does not answer to. */
export function checkHost(host: string | undefined, allowed: Set<string> | undefined): Refusal | undefined {
  // HTTP/1.0 clients may omit Host; browsers never do, so this cannot be a rebinding page.
  if (!allowed || host === undefined) return undefined;
  const name = hostName(host);
  if (name !== undefined && allowed.has(name)) return undefined;
  return { status: 421, detail: `Host ${host.slice(0, 200)} is not allowed (ALLOWED_HOSTS)` };
}

/** A 403 when the request carries an `Origin` that is neither listed in CORS_ORIGINS nor the service's own. */
export function checkOrigin(headers: IncomingHttpHeaders, config: Pick<Config, 'publicUrl' | 'corsOrigins'>): Refusal | undefined {
  const origin = headers.origin;
  if (origin === undefined || originAllowed(origin, headers.host, config)) return undefined;
  return { status: 403, detail: `Origin ${origin.slice(0, 200)} is not allowed (CORS_ORIGINS)` };
}

/**
 * Whether a browser page at `origin` may use the service: CORS_ORIGINS is `*`, lists it, it is
 * PUBLIC_URL's origin, or it has the request's own host and port. The scheme of the own origin is
 * not compared: behind a TLS proxy the page is https while the request reaching us is http.
 */
export function originAllowed(origin: string, host: string | undefined, config: Pick<Config, 'publicUrl' | 'corsOrigins'>): boolean {
  if (config.corsOrigins === '*') return true;
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    return false; // `null` (sandboxed frames, file://) and garbage
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return false;
  if (config.corsOrigins.some((o) => sameOrigin(o, parsed.origin))) return true;
  if (config.publicUrl && sameOrigin(config.publicUrl, parsed.origin)) return true;
  return host !== undefined && parsed.host === host.toLowerCase();
}

/** Writes a refusal in the interface's style: GraphQL errors for `/graphql`, FastAPI's `{"detail"}` elsewhere. */
export function sendRefusal(res: ServerResponse, refusal: Refusal, style: 'rest' | 'graphql'): void {
  const body = JSON.stringify(style === 'graphql' ? graphqlRefusalBody(refusal) : { detail: refusal.detail });
  res.writeHead(refusal.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), vary: 'Origin' });
  res.end(body);
}

/** The GraphQL-over-HTTP error body of a refusal. */
export function graphqlRefusalBody(refusal: Refusal): { errors: { message: string; extensions: { code: string } }[] } {
  return { errors: [{ message: refusal.detail, extensions: { code: refusal.status === 421 ? 'HOST_NOT_ALLOWED' : 'ORIGIN_NOT_ALLOWED' } }] };
}

function isLoopback(bindHost: string): boolean {
  return bindHost === 'localhost' || bindHost === '::1' || /^127\.\d+\.\d+\.\d+$/.test(bindHost);
}

/** The lower-case name of a `Host` header without its port; `undefined` when it is not a plain host. */
function hostName(host: string): string | undefined {
  const m = HOST_HEADER.exec(host.trim());
  return m ? m[1]!.toLowerCase() : undefined;
}

/** An ALLOWED_HOSTS entry as `Host` carries it: bare IPv6 gets brackets, a port is dropped. */
function normalizeHostName(entry: string): string {
  const h = entry.toLowerCase();
  if (!h.startsWith('[') && h.split(':').length > 2) return `[${h}]`;
  return hostName(h) ?? h;
}

function sameOrigin(url: string, origin: string): boolean {
  try {
    return new URL(url).origin === origin;
  } catch {
    return false;
  }
}
