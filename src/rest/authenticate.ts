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
import { drainBody } from '../http/drain-body.js';
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
 * Authenticates `req` and checks `scope`: the caller, or undefined once a 401 or 403 was sent (the
 * body, if any, is thrown away unparsed; see refuse for `maxDrain`). At once when the
 * authenticator's caches decide (nearly every request), else a promise of it.
 */
export function authorize(req: IncomingMessage, res: ServerResponse, auth: Authenticator, scope: KeyScope, maxDrain = DEFAULT_DRAIN_BYTES): Caller | undefined | Promise<Caller | undefined> {
  const key = keyOf(req);
  const known = auth.known(key);
  if (known) return permitted(req, res, known, scope, maxDrain);
  return auth.authenticate(key).then((result) => permitted(req, res, result, scope, maxDrain));
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
 * Answers `status` with `{"detail": ...}`; the body is never parsed or stored, only thrown away up
 * to `maxDrain` bytes first (see drainBody): a larger one is answered at once, its connection closed.
 */
export function refuse(req: IncomingMessage, res: ServerResponse, status: number, detail: string, headers: Record<string, string> = {}, maxDrain = DEFAULT_DRAIN_BYTES): void {
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  void drainBody(req, maxDrain).then((drained) => {
    if (res.headersSent) return;
    if (!drained) res.shouldKeepAlive = false;
    sendDetail(res, status, detail);
  });
}
