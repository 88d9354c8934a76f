/**
 * The PostgreSQL and Redis the replica benchmarks run on: the test suite's servers
 * (TEST_DATABASE_URL, REDIS_URL; by default the CI machines' 127.0.0.1:5432 and :6379). When one
 * does not answer, the rows that need it say "skipped" with the reason instead of failing the run.
 */
import { Redis } from 'ioredis';
import { postgresProblem } from '../test/helpers/databases.js';
import { REDIS_URL } from '../test/helpers/redis.js';

export { createTestDatabase } from '../test/helpers/databases.js';
export { REDIS_URL };

/** Why PostgreSQL cannot be used, or undefined when it answers. */
export const postgresSkip: string | undefined = postgresProblem;

/** Why Redis cannot be used, or undefined when it answers PING. */
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

/** The database URL of a test database on PostgreSQL (created by `createTestDatabase('postgres')`). */
export function urlOf(target: { file: string } | { url: string }): string {
  if (!('url' in target)) throw new Error('expected a PostgreSQL database');
  return target.url;
}
