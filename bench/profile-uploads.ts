/**
 * A CPU profile of the service's upload path under the upload benchmark's load:
 * `node --import tsx --conditions=@kontext-gateway/source bench/profile-uploads.ts [rest|graphql|checked] [batches] [profile dir]`.
 * Starts the service (or, for `checked`, the benchmark's checked baseline, bench/plain-upload-server.ts,
 * to compare side by side) with bench/cpu-profile-preload.mjs, posts `batches` rounds of 20 distinct
 * ~10 MB PNGs, stops it with SIGTERM (so the profile is written) and prints the functions with the
 * most self time. The .cpuprofile stays in the profile dir for a closer look.
 */
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServiceProcess, type Child } from '../test/helpers/processes.js';
import { startPlainServer } from './uploads.js';
import { bigPng, uploadAll, variant, type UploadForm } from './upload-bodies.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

/** Self time per function (name, file and line) in percent of all samples, largest first. */
function selfTimes(profile: { nodes: ProfileNode[] }): Array<[string, number]> {
  const byFunction = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    total += hits;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? `${url.replace(/^.*\/node_modules\//, '').replace(/^.*\/(src|bench)\//, '$1/')}:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'} ${where}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + hits);
  }
  return [...byFunction].map(([k, v]): [string, number] => [k, (100 * v) / total]).sort((a, b) => b[1] - a[1]);
}

const target = process.argv[2] ?? 'rest';
if (!['rest', 'graphql', 'checked'].includes(target)) throw new Error('usage: profile-uploads.ts [rest|graphql|checked] [batches] [profile dir]');
const form: UploadForm = target === 'graphql' ? 'graphql' : 'rest';
const batches = Number(process.argv[3] ?? 3);
const dir = await mkdtemp(join(tmpdir(), 'kontext-profile-uploads-'));
const profileDir = process.argv[4] ?? join(dir, 'profile');
try {
  await mkdir(profileDir, { recursive: true }); // the preload writes into it, it does not make it
  const profiled = { NODE_OPTIONS: `--import ${new URL('./cpu-profile-preload.mjs', import.meta.url).pathname}`, CPU_PROFILE_DIR: profileDir };
  let service: Child;
  if (target === 'checked') {
    await mkdir(join(dir, 'checked'), { recursive: true });
    service = await startPlainServer(join(dir, 'checked'), 'checked', profiled);
  } else {
    service = await startServiceProcess({ DATA_DIR: join(dir, 'data'), COMFYUI_URL: 'http://127.0.0.1:9', MAX_QUEUED_TASKS: '100000', ...profiled });
  }
  const png = await bigPng();
  const path = target === 'checked' ? '' : form === 'rest' ? '/generate-image' : '/graphql';
  let sent = 0;
  for (let b = 0; b < batches; b++) {
    const ms = await uploadAll(`${service.url}${path}`, Array.from({ length: 20 }, () => variant(png, `upload ${sent++}`)), form);
    console.log(`batch ${b + 1}: ${((20 * png.length) / 1e6 / (ms / 1000)).toFixed(0)} MB/s`);
  }
  await service.kill('SIGTERM');
  const [file] = (await readdir(profileDir)).filter((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no profile written in ${profileDir}`);
  const top = selfTimes(JSON.parse(await readFile(join(profileDir, file), 'utf8')) as { nodes: ProfileNode[] });
  for (const [name, pct] of top.slice(0, 30)) console.log(`${pct.toFixed(1).padStart(5)}%  ${name}`);
} finally {
  if (!process.argv[4]) await rm(dir, { recursive: true, force: true });
}
