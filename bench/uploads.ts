/**
 * Uploads: rounds of 20 concurrent ~10 MB uploads, each with different bytes. Every round posts the
 * same batch to each server (the two services store into folders of their own, so each stores every
 * file; every side keeps what it stored until the end, see KEPT_NOTE), in an order that changes
 * every round (bench/balanced-order.ts: each side in every place, after every other side equally
 * often) so a burst of load on the shared machine spoils one round rather than one side, with a
 * `sync` after each batch; the throughput ratios are the median round's:
 * - the service through REST (`POST /generate-image`, busboy) and through GraphQL multipart
 *   (`generate`, graphql-upload-minimal), each upload received, checked and stored, a task queued;
 * - the checked baseline: plain node:http + busboy + pipeline with the same checks (size limit, type
 *   sniff, SHA-256, fdatasync per file), see bench/plain-upload-server.ts;
 * - the bare baseline: the body piped to a file, nothing else (the figure earlier rounds compared with).
 * Also each route's peak RSS growth over all rounds against the checked baseline's: REST and GraphQL
 * are served by two service processes (same configuration), so each growth is its route's own. Every
 * server is a child process, so its memory and CPU are its own.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServiceProcess, type Child } from '../test/helpers/processes.js';
import { BALANCED_ROUNDS, balancedOrder } from './balanced-order.js';
import { processMemory } from './process-memory.js';
import { cpuSeconds, gcCounts, type GcCounts } from './process-work.js';
import { percentile } from './stats.js';
import type { BenchRow } from './table.js';
import { bigPng, uploadAll, variant, type UploadForm } from './upload-bodies.js';

const execFileAsync = promisify(execFile);
const UPLOADS = 20;
// 12: one balanced set of orders (bench/balanced-order.ts; any multiple of 12 is balanced). On the
// shared 2-core machine single rounds range from half to twice the median ratio, so the median
// wants many of them (it was 8).
const ROUNDS = Number(process.env.UPLOAD_ROUNDS ?? BALANCED_ROUNDS.length);

/**
 * Why the baselines keep their files as the service does. They used to be emptied after each batch,
 * while the service kept everything: the baselines then wrote into blocks just freed, the service into
 * new ones, and on these virtual disks that alone cost the service ~20% (0.78 against 0.98-1.00 with
 * both keeping, same machine, two runs each; it also was why the service's batches slowed as its
 * stored files grew while the baseline's did not).
 */
const KEPT_NOTE = 'every side keeps its files, so all write into new disk blocks';

/*
 * Why each service row names its process's CPU and full collections. Started as plain `node`, the
 * service's ratio was bimodal per process (0.78-0.86 or 1.0-1.1 for a whole run), and so was its
 * CPU: the slow process used ~1.7x the user CPU of the fast one for the same uploads. With
 * --trace-gc, the slow one ran 80-97 full collections over the rounds, started at the old
 * generation's allocation limit (V8 had set it at ~60-75 MB for ~36 MB live, too close to leave a
 * young generation's worth of room) or by a V8 task, while the fast one ran 2, both at start-up, and
 * freed the uploads' 64 KiB socket chunks with young-generation collections only. Whichever service
 * was started first was the slow one, REST or GraphQL; with 6 s idle before the first batch both
 * were. The service now runs with a 128 MB floor under that limit (SERVICE_NODE_FLAGS, as npm start
 * runs it): 0-1 full collections, 1.01-1.14 for both routes in six runs. The figures come from the
 * service's own /metrics (nodejs_gc_duration_seconds), so an operator sees them too.
 */

