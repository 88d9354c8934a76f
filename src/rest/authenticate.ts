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

/**
 * Authenticates `req` and checks `scope`; resolves the caller, or undefined once a 401 or 403 was
 * sent (the body, if any, is discarded unread).
 */
export async function authorize(req: IncomingMessage, res: ServerResponse, auth: Authenticator, scope: KeyScope): Promise<Caller | undefined> {
  const result = await auth.authenticate(keyOf(req));
  return permitted(req, res, result, scope);
}

/** The caller of an authentication result when it holds `scope`; otherwise sends the refusal. */
export function permitted(req: IncomingMessage, res: ServerResponse, result: AuthResult, scope: KeyScope): Caller | undefined {
  if (!result.ok) {
    refuse(req, res, 401, result.message, { 'www-authenticate': WWW_AUTHENTICATE });
    return undefined;
  }
  const lacking = Authenticator.lacks(result.caller, scope);
  if (lacking) {
    refuse(req, res, 403, lacking);
    return undefined;
  }
  return result.caller;
}

/**
 * Answers `status` with `{"detail": ...}` without reading the request body. A request that sends
 * one gets its connection closed after the answer, so a refused client cannot make the service
 * read (or store) an upload it will never use.
 */
export function refuse(req: IncomingMessage, res: ServerResponse, status: number, detail: string, headers: Record<string, string> = {}): void {
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (hasBody(req)) res.shouldKeepAlive = false;
  sendDetail(res, status, detail);
  req.resume();
}

/** Whether a body is (still) on its way. */
function hasBody(req: IncomingMessage): boolean {
  if (req.complete) return false;
  return Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}
