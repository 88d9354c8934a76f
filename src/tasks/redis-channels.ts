/**
 * Redis pub/sub for one process: one connection publishes, one connection subscribes, and messages
 * fan out in-process to local listeners. A channel is subscribed while it has a local listener.
 *
 * Redis pub/sub delivers at most once: a message published while the subscribing connection is
 * down is gone. So after a reconnect the channels are subscribed again and, once Redis confirmed
 * that, every listener is told (`onResync`) to recover what it may have missed from its source of
 * truth. SUBSCRIBE takes a round trip: `listen()` returns a `ready` promise that resolves when Redis
 * confirmed it, after which every message published is delivered.
 *
 * Pub/sub channels are global to a Redis server (not scoped by the db index): `prefix` keeps
 * deployments (and test runs) sharing one server apart.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../log.js';

/** Where Redis is: a `redis://` URL or ioredis options. */
export type RedisTarget = string | RedisOptions;

/** Options of {@link RedisChannels}. */
export interface RedisChannelsOptions {
  /** Put before every channel name. @default 'kontext:' */
  prefix?: string;
  /** Names the connections in CLIENT LIST as `<name>:pub` and `<name>:sub`. @default 'kontext' */
  name?: string;
  /** Where connection and publish errors go. @default none (errors are dropped; reconnects are automatic) */
  log?: Logger;
}

/** One local listener of a channel. */
export interface ChannelListener {
  message(payload: string): void;
  /** Messages may have been lost while the connection was down; called after listening again. */
  resync(): void;
}

/** A listener's registration. */
export interface ChannelListening {
  /** Resolves when Redis confirmed the subscription; rejects if it failed. */
  ready: Promise<void>;
  /** Stops listening; the channel is unsubscribed when its last listener stops. */
  close(): void;
}

interface Channel {
  listeners: Set<ChannelListener>;
  ready: Promise<void>;
}

/** A process's two Redis connections and its local listeners per channel; share one between the bus and the signals. */
export class RedisChannels {
  readonly prefix: string;
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly channels = new Map<string, Channel>();
  private readonly log: Logger | undefined;
  private connectedBefore = false;
  private closed = false;

  constructor(target: RedisTarget, options: RedisChannelsOptions = {}) {
    this.prefix = options.prefix ?? 'kontext:';
    this.log = options.log;
    const name = options.name ?? 'kontext';
    this.pub = connect(target, { connectionName: `${name}:pub` });
    // Our own re-subscription (below) knows when it is done, ioredis' automatic one does not say.
    this.sub = connect(target, { connectionName: `${name}:sub`, autoResubscribe: false });
    for (const [role, conn] of [['pub', this.pub], ['sub', this.sub]] as const) {
      conn.on('error', (err: Error) => this.log?.warn('redis connection error', { connection: role, error: err.message }));
    }
    this.sub.on('message', (channel: string, payload: string) => {
      const entry = this.channels.get(channel);
      if (!entry) return; // unsubscribed meanwhile
      for (const listener of [...entry.listeners]) listener.message(payload);
    });
    this.sub.on('ready', () => {
      if (this.connectedBefore) this.resubscribe();
      this.connectedBefore = true;
    });
  }

  /**
   * Resolves once Redis answers on both connections; rejects within `timeoutMs` with one line naming
   * REDIS_URL (for the start: an unreachable Redis stops it). @default timeoutMs 5000
   */
  async check(timeoutMs = 5000): Promise<void> {
    const answer = Promise.all([this.pub.ping(), this.sub.status === 'ready' ? Promise.resolve() : new Promise<void>((r) => this.sub.once('ready', () => r()))]);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    try {
      await Promise.race([answer, timeout]);
    } catch (err) {
      throw new Error(`REDIS_URL: cannot reach Redis: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Both connections are up (for /health). */
  get connected(): boolean {
    return this.pub.status === 'ready' && this.sub.status === 'ready';
  }

  /** Publishes `payload` on `channel` (without the prefix); messages of one process keep their order. */
  publish(channel: string, payload: string): void {
    if (this.closed) return;
    this.pub.publish(this.prefix + channel, payload).catch((err: Error) => this.log?.warn('redis publish failed', { channel, error: err.message }));
  }

  /** Delivers the messages of `channel` (without the prefix) to `listener` until `close()`. */
  listen(channel: string, listener: ChannelListener): ChannelListening {
    const full = this.prefix + channel;
    if (this.closed) return { ready: Promise.reject(new Error('Redis channels are closed')), close: () => undefined };
    let entry = this.channels.get(full);
    if (!entry) {
      const created: Channel = { listeners: new Set(), ready: this.sub.subscribe(full).then(() => undefined) };
      // A failed SUBSCRIBE must not stay cached: the next listener tries again.
      created.ready.catch(() => {
        if (this.channels.get(full) === created) this.channels.delete(full);
      });
      this.channels.set(full, created);
      entry = created;
    }
    entry.listeners.add(listener);
    const current = entry;
    let closed = false;
    return {
      ready: current.ready,
      close: () => {
        if (closed) return;
        closed = true;
        current.listeners.delete(listener);
        if (current.listeners.size > 0 || this.channels.get(full) !== current) return;
        this.channels.delete(full);
        if (!this.closed) this.sub.unsubscribe(full).catch((err: Error) => this.log?.warn('redis unsubscribe failed', { channel, error: err.message }));
      },
    };
  }

  /** Channels this process listens to (with the prefix), for tests and metrics. */
  listening(): string[] {
    return [...this.channels.keys()];
  }

  /** Closes both connections at once (pending publishes are sent if Redis is reachable). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.channels.clear();
    this.sub.disconnect();
    // QUIT flushes queued publishes; on a connection that is down it would wait for a reconnect.
    if (this.pub.status === 'ready') await this.pub.quit().catch(() => this.pub.disconnect());
    else this.pub.disconnect();
  }

  /** After a reconnect: listen again, then tell every listener that messages may be lost. */
  private resubscribe(): void {
    const names = [...this.channels.keys()];
    if (names.length === 0) return;
    this.sub.subscribe(...names).then(
      () => {
        for (const name of names) {
          const entry = this.channels.get(name);
          if (entry) for (const listener of [...entry.listeners]) listener.resync();
        }
      },
      // The connection dropped again: the next 'ready' retries.
      (err: Error) => this.log?.warn('redis re-subscribe failed', { channels: names.length, error: err.message }),
    );
  }
}

function connect(target: RedisTarget, extra: RedisOptions): Redis {
  return typeof target === 'string' ? new Redis(target, extra) : new Redis({ ...target, ...extra });
}
