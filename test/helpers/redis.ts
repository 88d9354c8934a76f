/**
 * Redis for tests and benchmarks: the server at REDIS_URL (default redis://127.0.0.1:6379). Tests
 * that need it call `redisAvailable()` once: in CI an unreachable Redis fails the file; elsewhere
 * the file is skipped with one console line. The benchmarks take `redisProblem()`'s reason for
 * their skipped rows. Pub/sub channels are global to a server, so every test uses its own prefix
 * and connection name (`isolated()`).
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';

/** The Redis the tests use. @default 'redis://127.0.0.1:6379' */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Why Redis at REDIS_URL cannot be used (one line naming it and the cause), or undefined when it answers PING. */
export async function redisProblem(): Promise<string | undefined> {
  const probe = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  let cause: Error | undefined;
  probe.on('error', (err: Error) => (cause ??= err)); // the socket's reason beats ioredis' 'Connection is closed'
  try {
    await probe.connect();
    await probe.ping();
    return undefined;
  } catch (err) {
    return `Redis at ${REDIS_URL} does not answer (${(cause ?? (err as Error)).message})`;
  } finally {
    probe.disconnect();
  }
}

/** True when Redis answers PING; false (after one console line) when not; throws in CI. */
export async function redisAvailable(suite: string): Promise<boolean> {
  const reason = await redisProblem();
  if (reason === undefined) return true;
  if (process.env.CI) throw new Error(`${suite}: ${reason}; CI must run these tests against a real Redis`);
  console.log(`SKIPPED ${suite}: ${reason}; set REDIS_URL or start Redis to run them`);
  return false;
}

/** A channel prefix and connection name no other test (or test run) uses. */
export function isolated(): { prefix: string; name: string } {
  const id = randomUUID().slice(0, 8);
  return { prefix: `kontext-test-${id}:`, name: `kontext-test-${id}` };
}

/** A plain connection for inspecting the server (PUBSUB, CLIENT); `disconnect()` it after. */
export function adminConnection(): Redis {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
}

/** Subscribers of `channel` on the whole server (PUBSUB NUMSUB). */
export async function numsub(admin: Redis, channel: string): Promise<number> {
  const reply = (await admin.call('PUBSUB', 'NUMSUB', channel)) as [string, number];
  return Number(reply[1]);
}

/** Channels with subscribers whose name starts with `prefix` (PUBSUB CHANNELS). */
export async function channelsWithPrefix(admin: Redis, prefix: string): Promise<string[]> {
  return (await admin.call('PUBSUB', 'CHANNELS', `${prefix}*`)) as string[];
}

/** The ids of the connections named `name` (CLIENT LIST), to kill exactly those. */
export async function clientIds(admin: Redis, name: string): Promise<string[]> {
  const list = (await admin.call('CLIENT', 'LIST')) as string;
  return list
    .split('\n')
    .filter((line) => line.split(' ').includes(`name=${name}`))
    .map((line) => /(?:^|\s)id=(\d+)/.exec(line)?.[1])
    .filter((id): id is string => id !== undefined);
}

/** Drops the connection named `name` the way a network failure or a Redis restart would. */
export async function killClient(admin: Redis, name: string): Promise<void> {
  const ids = await clientIds(admin, name);
  if (ids.length !== 1) throw new Error(`expected one connection named ${name}, found ${ids.length}`);
  await admin.call('CLIENT', 'KILL', 'ID', ids[0]!);
}
