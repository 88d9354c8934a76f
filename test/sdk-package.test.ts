/**
 * The SDK as people install it: the tarball `npm pack` makes of packages/sdk, installed into an empty
 * project (from the npm registry or npm's own cache), a consumer type-checked by `tsc --noEmit` under
 * `strict`, then run against a real service: packages/sdk/examples/generate-watch-read.ts generates,
 * watches over graphql-ws and reads a task with an API key.
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../src/auth/create-api-key.js';
import { makeImage, PNG_SIGNATURE } from './helpers/images.js';
import { startStack, until, type Stack } from './helpers/stack.js';

const ROOT = resolve(import.meta.dirname, '..');
const SDK = join(ROOT, 'packages/sdk');
const exec = promisify(execFile);
// npm installs and two tsc runs on a shared 2-core machine: generous, never a timing assertion.
const SLOW = 300_000;

/** The version this repository installed, so the consumer's install is served from npm's cache. */
async function installed(name: string): Promise<string> {
  return (JSON.parse(await readFile(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

/** npm's environment without what `npm test` set for this package (its workspace, lifecycle, prefix). */
function npmEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (/^npm_(package_|lifecycle_|config_(workspaces?|prefix|global)$)/i.test(key)) delete env[key];
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
}

const CONSUMER_TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    // A Node app: no DOM, so the package's types must hold with @types/node alone; every .d.ts checked.
    lib: ['ES2022'],
    types: ['node'],
    strict: true,
    skipLibCheck: false,
    verbatimModuleSyntax: true,
    erasableSyntaxOnly: true,
    noEmit: true,
  },
  files: ['main.ts', 'types.ts'],
};

// Calls the types must refuse: an unused @ts-expect-error fails tsc, so types that decayed to `any` fail too.
const TYPE_CHECKS = `import { createKontextClient, type GenerateResult, type KontextClientOptions, type TaskStatus } from '@kontext-gateway/sdk';
export function wrongCalls(result: GenerateResult): void {
  const kontext = createKontextClient({ url: 'http://127.0.0.1:9000/graphql' });
  // @ts-expect-error the instruction is a string
  void kontext.generate({ referenceImage: new Uint8Array(), description: 42 });
  // @ts-expect-error a reference image is required
  void kontext.generate({ description: 'make it night' });
  // @ts-expect-error not a TaskStatus
  const status: TaskStatus = 'DONE';
  // @ts-expect-error url is required
  const options: KontextClientOptions = {};
  // @ts-expect-error only GenerateSuccess has a task
  void result.task;
  if (result.__typename === 'QuotaExceededError') {
    const seconds: number = result.retryAfterSeconds;
    void seconds;
  }
  void status;
  void options;
}
`;

let work: string;
let consumer: string;
let packed: { filename: string; files: { path: string }[] };
let stack: Stack;
let apiKey: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'kontext-sdk-pack-'));
  // Packed from a copy: prepack rebuilds dist/, and the repo's dist/ must not vanish under test files
  // running beside this one. The copy's node_modules is the repo's, for tsc and the SDK's types.
  const copy = join(work, 'sdk');
  await cp(SDK, copy, { recursive: true, filter: (src) => !/[/\\](dist|node_modules)$|\.tgz$/.test(src) });
  await symlink(join(ROOT, 'node_modules'), join(work, 'node_modules'), 'dir');
  const { stdout } = await exec('npm', ['pack', '--json', '--pack-destination', work], { cwd: copy, env: npmEnv(), maxBuffer: 1 << 24 });
  packed = (JSON.parse(stdout) as (typeof packed)[])[0]!;

  // The consumer lives in its own temp folder: no node_modules above it can stand in for the install.
  consumer = await mkdtemp(join(tmpdir(), 'kontext-sdk-consumer-'));
  await writeFile(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  const pins = await Promise.all(['ws', 'typescript', '@types/ws', '@types/node'].map(async (n) => `${n}@${await installed(n)}`));
  await exec('npm', ['install', '--prefer-offline', '--ignore-scripts', '--loglevel=error', join(work, packed.filename), ...pins], { cwd: consumer, env: npmEnv(), maxBuffer: 1 << 24 });
  await writeFile(join(consumer, 'tsconfig.json'), JSON.stringify(CONSUMER_TSCONFIG, null, 2));
  await cp(join(SDK, 'examples/generate-watch-read.ts'), join(consumer, 'main.ts'));
  await writeFile(join(consumer, 'types.ts'), TYPE_CHECKS);
  await writeFile(join(consumer, 'car.png'), await makeImage('png', 320, 240));

  stack = await startStack();
  ({ key: apiKey } = await createApiKey(stack.app.db, { name: 'sdk-package' }));
  // Replicas learn that keys exist within a moment: wait until a request without one is refused.
  await until('the service requires API keys', async () => (await fetch(`${stack.app.url}/api/task-status/none`)).status === 401);
}, SLOW);

