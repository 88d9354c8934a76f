/**
 * Where a transport lets shared subscription results be written straight to its connection
 * (direct-subscriber.ts), one write per subscriber per frame, instead of each result travelling
 * through that subscriber's own chain of async iterators and message handlers. The graphql-ws sink
 * is here; the SSE one is in direct-sse.ts.
 */
import type { ExecutionArgs, ExecutionResult } from 'graphql';
import type { WebSocket } from 'ws';
import { sharedNextRest } from './shared-payload.js';
import { sendMessage } from './ws-next-frames.js';

/** A connection that takes shared results directly. */
export interface LiveSink {
  /**
   * The transport's name: its subscribers are one kind in a task's fan-out, and kinds with fewer
   * subscribers get each frame first (task-watch-hub.ts). @default the iterated watches' kind
   */
  readonly kind?: string;
  /** True the first time: one subscription per sink (a graphql-ws operation, an SSE request). */
  claim(): boolean;
  /**
   * Writes `result` if it is a shared one (shared-payload.ts); false when it is not (the caller
   * sends it the ordinary way). A connection that is behind may skip a frame that is not `final`.
   */
  write(result: ExecutionResult, final: boolean): boolean;
  /**
   * Takes the subscription's raw results (what the sink did not take, and the end) to consume
   * itself, outside Yoga's per-request wrappers; `args` are the slim arguments they were executed
   * with (for an envelope of its own, enveloped-results.ts). True when taken: Yoga then gets a
   * stream that ends at once. @default not offered (Yoga's stream carries them)
   */
  adopt?(raw: AsyncGenerator<ExecutionResult, void, void>, args: ExecutionArgs): boolean;
}

/** Bytes a connection may have queued before plain frames are skipped for it (frames are absolute). @default 1 MiB */
export const MAX_BEHIND_BYTES = 1024 * 1024;

/** The sink of one graphql-ws operation: `{"id":…,"type":"next","payload":…}` messages on its socket. */
export class WsSink implements LiveSink {
  readonly kind = 'graphql-ws';
  #claimed = false;
  /**
   * The operation id as JSON, the one part of the message that is the subscriber's own. Not the whole
   * message head: built once and kept, that was a concatenated string of 7 parts, ~230 B per subscriber.
   */
  readonly #quotedId: string;

  constructor(
    readonly socket: WebSocket,
    id: string,
  ) {
    this.#quotedId = JSON.stringify(id);
  }

  claim(): boolean {
    if (this.#claimed) return false;
    return (this.#claimed = true);
  }

  write(result: ExecutionResult, final: boolean): boolean {
    const rest = sharedNextRest(result);
    if (rest === undefined) return false;
    const socket = this.socket;
    if (socket.readyState !== socket.OPEN) return true; // it is closing: its operations end with it
    if (!final && socket.bufferedAmount > MAX_BEHIND_BYTES) return true;
    sendMessage(socket, this.#quotedId, rest);
    return true;
  }
}
