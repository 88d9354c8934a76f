/**
 * What a network failure means for a request to ComfyUI, decided in one place: whether it is a
 * transport failure at all (nobody answered), whether the request may still have reached the server
 * (it matters for `POST /prompt`, which must not run twice), and whether it is a kept-alive
 * connection that the server had closed (safe to send again once).
 */
import { ComfyError, ComfyTimeoutError, ComfyUnreachableError } from './errors.js';

/** System and undici codes of a connection that failed: refused, reset, DNS, unroutable, closed. */
const TRANSPORT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);

/** Of those, the failures before a connection carried the request: it cannot have arrived. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);

/** Failures of a kept-alive connection that the server closed meanwhile (it restarted). */
const STALE_CONNECTION_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

/**
 * The network code of a failure: a `ComfyUnreachableError`'s `reason`, or the system/undici `code`
 * of a raw error (looking into `cause` and AggregateError members). `undefined` when there is none.
 */
export function transportCode(err: unknown): string | undefined {
  return codeOf(err, 0);
}

/** True when the request failed in the network (nothing answered), as opposed to a reply, a timeout or a local error. */
export function isTransportFailure(err: unknown): boolean {
  if (err instanceof ComfyUnreachableError) return true;
  const code = codeOf(err, 0);
  return code !== undefined && TRANSPORT_CODES.has(code);
}

/**
 * True when a failed request may still have reached the server: it timed out, or its connection
 * broke after it was sent. False when no connection carried it (refused, unknown host, ...) and
 * for failures that are not the network's.
 */
export function mayHaveArrived(err: unknown): boolean {
  if (err instanceof ComfyTimeoutError) return true;
  if (!isTransportFailure(err)) return false;
  const code = transportCode(err);
  return code === undefined || !NOT_SENT_CODES.has(code);
}

/** True when the failure is a kept-alive connection the server had closed: a request that is safe to repeat may be sent again once. */
export function isStaleConnection(err: unknown): boolean {
  const code = transportCode(err);
  return code !== undefined && STALE_CONNECTION_CODES.has(code);
}

function codeOf(err: unknown, depth: number): string | undefined {
  if (err instanceof ComfyUnreachableError) return err.reason;
  // Any other ComfyError is classified by its type; its `code` is a kind (`TIMEOUT`), not a system code.
  if (err instanceof ComfyError) return undefined;
  if (typeof err !== 'object' || err === null || depth > 3) return undefined;
  const e = err as { code?: unknown; cause?: unknown; errors?: unknown };
  if (typeof e.code === 'string') return e.code;
  if (Array.isArray(e.errors)) {
    for (const inner of e.errors) {
      const code = codeOf(inner, depth + 1);
      if (code) return code;
    }
  }
  return codeOf(e.cause, depth + 1);
}
