/**
 * `npm run bench`: every benchmark against the simulator, printed as one table. Figures are
 * measured side by side with their baselines in the same run, since the machines are shared
 * and noisy and absolute times alone mean little.
 */
import { cpus } from 'node:os';
import { benchAuth } from './auth.js';
import { benchFairQueue } from './fair-queue.js';
import { benchFanout } from './fanout.js';
import { benchFanoutManyTasks } from './fanout-many-tasks.js';
import { benchGpuFeed } from './gpu-feed.js';
import { benchGrowth } from './growth.js';
import { benchThumbnails } from './thumbnails.js';
import { benchWebhooks } from './webhooks.js';
import { benchOverhead } from './overhead.js';
import { benchReads } from './reads.js';
import { benchReplicas } from './replicas.js';
import { benchUploads } from './uploads.js';
import { formatTable, type BenchRow } from './table.js';

const started = performance.now();
const rows: BenchRow[] = [];
// `npm run bench -- upload` runs only the benchmarks whose name contains "upload".
const only = process.argv[2]?.toLowerCase();
const all: [string, () => Promise<BenchRow[]>][] = [
  ['GPU feed', benchGpuFeed],
  ['overhead', benchOverhead],
  ['fan-out', benchFanout],
  ['fan-out many tasks', benchFanoutManyTasks],
  ['uploads', benchUploads],
  ['reads', benchReads],
  ['replicas', benchReplicas],
  ['auth', benchAuth],
  ['fair queue', benchFairQueue],
  ['thumbnails', benchThumbnails],
  ['webhooks', benchWebhooks],
  ['growth', benchGrowth],
];
const benches = all.filter(([name]) => !only || name.toLowerCase().includes(only));
for (const [name, run] of benches) {
  process.stderr.write(`running ${name}...\n`);
  rows.push(...(await run()));
}
console.log(`Kontext Gateway benchmarks, ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}\n`);
console.log(formatTable(rows));
console.log(`\n(${((performance.now() - started) / 1000).toFixed(0)} s)`);
process.exit(0);
