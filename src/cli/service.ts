/**
 * Reaching a running service over HTTP: where it is (`--url`, else this machine's HOST and PORT)
 * and a fetch that tells "not reachable" (exit 3) apart from an answer.
 */
import type { Config } from '../config.js';
import { CommandError, EXIT, UsageError } from './output.js';

/**
 * The service's base URL: `--url` when given, else `http://127.0.0.1:$PORT` (or HOST when it names
 * one interface). `config` is only read without `--url`, so a broken `.env` does not stop an explicit URL.
 */
export function serviceUrl(flag: string | undefined, config: () => Config): string {
  if (flag !== undefined) {
    let url: URL;
    try {
      url = new URL(flag);
    } catch {
      throw new UsageError(`--url must be an http:// or https:// URL, not '${flag}'`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--url must be an http:// or https:// URL, not '${flag}'`);
    return url.href.replace(/\/+$/, '');
  }
  const { host: configured, port } = config();
  const wildcard = configured === '0.0.0.0' || configured === '::';
  const host = wildcard ? '127.0.0.1' : configured.includes(':') ? `[${configured}]` : configured;
  return `http://${host}:${port}`;
}

/** The service did not answer: nothing listens there, the name does not resolve, or it timed out. Exit 3. */
export class ServiceUnreachableError extends CommandError {
  constructor(
    readonly url: string,
    reason: string,
    /**
     * True when no connection was made at all (refused, unknown host): the service is not running
     * there. False when it timed out, which a busy running service can do too.
     */
    readonly noConnection: boolean,
  ) {
    super(`the service at ${url} is not reachable (${reason}); is it running? Set --url or PORT`, EXIT.UNREACHABLE);
  }
}

const NO_CONNECTION = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);

/** Options of `fetchService`. */
export interface FetchServiceOptions extends RequestInit {
  /** Give up (as unreachable) when no answer has come by then, in ms. @default 30_000 */
  timeoutMs?: number;
}

/** `fetch` against the service; network failures and timeouts become ServiceUnreachableError. */
export async function fetchService(baseUrl: string, path: string, options: FetchServiceOptions = {}): Promise<Response> {
  const { timeoutMs = 30_000, ...init } = options;
  try {
    return await fetch(new URL(path, `${baseUrl}/`), { ...init, signal: init.signal ?? AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw unreachable(baseUrl, err, timeoutMs);
  }
}

/** The ServiceUnreachableError for a failed `fetch` (a network failure or an abort after `timeoutMs`). */
export function unreachable(baseUrl: string, err: unknown, timeoutMs: number): ServiceUnreachableError {
  const code = (err as { cause?: { code?: string } }).cause?.code;
  return new ServiceUnreachableError(baseUrl, networkReason(err, timeoutMs), code !== undefined && NO_CONNECTION.has(code));
}

/** A short reason for a failed fetch: the system error code when there is one. */
function networkReason(err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return `no answer within ${Math.round(timeoutMs / 1000)} s`;
  return e.cause?.code ?? e.cause?.message ?? e.message;
}

/** The `detail` of a FastAPI-style error body, as one line; the status text when there is none. */
export async function errorDetail(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { detail?: unknown };
    const d = body.detail;
    if (typeof d === 'string') return d;
    if (Array.isArray(d)) {
      return d
        .map((item: { loc?: unknown[]; msg?: string }) => `${(item.loc ?? []).slice(1).join('.') || 'request'}: ${item.msg ?? 'invalid'}`)
        .join('; ');
    }
  } catch {
    // not JSON: fall through
  }
  return `${res.status} ${res.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`;
}
