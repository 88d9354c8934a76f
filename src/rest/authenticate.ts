/**
 * Who a REST request is, decided before its route reads anything: the key it presents
 * (`Authorization: Bearer <key>` or `X-API-Key`), and whether that key holds the scope the route
 * needs. Refusals keep FastAPI's shape: 401 with `WWW-Authenticate: Bearer` for a missing, wrong
 * or revoked key, 403 naming the scope a key lacks. A refused request's body is never parsed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { presentedKey } from '../auth/api-key.js';
import { Authenticator, type AuthResult } from '../auth/authenticator.js';
import type { Caller } from '../auth/caller.js';
import type { KeyScope } from '../db/types.js';
import { sendDetail } from './respond.js';

/** The challenge of a 401: RFC 6750's scheme, with a realm naming the service. */
export const WWW_AUTHENTICATE = 'Bearer realm="kontext"';

/** The key a request presents (see presentedKey: undefined for none, '' for an unusable one). */
export function keyOf(req: IncomingMessage): string | undefined {
  const apiKey = req.headers['x-api-key'];
  return presentedKey(req.headers.authorization, Array.isArray(apiKey) ? apiKey[0] : apiKey);
}

/** Most bytes of a refused request's body read (and thrown away) before answering. @default 1 MiB */
const DEFAULT_DRAIN_BYTES = 1024 * 1024;

/**
 * Authenticates `req` and checks `scope`; resolves the caller, or undefined once a 401 or 403 was
 * sent (the body, if any, is thrown away unparsed; see refuse for `maxDrain`).
 */
export async function authorize(req: IncomingMessage, res: ServerResponse, auth: Authenticator, scope: KeyScope, maxDrain = DEFAULT_DRAIN_BYTES): Promise<Caller | undefined> {
  const result = await auth.authenticate(keyOf(req));
  return permitted(req, res, result, scope, maxDrain);
}

/** The caller of an authentication result when it holds `scope`; otherwise sends the refusal. */
export function permitted(req: IncomingMessage, res: ServerResponse, result: AuthResult, scope: KeyScope, maxDrain = DEFAULT_DRAIN_BYTES): Caller | undefined {
  if (!result.ok) {
    refuse(req, res, 401, result.message, { 'www-authenticate': WWW_AUTHENTICATE }, maxDrain);
    return undefined;
  }
  const lacking = Authenticator.lacks(result.caller, scope);
  if (lacking) {
    refuse(req, res, 403, lacking, {}, maxDrain);
    return undefined;
  }
  return result.caller;
}

/**
 * Answers `status` with `{"detail": ...}`; the body is never parsed or stored. A body of at most
 * `maxDrain` bytes is read and thrown away first: a client still uploading when the answer came
 * would otherwise see a broken connection (EPIPE) instead of the 401 or 429. A larger one is
 * answered at once and its connection closed, so a refused client cannot make the service read
 * more than an accepted one could.
 */
export function refuse(req: IncomingMessage, res: ServerResponse, status: number, detail: string, headers: Record<string, string> = {}, maxDrain = DEFAULT_DRAIN_BYTES): void {
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (!hasBody(req)) {
    sendDetail(res, status, detail);
    req.resume();
    return;
  }
  let answered = false;
  const answer = (close: boolean) => {
    if (answered || res.headersSent) return;
    answered = true;
    if (close) res.shouldKeepAlive = false;
    sendDetail(res, status, detail);
  };
  if (Number(req.headers['content-length'] ?? 0) > maxDrain) return (answer(true), void req.resume());
  let seen = 0;
  req.on('data', (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > maxDrain) answer(true);
  });
  req.once('end', () => answer(false));
  // A client that gives up mid-body gets nothing; the socket is gone.
  req.once('error', () => undefined);
  req.resume();
}

/** Whether a body is (still) on its way. */
function hasBody(req: IncomingMessage): boolean {
  if (req.complete) return false;
  return Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}
