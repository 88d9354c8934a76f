/**
 * The PostgreSQL and Redis the replica benchmarks run on: the test suite's servers
 * (TEST_DATABASE_URL, REDIS_URL; by default the CI machines' 127.0.0.1:5432 and :6379). When one
 * does not answer, the rows that need it say "skipped" with the reason instead of failing the run.
 */
import { postgresProblem } from '../test/helpers/databases.js';

export { createTestDatabase } from '../test/helpers/databases.js';
export { REDIS_URL, redisProblem } from '../test/helpers/redis.js';

/** Why PostgreSQL cannot be used, or undefined when it answers. */
export const postgresSkip: string | undefined = postgresProblem;

/** The database URL of a test database on PostgreSQL (created by `createTestDatabase('postgres')`). */
export function urlOf(target: { file: string } | { url: string }): string {
  if (!('url' in target)) throw new Error('expected a PostgreSQL database');
  return target.url;
}
