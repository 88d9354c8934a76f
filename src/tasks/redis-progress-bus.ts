/**
 * The progress bus over Redis pub/sub, for several replicas: a frame published on any replica
 * reaches the subscribers of its task on every replica, in publish order (one publishing connection
 * per process, and Redis keeps a connection's messages in order).
 *
 * One channel per task (`<prefix>progress:<taskId>`), subscribed while this process has a
 * subscriber of that task. Frames go through Redis even to subscribers in the publishing process,
 * so every subscriber sees one order.
 *
 * Redis pub/sub is at most once. Two windows are covered: SUBSCRIBE takes a round trip (a
 * subscription's `ready` resolves once Redis confirmed it, so a caller awaits it before reading the
 * snapshot), and frames published while the subscribing connection is down are lost (after the
 * reconnect every subscription yields a re-sync notice: re-read the snapshot from the database).
 */
import { createFrameSubscription, type ProgressBus, type FrameSubscription } from './progress-bus.js';
import type { ProgressFrame } from './progress-frame.js';
import { RedisChannels, type RedisChannelsOptions, type RedisTarget } from './redis-channels.js';

/** Options of {@link createRedisProgressBus}. */
export interface RedisBusOptions extends RedisChannelsOptions {
  /** Frames kept per slow subscriber before the oldest are dropped (frames are absolute, so the next one repairs it). @default 256 */
  maxBuffered?: number;
}

/**
 * A bus over Redis at `target` (its own two connections, closed by `close()`), or over shared
 * `RedisChannels` (left open by `close()`; the channels' prefix and log apply).
 */
export function createRedisProgressBus(target: RedisTarget | RedisChannels, options: RedisBusOptions = {}): ProgressBus {
  const maxBuffered = options.maxBuffered ?? 256;
  const owned = !(target instanceof RedisChannels);
  const channels = target instanceof RedisChannels ? target : new RedisChannels(target, options);
  const open = new Set<FrameSubscription>();
  // One message reaches every subscription of its task in turn: parsed once, every subscriber gets
  // the same frame object, so subscribers of one operation share its execution (shared-execution.ts).
  let last: { payload: string; frame: ProgressFrame | undefined } | undefined;
  const parseOnce = (payload: string) => (last?.payload === payload ? last.frame : (last = { payload, frame: parseFrame(payload) }).frame);
  return {
    publish(frame: ProgressFrame) {
      channels.publish(channelOf(frame.taskId), JSON.stringify(frame));
    },
    subscriberCount: () => open.size,
    subscribe(taskId) {
      // Messages arrive from socket events, never within listen(): `queue` is set by then.
      const listening = channels.listen(channelOf(taskId), {
        message: (payload) => {
          const frame = parseOnce(payload);
          if (frame) queue.push(frame);
        },
        resync: () => queue.push({ type: 'resync' }),
      });
      const queue = createFrameSubscription({
        maxBuffered,
        ready: listening.ready,
        onClose: () => {
          open.delete(queue.subscription);
          listening.close();
        },
      });
      open.add(queue.subscription);
      return queue.subscription;
    },
    async close() {
      for (const sub of [...open]) sub.close();
      if (owned) await channels.close();
    },
  };
}

/** A frame from the channel, or undefined for what is not one (a throw here would reach ioredis' socket handler). */
function parseFrame(payload: string): ProgressFrame | undefined {
  try {
    const value = JSON.parse(payload) as unknown;
    if (typeof value === 'object' && value !== null && 'seq' in value && typeof value.seq === 'number') return value as ProgressFrame;
  } catch {
    // not JSON: ignored like any foreign message
  }
  return undefined;
}

function channelOf(taskId: string): string {
  return `progress:${taskId}`;
}
