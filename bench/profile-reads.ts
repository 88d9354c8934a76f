/**
 * Load for a CPU profile of the read paths, without the bare baseline in the same process:
 * `node --import tsx --conditions=@kontext-gateway/source --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile-reads.ts [status|list] [seconds] [key]`.
 * Seeds 1000 stored tasks, starts the reader service and drives one route with autocannon
 * (in a worker thread, so the profile of the main thread is the service's). With `key`, the
 * tasks belong to an API key and the requests carry it (signed image URLs, the ownership check).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type autocannon from 'autocannon';
import { openDatabase } from '../src/db/database.js';
import { requestRate } from './request-rate.js';
import { seedStoredTasks, startReader } from './stored-tasks.js';

const route = process.argv[2] ?? 'status';
const seconds = Number(process.argv[3] ?? 10);
const dir = await mkdtemp(join(tmpdir(), 'kontext-profile-reads-'));
const dataDir = join(dir, 'data');
try {
  const seeding = await openDatabase({ file: join(dataDir, 'kontext.db') });
  const ids = await seedStoredTasks(seeding, 1000);
  await seeding.destroy();
  const app = await startReader({ dataDir }, () => undefined);
  const list = '{ tasks(first: 50) { edges { node { id status progress description createdAt images { url } } } pageInfo { hasNextPage endCursor } } }';
  const requests: autocannon.Request[] =
    route === 'list'
      ? [{ method: 'POST', path: '/graphql', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: list }) }]
      : ids.map((id) => ({ method: 'GET', path: `/api/task-status/${id}` }));
  const rate = await requestRate(app.url, requests, { durationS: seconds });
  console.log(`${route}: ${rate.toFixed(0)} req/s`);
  await app.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
