/**
 * One keep-alive timer for all the connections of a transport (a timer per connection would cost
 * each subscriber memory). A round visits every connection, KEEP_ALIVE_BATCH of them per turn of
 * the event loop: 10 000 graphql-ws pings in one turn held the loop for 100-270 ms in the
 * many-tasks fan-out bench's profile, and every frame due meanwhile waited for them.
 */

/** Connections visited per turn of the event loop (about a millisecond of pings). */
export const KEEP_ALIVE_BATCH = 64;

/** A running keep-alive. */
export interface KeepAlive {
  /** Ends the timer and the round under way. */
  stop(): void;
}

/**
 * Every `interval` ms (unless the last round is still going), visits each of `connections()` in
 * batches. A Set's iterator is live: what is deleted meanwhile is skipped, what is added is reached.
 * Neither the timer nor the batches keep the process alive.
 */
export function keepAliveRounds<T>(interval: number, connections: () => Iterable<T>, visit: (connection: T) => void): KeepAlive {
  let batch: NodeJS.Immediate | undefined;
  const round = (pending: Iterator<T>) => {
    batch = undefined;
    for (let i = 0; i < KEEP_ALIVE_BATCH; i++) {
      const next = pending.next();
      if (next.done) return;
      visit(next.value);
    }
    batch = setImmediate(round, pending).unref();
  };
  const timer = setInterval(() => {
    if (!batch) round(connections()[Symbol.iterator]());
  }, interval).unref();
  return {
    stop() {
      clearInterval(timer);
      clearImmediate(batch);
      batch = undefined;
    },
  };
}

/** Interval of the SSE keep-alive comment. @default 12 s (300 ms under NODE_ENV=test) */
export const SSE_PING_MS = process.env['NODE_ENV'] === 'test' ? 300 : 12_000;

/** Connections under one keep-alive: started by the first `add`, stopped when the last one leaves. */
export class KeepAliveSet<T> {
  readonly #members = new Set<T>();
  #running: KeepAlive | undefined;

  /** `visit`: what a round does to each member (it may `delete` it). */
  constructor(
    private readonly interval: number,
    private readonly visit: (member: T) => void,
  ) {}

  add(member: T): void {
    this.#members.add(member);
    this.#running ??= keepAliveRounds(this.interval, () => this.#members, this.visit);
  }

  delete(member: T): void {
    if (!this.#members.delete(member) || this.#members.size > 0) return;
    this.#running?.stop();
    this.#running = undefined;
  }
}
