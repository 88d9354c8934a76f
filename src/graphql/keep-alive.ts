/**
 * One keep-alive timer for all the connections of a transport (a timer per connection would cost
 * each subscriber memory). A round visits every connection, KEEP_ALIVE_BATCH of them at a time:
 * 10 000 graphql-ws pings in one turn held the loop for 100-270 ms in the many-tasks fan-out
 * bench's profile, and every frame due meanwhile waited for them. The batches are spread over half
 * the interval: sent within a few turns, 10 000 pings (and their 10 000 pongs) reached the far end
 * at once, and a client holding many connections (a proxy; the bench's one process) stalled for
 * 400 ms answering them while frames waited in its sockets.
 */

/** Connections visited per batch (about a millisecond of pings). */
export const KEEP_ALIVE_BATCH = 64;

/** The share of the interval a round's batches are spread over. */
export const KEEP_ALIVE_SPREAD = 0.5;

/** A running keep-alive. */
export interface KeepAlive {
  /** Ends the timer and the round under way. */
  stop(): void;
}

/**
 * Every `interval` ms (unless the last round is still going), visits each of `connections()` in
 * batches, evenly spaced over KEEP_ALIVE_SPREAD of the interval (the next turn when under a
 * millisecond apart). A Set's iterator is live: what is deleted meanwhile is skipped, what is
 * added is reached. Neither the timer nor the batches keep the process alive.
 */
export function keepAliveRounds<T>(interval: number, connections: () => ReadonlySet<T>, visit: (connection: T) => void): KeepAlive {
  let cancelBatch: (() => void) | undefined;
  const round = (pending: Iterator<T>, spacingMs: number) => {
    cancelBatch = undefined;
    for (let i = 0; i < KEEP_ALIVE_BATCH; i++) {
      const next = pending.next();
      if (next.done) return;
      visit(next.value);
    }
    if (spacingMs >= 1) {
      const timer = setTimeout(round, spacingMs, pending, spacingMs).unref();
      cancelBatch = () => clearTimeout(timer);
    } else {
      const immediate = setImmediate(round, pending, spacingMs).unref();
      cancelBatch = () => clearImmediate(immediate);
    }
  };
  const timer = setInterval(() => {
    if (cancelBatch) return;
    const all = connections();
    const batches = Math.ceil(all.size / KEEP_ALIVE_BATCH);
    round(all[Symbol.iterator](), batches > 1 ? (interval * KEEP_ALIVE_SPREAD) / batches : 0);
  }, interval).unref();
  return {
    stop() {
      clearInterval(timer);
      cancelBatch?.();
      cancelBatch = undefined;
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
