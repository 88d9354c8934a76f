/**
 * The replica benchmarks (issue 11): GPU feed with 3 replicas and 2 workers, fan-out over 3
 * replicas, task-status reads on PostgreSQL vs SQLite. They need the PostgreSQL and Redis of
 * bench/replica-servers.ts; without them their rows say "skipped: <reason>" and the run goes on.
 * Loaded only when they run, so the other benchmarks never probe PostgreSQL.
 */
import type { BenchRow } from './table.js';

/** A row that did not run, and why. */
function skipped(name: string, reason: string): BenchRow {
  return { name, figure: `skipped: ${reason}`, baseline: '-', ratio: Number.NaN, ratioLabel: '', note: 'set TEST_DATABASE_URL and REDIS_URL to servers that answer' };
}

/** Every replica row, each run or skipped with its reason. */
export async function benchReplicas(): Promise<BenchRow[]> {
  let servers: typeof import('./replica-servers.js');
  try {
    servers = await import('./replica-servers.js');
  } catch (err) {
    // A TEST_DATABASE_URL that is not a URL fails while the module probes PostgreSQL.
    const reason = `TEST_DATABASE_URL: ${(err as Error).message}`;
    return [skipped('GPU feed: 3 replicas on PostgreSQL + Redis', reason), skipped('Fan-out over replicas: graphql-ws delay', reason), skipped('Reads: GET /api/task-status/{id} on PostgreSQL', reason)];
  }
  const { postgresSkip, redisProblem } = servers;
  const both = postgresSkip ?? (await redisProblem());
  const rows: BenchRow[] = [];
  process.stderr.write('  GPU feed with 3 replicas...\n');
  rows.push(both ? skipped('GPU feed: 3 replicas on PostgreSQL + Redis', both) : await (await import('./replica-feed.js')).benchReplicaFeed());
  process.stderr.write('  fan-out over 3 replicas...\n');
  rows.push(both ? skipped('Fan-out over replicas: graphql-ws delay', both) : await (await import('./replica-fanout.js')).benchReplicaFanout());
  process.stderr.write('  reads on PostgreSQL vs SQLite...\n');
  rows.push(postgresSkip ? skipped('Reads: GET /api/task-status/{id} on PostgreSQL', postgresSkip) : await (await import('./replica-reads.js')).benchReplicaReads());
  return rows;
}
