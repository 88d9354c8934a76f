/**
 * One serialised payload per shared result. A subscription result that many subscribers receive
 * (shared-execution.ts) is serialised here once; the transports then send that text (graphql-ws,
 * spliced into each subscriber's `next` message, which differs only by its `id`) or those bytes
 * (SSE; the tail of a graphql-ws `next` message) instead of serialising the same object again per subscriber.
 */
import type { ExecutionResult } from 'graphql';

/** The serialised forms of one shared result, made on first use. */
interface SharedPayload {
  json?: string;
  sse?: Uint8Array;
  next?: Uint8Array;
}

/** Results marked as shared; a WeakMap, so a payload lives as long as its result object. */
const shared = new WeakMap<object, SharedPayload>();

const encoder = new TextEncoder();

/**
 * Marks `result` as sent unchanged to every subscriber of a group. Only a result without errors
 * qualifies: a result with errors is rewritten per transport (masking, internals left out).
 */
export function markShared(result: ExecutionResult): void {
  if (result.errors === undefined) shared.set(result, {});
}

/** The JSON text of a shared result (made once), or undefined when `value` is not one. */
export function sharedJson(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const payload = shared.get(value);
  if (!payload) return undefined;
  return (payload.json ??= JSON.stringify(value));
}

/**
 * The SSE event of a shared result, `event: next\ndata: <json>\n\n` as Yoga writes it, encoded once;
 * undefined when `value` is not a shared result. The bytes are never written to, so every stream
 * may enqueue the same array.
 */
export function sharedSseEvent(value: unknown): Uint8Array | undefined {
  return encodedOnce(value, 'sse', (json) => `event: next\ndata: ${json}\n\n`);
}

/**
 * What follows the id in a graphql-ws `next` message of a shared result, `,"type":"next","payload":<json>}`
 * as graphql-ws's stringifyMessage writes it, encoded once (ws-next-frames.ts puts the id in front);
 * undefined when `value` is not a shared result. Never written to, as `sharedSseEvent`'s bytes.
 */
export function sharedNextRest(value: unknown): Uint8Array | undefined {
  return encodedOnce(value, 'next', (json) => `,"type":"next","payload":${json}}`);
}

/** `value`'s JSON wrapped by `text` and encoded, kept under `form`; undefined when `value` is not shared. */
function encodedOnce(value: unknown, form: 'sse' | 'next', text: (json: string) => string): Uint8Array | undefined {
  const json = sharedJson(value);
  if (json === undefined) return undefined;
  const payload = shared.get(value as object)!;
  return (payload[form] ??= encoder.encode(text(json)));
}
