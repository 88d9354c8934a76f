/**
 * Signals over Redis pub/sub: one channel (`<prefix>signals`) that every replica listens to while
 * it has a local listener. At most once: after the subscribing connection reconnects, listeners get
 * `{ type: 'resync' }` and should re-check the database, since signals may have been lost meanwhile.
 */
import { RedisChannels, type RedisChannelsOptions, type RedisTarget } from './redis-channels.js';
import type { Signal, SignalListener, Signals } from './signals.js';

const CHANNEL = 'signals';

/**
 * Signals over Redis at `target` (its own two connections, closed by `close()`), or over shared
 * `RedisChannels` (left open by `close()`; the channels' prefix and log apply).
 */
export function createRedisSignals(target: RedisTarget | RedisChannels, options: RedisChannelsOptions = {}): Signals {
  const owned = !(target instanceof RedisChannels);
  const channels = target instanceof RedisChannels ? target : new RedisChannels(target, options);
  const subscriptions = new Set<() => void>();
  return {
    publish(signal) {
      channels.publish(CHANNEL, JSON.stringify(signal));
    },
    subscribe(listener: SignalListener) {
      const listening = channels.listen(CHANNEL, {
        message: (payload) => {
          const signal = parse(payload);
          if (signal) listener(signal);
        },
        resync: () => listener({ type: 'resync' }),
      });
      listening.ready.catch(() => undefined); // reported to whoever awaits it
      const close = () => {
        subscriptions.delete(close);
        listening.close();
      };
      subscriptions.add(close);
      return { ready: listening.ready, close };
    },
    async close() {
      for (const close of [...subscriptions]) close();
      if (owned) await channels.close();
    },
  };
}

/** A signal from the channel, or undefined for anything else (another version's signal, garbage). */
function parse(payload: string): Signal | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (v.type === 'wake') return { type: 'wake' };
  if (v.type === 'cancel' && typeof v.taskId === 'string') return { type: 'cancel', taskId: v.taskId };
  return undefined;
}