/** A baseline server of bench/plain-upload-server.ts writing into `dir`; `env` is added to this process's. */
export async function startPlainServer(dir: string, mode: 'checked' | 'bare', env: Record<string, string> = {}): Promise<Child> {
  const entry = new URL('./plain-upload-server.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, ['--import', 'tsx', entry, dir, mode], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`plain-upload-server ${mode} exited with ${code}`)));
    child.stdout.on('data', (c: Buffer) => {
      const m = /listening on (\S+)/.exec(c.toString());
      if (m) resolve(m[1]!);
    });
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { url, process: child, output: () => '', kill: async (signal = 'SIGKILL') => void (child.kill(signal), await exited) };
}

/** A service process's CPU seconds and collections at one moment. */
interface ServiceWork {
  cpu: number;
  gc: GcCounts;
}

interface Side {
  name: string;
  url: string;
  form: UploadForm;
  ms: number[];
}

/** The upload rows: throughput of REST and GraphQL uploads against both baselines, and the service's memory. */
export async function benchUploads(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-up-'));
  const png = await bigPng();
  const children: Child[] = [];
  try {
    // 4 sides keep (rounds + warm-up) batches of 20 files each: refuse to start rather than fill the disk.
    const need = 4 * (ROUNDS + 1) * UPLOADS * png.length * 1.1;
    const disk = await statfs(dir);
    if (disk.bavail * disk.bsize < need) throw new Error(`uploads: needs ${(need / 1e9).toFixed(1)} GB free in ${tmpdir()}, has ${((disk.bavail * disk.bsize) / 1e9).toFixed(1)} GB`);
    // No ComfyUI: the tasks only queue, so the measurement is the upload path alone.
    const startService = (name: string) => startServiceProcess({ DATA_DIR: join(dir, name), COMFYUI_URL: 'http://127.0.0.1:9', MAX_QUEUED_TASKS: '100000' });
    const restService = await startService('rest-data');
    children.push(restService);
    const graphqlService = await startService('graphql-data');
    children.push(graphqlService);
    const checkedDir = join(dir, 'checked');
    const bareDir = join(dir, 'bare');
    await Promise.all([mkdir(checkedDir), mkdir(bareDir)]);
    const checked = await startPlainServer(checkedDir, 'checked');
    const bare = await startPlainServer(bareDir, 'bare');
    children.push(checked, bare);
    const sides: Side[] = [
      { name: 'rest', url: `${restService.url}/generate-image`, form: 'rest', ms: [] },
      { name: 'graphql', url: `${graphqlService.url}/graphql`, form: 'graphql', ms: [] },
      { name: 'checked', url: checked.url, form: 'rest', ms: [] },
      { name: 'bare', url: bare.url, form: 'rest', ms: [] },
    ];
    const services = [restService, graphqlService];
    const before = await Promise.all(services.map((s) => processMemory(s.process.pid!)));
    const checkedBefore = await processMemory(checked.process.pid!);
    /** Posts `bodies` to `side`; resolves with the batch's milliseconds. */
    const batch = async (side: Side, bodies: Buffer[]): Promise<number> => {
      const ms = await uploadAll(side.url, bodies, side.form);
      // Untimed: the bare server never fsyncs, and the kernel's writeback of its 195 MB fell on the
      // next side's clock. Every batch starts with no dirty pages.
      await execFileAsync('sync');
      return ms;
    };
    // Untimed: every side's first batch (code paths compiled, folders made), in the last round's
    // order, so the first round follows the last one's last side as the balanced orders assume.
    const warmUp = Array.from({ length: UPLOADS }, (_, i) => variant(png, `warm-up upload ${i}`));
    for (const k of balancedOrder(ROUNDS - 1)) await batch(sides[k]!, warmUp);
    // What each server process spends on the measured rounds (bench/process-work.ts).
    const work = async (): Promise<{ services: ServiceWork[]; checked: number }> => ({
      services: await Promise.all(services.map(async (s) => ({ cpu: await cpuSeconds(s.process.pid!), gc: await gcCounts(s.url) }))),
      checked: await cpuSeconds(checked.process.pid!),
    });
    const workBefore = await work();
    for (let round = 0; round < ROUNDS; round++) {
      // Made before the round and shared: every side gets the very same bytes, and the client makes
      // no 200 MB of garbage between one side's batch and the next.
      const bodies = Array.from({ length: UPLOADS }, (_, i) => variant(png, `round ${round} upload ${i}`));
      for (const k of balancedOrder(round)) sides[k]!.ms.push(await batch(sides[k]!, bodies));
    }
    const workAfter = await work();
    const after = await Promise.all(services.map((s) => processMemory(s.process.pid!)));
    const checkedAfter = await processMemory(checked.process.pid!);

    const [rest, graphql, checkedSide, bareSide] = sides as [Side, Side, Side, Side];
    const mb = (UPLOADS * png.length) / 1e6;
    const rate = (ms: number) => `${(mb / (ms / 1000)).toFixed(0)} MB/s`;
    const median = (values: number[]) => percentile(values, 50);
    /** The median round's ratio of `side` to `base` (time of the base over time of the side), and their spread. */
    const ratioOf = (side: Side, base: Side) => {
      const ratios = side.ms.map((ms, i) => base.ms[i]! / ms);
      return { ratio: median(ratios), spread: `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}` };
    };
    const rounds = `${ROUNDS} rounds in balanced orders after a warm-up batch each, medians`;
    const rows: BenchRow[] = [];
    const checkedCpu = workAfter.checked - workBefore.checked;
    for (const [i, side] of [rest, graphql].entries()) {
      const [was, now] = [workBefore.services[i]!, workAfter.services[i]!];
      const spent = `its process over the rounds: ${(now.cpu - was.cpu).toFixed(1)} s CPU (the checked baseline's ${checkedCpu.toFixed(1)} s), ${now.gc.major - was.gc.major} full garbage collections, ${(now.gc.seconds - was.gc.seconds).toFixed(2)} s collecting`;
      const route = side === rest ? 'REST POST /generate-image (busboy)' : 'GraphQL multipart generate (graphql-upload-minimal)';
      const vsChecked = ratioOf(side, checkedSide);
      const vsBare = ratioOf(side, bareSide);
      rows.push({
        name: `Uploads: ${UPLOADS} concurrent ${(png.length / 1e6).toFixed(1)} MB, ${route}, throughput`,
        figure: rate(median(side.ms)),
        baseline: `${rate(median(checkedSide.ms))} plain node:http + busboy + pipeline with the same checks (size, type sniff, SHA-256, fdatasync)`,
        ratio: vsChecked.ratio,
        ratioLabel: 'of the baseline',
        note: `${rounds}, ${KEPT_NOTE}, ratio spread ${vsChecked.spread}; ${vsBare.ratio.toFixed(2)} of a bare pipe-to-disk server (${rate(median(bareSide.ms))}, no parsing, hash or fsync); the service also checks the image's end and header, renames it under its hash and records the upload and a task; ${spent}`,
      });
    }
    const checkedGrowth = (checkedAfter.peak - checkedBefore.rss) / 1e6;
    for (const [i, route] of ['REST', 'GraphQL multipart'].entries()) {
      const growth = (after[i]!.peak - before[i]!.rss) / 1e6;
      rows.push({
        name: `Uploads: ${UPLOADS} concurrent ${(png.length / 1e6).toFixed(1)} MB, ${route}, service peak RSS growth`,
        figure: `${growth.toFixed(0)} MB for batches of ${mb.toFixed(0)} MB`,
        baseline: `${checkedGrowth.toFixed(0)} MB checked plain server`,
        ratio: growth / Math.max(1, checkedGrowth),
        ratioLabel: 'x the baseline growth',
        note: `${ROUNDS + 1} batches, a service process of its own; streaming: memory follows the socket buffers and two 256 KiB staging buffers per upload (pooled, staged-writes.ts), not the file sizes`,
      });
    }
    return rows;
  } finally {
    for (const child of children) await child.kill();
    await rm(dir, { recursive: true, force: true });
  }
}
