/**
 * The cap on long-lived GraphQL connections (graphql-ws sockets plus SSE streams), counted together
 * so that neither transport can hold every file descriptor and subscription of the process.
 */
import type { IncomingMessage } from 'node:http';

/** Something that ends with a `close` event (a TCP socket, an HTTP response). */
interface Closable {
  once(event: 'close', listener: () => void): unknown;
}

/** Counts open live connections against MAX_LIVE_CONNECTIONS. */
export class LiveConnections {
  #open = 0;

  /** @param max connections open at once (MAX_LIVE_CONNECTIONS). @default 10_000 */
  constructor(readonly max = 10_000) {}

  /** Connections held now. */
  get open(): number {
    return this.#open;
  }

  /** Counts one connection until `until` emits `close`; false (nothing counted) when the cap is reached. */
  tryHold(until: Closable): boolean {
    if (this.#open >= this.max) return false;
    this.#open++;
    until.once('close', () => this.#open--);
    return true;
  }

  /** The sentence for a refused connection. */
  get refusal(): string {
    return `Too many live connections (at most ${this.max}, MAX_LIVE_CONNECTIONS); try again later`;
  }
}

/** Whether a GraphQL request asks for an SSE stream (Yoga answers it with `text/event-stream`). */
export function wantsEventStream(req: IncomingMessage): boolean {
  return (req.headers.accept ?? '').includes('text/event-stream');
}
