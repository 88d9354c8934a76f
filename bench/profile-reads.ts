/**
 * Load for a CPU profile of the read paths, one server at a time (bench/reads.ts runs the service
 * and its bare baseline in one process, which mixes their profiles):
 * `node --import tsx --conditions=@kontext-gateway/source --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile-reads.ts [status|list] [seconds] [bare]`.
 * Seeds 1000 stored tasks, starts the reader service (or, with `bare`, the bare baseline server)
 * and drives one route with autocannon in a worker thread, so the main thread's profile
 * (the largest .cpuprofile) is the server's.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type autocannon from 'autocannon';
import { openDatabase } from '../src/db/database.js';
import { startBareServer } from './bare-reads-server.js';
import { requestRate } from './request-rate.js';
import { seedStoredTasks, startReader } from './stored-tasks.js';

const route = process.argv[2] ?? 'status';
const seconds = Number(process.argv[3] ?? 10);
const bare = process.argv[4] === 'bare';
const dir = await mkdtemp(join(tmpdir(), 'kontext-profile-reads-'));
const dataDir = join(dir, 'data');
const file = join(dataDir, 'kontext.db');
try {
  const seeding = await openDatabase({ file });
  const ids = await seedStoredTasks(seeding, 1000);
  await seeding.destroy();
  const server = bare ? await startBareServer(file) : await startReader({ dataDir }, () => undefined);
  const list = '{ tasks(first: 50) { edges { node { id status progress description createdAt images { url } } } pageInfo { hasNextPage endCursor } } }';
  const requests: autocannon.Request[] =
    route === 'list'
      ? [{ method: 'POST', path: '/graphql', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: list }) }]
      : ids.map((id) => ({ method: 'GET', path: `/api/task-status/${id}` }));
  const rate = await requestRate(server.url, requests, { durationS: seconds });
  console.log(`${route}${bare ? ' (bare)' : ''}: ${rate.toFixed(0)} req/s`);
  await server.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