afterAll(async () => {
  await stack?.close();
  for (const dir of [work, consumer]) if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs the consumer: compiled by tsc on Node 20, as TypeScript (type stripping) on 22.6+. */
async function runConsumer(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const strip = major > 22 || (major === 22 && minor >= 6);
  if (!strip) await exec(process.execPath, ['node_modules/typescript/bin/tsc', '-p', '.', '--noEmit', 'false', '--outDir', 'out'], { cwd: consumer });
  const args = strip ? ['--experimental-strip-types', '--no-warnings', 'main.ts', 'car.png', 'make it night'] : ['out/main.js', 'car.png', 'make it night'];
  try {
    const { stdout, stderr } = await exec(process.execPath, args, { cwd: consumer, env: { ...process.env, ...env }, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

describe('the SDK package', () => {
  it('packs dist/ (ESM and .d.ts), its README and manifest, and nothing else; no node: imports in its JavaScript', async () => {
    const paths = packed.files.map((f) => f.path).sort();
    expect(paths).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/client.js', 'dist/client.d.ts']));
    expect(paths.filter((p) => !/^(package\.json|README\.md|dist\/.+\.(js|d\.ts))$/.test(p))).toEqual([]);

    const installedSdk = join(consumer, 'node_modules/@kontext-gateway/sdk');
    const manifest = JSON.parse(await readFile(join(installedSdk, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; type: string };
    expect(manifest.type).toBe('module');
    expect(Object.keys(manifest.dependencies).sort()).toEqual(['@graphql-typed-document-node/core', 'graphql-ws']);
    const scripts = (await readdir(join(installedSdk, 'dist'), { recursive: true })).filter((f) => f.endsWith('.js'));
    for (const file of scripts) {
      const code = await readFile(join(installedSdk, 'dist', file), 'utf8');
      expect(code, file).not.toMatch(/from ['"]node:|require\(/);
    }
  });

  it('type-checks a consumer with tsc --noEmit under strict, against the installed .d.ts only', async () => {
    const tsc = exec(process.execPath, ['node_modules/typescript/bin/tsc', '-p', '.'], { cwd: consumer });
    await expect(tsc.catch((err: { stdout?: string }) => Promise.reject(new Error(`tsc failed:\n${err.stdout ?? String(err)}`)))).resolves.toBeDefined();
  }, SLOW);

  it('generates two images, watches them over graphql-ws and reads the task from a real service with an API key', async () => {
    const { code, stdout, stderr } = await runConsumer({ KONTEXT_URL: stack.app.url, KONTEXT_API_KEY: apiKey });
    expect(code, stderr).toBe(0);
    const summary = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      status: string;
      progress: number;
      frames: [number, string, number][];
      images: { index: number; width: number; height: number; url: string; bytes: number }[];
      files: { index: number; file: string; bytes: number }[];
    };
    expect(summary).toMatchObject({ status: 'COMPLETED', progress: 100 });
    const seqs = summary.frames.map(([seq]) => seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(summary.frames.map(([, status]) => status)).toContain('PROCESSING');
    expect(summary.frames.at(-1)).toEqual([expect.any(Number), 'COMPLETED', 100]);
    expect(summary.images.map((i) => [i.index, i.width, i.height])).toEqual([
      [0, 256, 256],
      [1, 256, 256],
    ]);
    // With keys in force the URLs are signed, and they fetch without the key.
    for (const image of summary.images) expect(image.url).toMatch(/[?&]sig=/);
    for (const { index, file, bytes } of summary.files) {
      const written = await readFile(join(consumer, file));
      expect(written.subarray(0, 8)).toEqual(PNG_SIGNATURE);
      expect(written.length).toBe(bytes);
      expect(bytes).toBe(summary.images[index]!.bytes);
    }
    expect(stdout).toMatch(/frame \d+ PROCESSING \d+% image 2: step \d+\/4/);
  }, SLOW);

});
