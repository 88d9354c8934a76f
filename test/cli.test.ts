/**
 * The `kontext` CLI, run as a real process (bin/kontext.js) against real things: the app and
 * simulators of test/helpers/stack.ts, a service process killed with SIGKILL, and their DATA_DIR.
 */
import { mkdir, mkdtemp, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator } from '../simulator/server.js';
import { openDatabase } from '../src/db/database.js';
import { insertImages } from '../src/db/images.js';
import { insertTask } from '../src/db/tasks.js';
import { makeImage } from './helpers/images.js';
import { startServiceProcess, type Child } from './helpers/processes.js';
import { startS3, type S3Server } from './helpers/s3.js';
import { postGenerate, startStack, taskStatus, until, waitForStatus, type Stack } from './helpers/stack.js';
import { kontext as runKontext, type Run } from './helpers/kontext.js';

/** The service's variables: the CLI must see only what a test gives it. */

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'kontext-cli-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});


/** Runs `kontext` in the scratch folder. */
function kontext(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<Run> {
  return runKontext(scratch, args, env, timeoutMs);
}

/**
 * Runs the given `kontext` runs three at a time: a dozen at once, each loading the code, went past
 * the test's time on a busy 2-core machine.
 */
async function fewAtOnce(runs: (() => Promise<Run>)[]): Promise<Run[]> {
  const results: Run[] = [];
  for (let i = 0; i < runs.length; i += 3) results.push(...(await Promise.all(runs.slice(i, i + 3).map((run) => run()))));
  return results;
}

/** A URL where nothing listens (connections are refused at once). */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

function taskIdOf(run: Run): string {
  const id = /task (\S+) submitted/.exec(run.stdout)?.[1];
  if (!id) throw new Error(`no task id in:\n${run.stdout}\n${run.stderr}`);
  return id;
}

async function createTask(url: string, fields: Record<string, string>): Promise<string> {
  const res = await postGenerate(url, { size: '256x256', ...fields });
  expect(res.status).toBe(200);
  return ((await res.json()) as { task_id: string }).task_id;
}

describe('help and usage', () => {
  it('every command has --help (exit 0); unknown commands, bad flags and bad config exit 2 with one line', async () => {
    const commands = ['generate', 'tasks list', 'tasks show', 'tasks cancel', 'repair', 'images check', 'cleanup', 'keys create', 'keys list', 'keys revoke', 'db copy'];
    const [top, ...helps] = await fewAtOnce([() => kontext(['--help']), ...commands.map((c) => () => kontext([...c.split(' '), '--help']))]);
    expect(top!.code).toBe(0);
    for (const c of commands) expect(top!.stdout).toContain(c);
    helps.forEach((run, i) => {
      expect(run.code, commands[i]).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^Usage: kontext ${commands[i]}`));
      expect(run.stdout).toMatch(/Exit codes/);
    });

    const [badFlag, unknown, badValue, badConfig, noPrompt] = await fewAtOnce([
      () => kontext(['generate', '--bogus']),
      () => kontext(['frobnicate']),
      () => kontext(['tasks', 'list', '--limit', '0']),
      () => kontext(['tasks', 'list'], { PORT: 'abc', DATA_DIR: scratch }),
      () => kontext(['generate', '--image', 'x.png', '--out', 'out']),
    ]);
    for (const run of [badFlag!, unknown!, badValue!, noPrompt!]) {
      expect(run.code).toBe(2);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stderr).toMatch(/--help/);
    }
    expect(badFlag!.stderr).toMatch(/--bogus/);
    expect(unknown!.stderr).toMatch(/unknown command 'frobnicate'/);
    expect(badValue!.stderr).toMatch(/--limit must be a whole number from 1 to 1000/);
    expect(noPrompt!.stderr).toMatch(/--prompt is required/);
    expect(badConfig!.code).toBe(2);
    expect(badConfig!.stderr).toMatch(/PORT="abc": must be a whole number/);
    // 17 processes, each loading the code under tsx (2-3 s of CPU on a busy 2-core machine).
  }, 120_000);
});

describe('generate, tasks list/show, images check and cleanup on a running stack', () => {
  let stack: Stack;
  let env: Record<string, string>;
  let id: string;
  beforeAll(async () => {
    stack = await startStack();
    env = { DATA_DIR: stack.config.dataDir };
  });
  afterAll(async () => {
    await stack.close();
  });

  it('generate makes the images with progress and saves them as <out>/<task_id>_<index>.png', async () => {
    const ref = join(scratch, 'ref.png');
    await writeFile(ref, await makeImage('png', 320, 240));
    const out = join(scratch, 'out');
    const run = await kontext(['generate', '--image', ref, '--prompt', 'make it night', '--count', '2', '--size', '256x256', '--steps', '4', '--seed', '1', '--out', out, '--url', stack.app.url]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    id = taskIdOf(run);
    // Not a terminal here: plain progress lines, then the saved files.
    expect(run.stdout).toContain(`task ${id}: completed`);
    expect(run.stdout).toMatch(/image 2\/2: done/);
    expect((await readdir(out)).sort()).toEqual([`${id}_0.png`, `${id}_1.png`]);
    for (const index of [0, 1]) {
      const meta = await sharp(join(out, `${id}_${index}.png`)).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['png', 256, 256]);
    }
  });

  it('tasks list shows tasks newest first, as a table or JSON, filtered by status', async () => {
    const secondId = await createTask(stack.app.url, { description: 'no luck', steps: '2' });
    await waitForStatus(stack.app.url, secondId, ['completed']);
    const [table, json, limited, failed] = await Promise.all([
      kontext(['tasks', 'list'], env),
      kontext(['tasks', 'list', '--json'], env),
      kontext(['tasks', 'list', '--limit', '1', '--json'], env),
      kontext(['tasks', 'list', '--status', 'failed', '--json'], env),
    ]);
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+STATUS\s+PROGRESS\s+IMAGES\s+CREATED\s+OWNER\s+DESCRIPTION$/);
    // No key exists: the tasks were made by the open service.
    expect(lines[1]).toMatch(new RegExp(`^${secondId}\\s+completed\\s+100%\\s+1/1 .* open\\s+no luck$`));
    expect(lines[2]).toMatch(new RegExp(`^${id}\\s+completed\\s+100%\\s+2/2 .* open\\s+make it night$`));
    const all = JSON.parse(json.stdout) as { id: string; status: string; owner: string | null; images: unknown[] }[];
    expect(all.map((t) => [t.id, t.status, t.owner, t.images.length])).toEqual([
      [secondId, 'completed', null, 1],
      [id, 'completed', null, 2],
    ]);
    expect((JSON.parse(limited.stdout) as { id: string }[]).map((t) => t.id)).toEqual([secondId]);
    expect(JSON.parse(failed.stdout)).toEqual([]);
  });

  it('tasks show prints one task with its images; an unknown id exits 1', async () => {
    const [text, json, missing] = await Promise.all([
      kontext(['tasks', 'show', id], env),
      kontext(['tasks', 'show', id, '--json'], env),
      kontext(['tasks', 'show', 'no-such-task'], env),
    ]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^task\s+\S+\nstatus\s+completed\n/);
    expect(text.stdout).toMatch(/parameters\s+count 2, size 256x256, steps 4, guidance 2.5, seed 1/);
    expect(text.stdout).toMatch(/^0\s+completed\s+1\s+256x256/m);
    expect(text.stdout).toMatch(/^1\s+completed\s+2\s+256x256/m);
    const task = JSON.parse(json.stdout) as { id: string; seed: number; images: { index: number; status: string; file: string; bytes: number }[] };
    expect(task).toMatchObject({ id, seed: 1 });
    expect(task.images.map((i) => [i.index, i.status])).toEqual([
      [0, 'completed'],
      [1, 'completed'],
    ]);
    expect(task.images[0]!.file).toBe(join(stack.config.dataDir, 'images', id, '0.png'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/task no-such-task not found/);
  });

  it('images check: all intact exits 0; a deleted and a truncated file exit 1, each named', async () => {
    const ok = await kontext(['images', 'check'], env);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/checked 3 images: all present and intact/);

    const deleted = join(stack.config.dataDir, 'images', id, '0.png');
    const truncated = join(stack.config.dataDir, 'images', id, '1.png');
    await rm(deleted);
    await truncate(truncated, 100);
    // A row as the old service left it: no image rows, a result_path to a file long gone.
    const at = new Date().toISOString();
    await insertTask(stack.app.db, { id: 'legacy-1', description: 'old', status: 'completed', result_path: JSON.stringify(['outputs/legacy-1.png']), error_message: null, created_at: at, updated_at: at });
    const bad = await kontext(['images', 'check'], env);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(new RegExp(`${id}\\s+0\\s+${deleted}\\s+missing`));
    expect(bad.stdout).toMatch(new RegExp(`${id}\\s+1\\s+${truncated}\\s+100 bytes on disk, \\d+ recorded \\(truncated\\)`));
    expect(bad.stdout).toMatch(/legacy-1\s+0\s+outputs\/legacy-1.png\s+missing \(result_path of a task of the old service\)/);
    expect(bad.stdout).toMatch(/checked 3 images and 1 legacy result path: 3 problems/);
  });

  it('cleanup --days 0 deletes the finished tasks with their files', async () => {
    const kept = await kontext(['cleanup'], env);
    expect(kept.code).toBe(0);
    expect(kept.stdout).toMatch(/deleted 0 tasks finished more than 7 days ago/);
    const run = await kontext(['cleanup', '--days', '0'], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/deleted 3 tasks/);
    expect(JSON.parse((await kontext(['tasks', 'list', '--json'], env)).stdout)).toEqual([]);
    // The folder store removes a folder with its last file.
    expect(await readdir(join(stack.config.dataDir, 'images')).catch(() => [])).toEqual([]);
  });

  it('generate: a request the service refuses exits 1 with its reason', async () => {
    const notes = join(scratch, 'notes.png');
    await writeFile(notes, 'not an image at all\n'.repeat(20));
    const run = await kontext(['generate', '--image', notes, '--prompt', 'x', '--out', join(scratch, 'none'), '--url', stack.app.url]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^kontext generate: the service refused the request: .*not a PNG, JPEG or WebP image/);
  });

  it('generate against a URL where nothing listens exits 3 with a clear message', async () => {
    const url = await deadUrl();
    const run = await kontext(['generate', '--image', join(scratch, 'ref.png'), '--prompt', 'x', '--out', join(scratch, 'none'), '--url', url]);
    expect(run.code).toBe(3);
    expect(run.stderr).toBe(`kontext generate: the service at ${url} is not reachable (ECONNREFUSED); is it running? Set --url or PORT\n`);
  });
});

describe('generate and tasks cancel present the API key', () => {
  // A stand-in service that refuses every request as a service with keys refuses a wrong one, and
  // records the Authorization header each request carried.
  const seen: { path: string; authorization: string | undefined }[] = [];
  let server: Server;
  let url: string;
  let ref: string;
  beforeAll(async () => {
    ref = join(scratch, 'key-ref.png');
    await writeFile(ref, await makeImage('png', 64, 64));
    server = createHttpServer((req, res) => {
      seen.push({ path: req.url ?? '', authorization: req.headers.authorization });
      req.resume();
      req.on('end', () => {
        const graphql = req.url?.startsWith('/graphql');
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' });
        res.end(JSON.stringify(graphql ? { errors: [{ message: 'The API key is not valid', extensions: { code: 'UNAUTHENTICATED' } }] } : { detail: 'The API key is not valid' }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  const generate = (extra: string[], env: Record<string, string>) =>
    kontext(['generate', '--image', ref, '--prompt', 'x', '--out', join(scratch, 'none'), '--url', url, ...extra], env);

  it('sends --api-key, else KONTEXT_API_KEY, as Authorization: Bearer; a refusal names both', async () => {
    const flag = await generate(['--api-key', 'kx_from_flag'], { KONTEXT_API_KEY: 'kx_from_env' });
    const variable = await generate([], { KONTEXT_API_KEY: 'kx_from_env' });
    const none = await generate([], { KONTEXT_API_KEY: '' });
    const cancel = await kontext(['tasks', 'cancel', 'some-task', '--url', url], { KONTEXT_API_KEY: 'kx_cancel' });
    expect(seen.map((s) => [s.path, s.authorization])).toEqual([
      ['/graphql', 'Bearer kx_from_flag'],
      ['/graphql', 'Bearer kx_from_env'],
      ['/graphql', undefined],
      ['/api/task/some-task/cancel', 'Bearer kx_cancel'],
    ]);
    for (const run of [flag, variable, none]) {
      expect(run.code).toBe(1);
      expect(run.stderr).toBe(`kontext generate: the service at ${url} refused the request (401): The API key is not valid (pass --api-key or set KONTEXT_API_KEY)\n`);
    }
    expect(cancel.code).toBe(1);
    expect(cancel.stderr).toBe(`kontext tasks cancel: the service at ${url} refused the cancel (401): The API key is not valid (pass --api-key or set KONTEXT_API_KEY)\n`);
  });

  it('an empty or spaced key is a usage error that does not echo it, and nothing is sent', async () => {
    const before = seen.length;
    const [empty, spaced] = await Promise.all([generate(['--api-key', ''], {}), generate([], { KONTEXT_API_KEY: 'kx_secret part' })]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/^kontext generate: --api-key is empty/);
    expect(spaced.code).toBe(2);
    expect(spaced.stderr).toMatch(/^kontext generate: KONTEXT_API_KEY must be one API key \(kx_\.\.\.\), without spaces/);
    expect(spaced.stderr).not.toContain('kx_secret');
    expect(seen.length).toBe(before);
  });
});

describe('generate on a service with keys, with a key kontext keys made', () => {
  let stack: Stack;
  let env: Record<string, string>;
  let ref: string;
  beforeAll(async () => {
    stack = await startStack();
    env = { DATA_DIR: stack.config.dataDir, KONTEXT_API_KEY: '' };
    ref = join(scratch, 'keys-ref.png');
    await writeFile(ref, await makeImage('png', 64, 64));
  });
  afterAll(async () => {
    await stack.close();
  });

  const generate = (extra: string[], runEnv: Record<string, string>) =>
    kontext(['generate', '--image', ref, '--prompt', 'make it night', '--size', '256x256', '--steps', '2', '--out', join(scratch, 'keyed'), '--url', stack.app.url, ...extra], runEnv);

  it('makes and saves the images with the key (upload, progress over graphql-ws, downloads), the task owned by it; without a key, or over its quota, it is refused; tasks cancel with its key, with none, with another key', async () => {
    const made = await kontext(['keys', 'create', '--name', 'cli user', '--images-per-day', '2', '--json'], env);
    expect(made.code).toBe(0);
    const { key } = JSON.parse(made.stdout) as { key: string };

    const run = await generate(['--count', '2'], { ...env, KONTEXT_API_KEY: key });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const id = taskIdOf(run);
    expect((await readdir(join(scratch, 'keyed'))).sort()).toEqual([`${id}_0.png`, `${id}_1.png`]);
    const listed = JSON.parse((await kontext(['tasks', 'list', '--json'], env)).stdout) as { id: string; owner: string | null }[];
    expect(listed.find((t) => t.id === id)?.owner).toBe('cli user');

    const [anonymous, overQuota] = await Promise.all([generate([], env), generate(['--api-key', key], env)]);
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toMatch(/refused the request \(401\): .*\(pass --api-key or set KONTEXT_API_KEY\)/);
    // Two images in the last 24 hours already: the third is refused with when to retry.
    expect(overQuota.code).toBe(1);
    expect(overQuota.stderr).toMatch(/^kontext generate: the service refused the request: .*\(retry in \d+ s\)$/m);

    // tasks cancel goes through the service with the key too: another key's task does not exist.
    const other = JSON.parse((await kontext(['keys', 'create', '--name', 'other', '--json'], env)).stdout) as { key: string };
    const [own, noKey, foreign] = await Promise.all([
      kontext(['tasks', 'cancel', id, '--url', stack.app.url, '--api-key', key], env),
      kontext(['tasks', 'cancel', id, '--url', stack.app.url], env),
      kontext(['tasks', 'cancel', id, '--url', stack.app.url], { ...env, KONTEXT_API_KEY: other.key }),
    ]);
    expect(own.code).toBe(0);
    expect(own.stdout).toBe(`task ${id} is already completed; nothing to cancel\n`);
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toMatch(/refused the cancel \(401\): .*\(pass --api-key or set KONTEXT_API_KEY\)/);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toBe(`kontext tasks cancel: task ${id} not found (asked the service at ${stack.app.url} with the key given)\n`);
  }, 120_000);
});

describe('cleanup at the day boundary', () => {
  it('deletes what finished more than N days ago and keeps what finished less, by days, not hours', async () => {
    const dataDir = join(scratch, 'aged');
    const env = { DATA_DIR: dataDir };
    const db = await openDatabase({ file: join(dataDir, 'kontext.db') });
    const HOUR = 3_600_000;
    const DAY = 24 * HOUR;
    const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
    // An hour either side of 7 days and of 1 day: a CLI start takes seconds, not an hour.
    const aged: Array<[string, 'completed' | 'failed' | 'cancelled' | 'pending', number]> = [
      ['past-7d', 'completed', 7 * DAY + HOUR],
      ['within-7d', 'failed', 7 * DAY - HOUR],
      ['past-1d', 'cancelled', DAY + HOUR],
      ['within-1d', 'completed', DAY - HOUR],
      ['pending-30d', 'pending', 30 * DAY], // never finished: never deleted, however old
    ];
    for (const [id, status, age] of aged) {
      const finished = status === 'pending' ? null : ago(age);
      await insertTask(db, { id, description: id, status, result_path: null, error_message: null, created_at: ago(age + HOUR), updated_at: ago(age), finished_at: finished });
      await mkdir(join(dataDir, 'images', id), { recursive: true });
      await writeFile(join(dataDir, 'images', id, '0.png'), 'png');
    }
    // A row of the old service has no finished_at: its last update counts.
    await insertTask(db, { id: 'legacy-8d', description: 'old', status: 'completed', result_path: null, error_message: null, created_at: ago(9 * DAY), updated_at: ago(8 * DAY) });
    await db.destroy();
    const remaining = async () => ((JSON.parse((await kontext(['tasks', 'list', '--json'], env)).stdout) as { id: string }[]).map((t) => t.id).sort());

    const week = await kontext(['cleanup'], env); // TASK_CLEANUP_DAYS unset: 7
    expect(week).toMatchObject({ code: 0, stdout: 'deleted 2 tasks finished more than 7 days ago\n' });
    expect(await remaining()).toEqual(['past-1d', 'pending-30d', 'within-1d', 'within-7d']);
    expect((await readdir(join(dataDir, 'images'))).sort()).toEqual(['past-1d', 'pending-30d', 'within-1d', 'within-7d']);

    const day = await kontext(['cleanup', '--days', '1'], env);
    expect(day).toMatchObject({ code: 0, stdout: 'deleted 2 tasks finished more than 1 day ago\n' });
    expect(await remaining()).toEqual(['pending-30d', 'within-1d']);
    expect((await readdir(join(dataDir, 'images'))).sort()).toEqual(['pending-30d', 'within-1d']);
  });
});

describe('tasks list/show with hostile task text', () => {
  // Sets the window title, rings the bell and clears the screen when printed raw.
  const HOSTILE = '\u001b]0;pwned\u0007\u001b[2J';
  const VISIBLE = '\\x1b]0;pwned\\x07\\x1b[2J';
  let env: Record<string, string>;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = join(scratch, 'hostile');
    env = { DATA_DIR: dataDir };
    const db = await openDatabase({ file: join(dataDir, 'kontext.db') });
    const at = new Date().toISOString();
    // A C1 CSI (U+009B) and a bidi override too: JSON.stringify leaves both raw.
    await insertTask(db, { id: 'evil-1', description: `make it red${HOSTILE}\u009b2J\u202e`, status: 'failed', result_path: JSON.stringify([join(dataDir, 'images', 'evil-1', '0.png'), '/srv/elsewhere/old.png']), error_message: `ComfyUI said ${HOSTILE}`, created_at: at, updated_at: at });
    await insertImages(db, [{ task_id: 'evil-1', idx: 0, seed: 1, prompt_id: 'p-evil-1-0', status: 'failed', worker: null, error: `node error ${HOSTILE}` }]);
    await insertTask(db, { id: 'legacy-2', description: 'old', status: 'completed', result_path: JSON.stringify([join(dataDir, 'outputs', 'legacy-2.png')]), error_message: null, created_at: at, updated_at: at });
    await db.destroy();
  });

  it('prints control characters visibly escaped; no ESC, BEL or C1 byte reaches the terminal', async () => {
    const [list, show, legacy, missing] = await Promise.all([
      kontext(['tasks', 'list'], env),
      kontext(['tasks', 'show', 'evil-1'], env),
      kontext(['tasks', 'show', 'legacy-2'], env),
      kontext(['tasks', 'show', `nope${HOSTILE}`], env),
    ]);
    for (const run of [list, show, legacy, missing]) {
      expect(run.stdout + run.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    }
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(`make it red${VISIBLE}\\x9b2J\\u202e`);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(`description  make it red${VISIBLE}`);
    expect(show.stdout).toContain(`error        ComfyUI said ${VISIBLE}`);
    expect(show.stdout).toContain(`node error ${VISIBLE}`);
    // The legacy result path, relative to DATA_DIR like REST shows it.
    expect(legacy.stdout).toContain('result       outputs/legacy-2.png\n');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`task nope${VISIBLE} not found`);
  });

  it('--json stays JSON with the text intact, and result_path relative to DATA_DIR', async () => {
    const run = await kontext(['tasks', 'show', 'evil-1', '--json'], env);
    expect(run.code).toBe(0);
    expect(run.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    const task = JSON.parse(run.stdout) as { description: string; error_message: string; result_path: string[] };
    expect(task.description).toBe(`make it red${HOSTILE}\u009b2J\u202e`);
    expect(task.error_message).toBe(`ComfyUI said ${HOSTILE}`);
    expect(task.result_path).toEqual(['images/evil-1/0.png', 'old.png']);
  });
});

describe('tasks cancel and repair next to a busy service', () => {
  let stack: Stack;
  let env: Record<string, string>;
  beforeAll(async () => {
    // One task at a time on a slow ComfyUI: the first stays processing (50 s: longer than the CLI
    // runs below take on a loaded machine), the others pending.
    stack = await startStack({ sim: { stepMs: 500 }, config: { maxConcurrentTasks: 1 } });
    env = { DATA_DIR: stack.config.dataDir, COMFYUI_URL: stack.sims[0]!.url };
  });
  afterAll(async () => {
    await stack.close();
  });

  it('cancels a pending task through the service, and with the service stopped in the database; refuses a processing one', async () => {
    const url = stack.app.url;
    const busy = await createTask(url, { description: 'busy', steps: '100' });
    await waitForStatus(url, busy, ['processing']);
    const [viaService, offline] = [await createTask(url, { description: 'b' }), await createTask(url, { description: 'c' })];
    expect((await taskStatus(url, viaService)).status).toBe('pending');

    const refused = await kontext(['repair', '--url', url], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`the service at ${url} is running and looks after task ${busy} itself`));

    const cancelled = await kontext(['tasks', 'cancel', viaService, '--url', url], env);
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toBe(`task ${viaService} cancelled\n`);
    expect((await taskStatus(url, viaService)).status).toBe('cancelled');

    await stack.app.close();
    const dead = await deadUrl();
    const inDb = await kontext(['tasks', 'cancel', offline, '--url', dead], env);
    expect(inDb.stderr).toBe('');
    expect(inDb.code).toBe(0);
    expect(inDb.stdout).toBe(`task ${offline} cancelled in the database (the service at ${dead} is not running)\n`);
    const shown = JSON.parse((await kontext(['tasks', 'show', offline, '--json'], env)).stdout) as { status: string; images: { status: string }[] };
    expect(shown.status).toBe('cancelled');
    expect(shown.images.map((i) => i.status)).toEqual(['cancelled']);

    const processing = await kontext(['tasks', 'cancel', busy, '--url', dead], env);
    expect(processing.code).toBe(3);
    expect(processing.stderr).toMatch(/is processing and the service at .* is not reachable: only the service can stop its prompts on ComfyUI/);
    expect(processing.stderr).toMatch(/kontext repair/);
  });
});

describe('repair after a crash', () => {
  let service: Child | undefined;
  afterAll(async () => {
    await service?.kill('SIGKILL');
  });

  it('completes a task a SIGKILLed service left processing, with the service down, running each prompt once', async () => {
    const sim = await startSimulator({ port: 0, stepMs: 40, baseDir: join(scratch, 'comfyui') });
    try {
      const env = { DATA_DIR: join(scratch, 'crashed'), COMFYUI_URL: sim.url };
      service = await startServiceProcess(env);
      const id = await createTask(service.url, { description: 'crash me', count: '3', steps: '10' });
      await until('the first image', async () => (await taskStatus(service!.url, id)).images.length >= 1);
      await service.kill('SIGKILL');

      const run = await kontext(['repair', '--url', await deadUrl(), '--timeout', '30'], env);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/repairing 1 processing task/);
      expect(run.stdout).toContain(`${id}  processing -> completed  3/3 images`);
      expect(run.stdout).toMatch(/all 1 task settled/);

      const task = JSON.parse((await kontext(['tasks', 'show', id, '--json'], env)).stdout) as { status: string; claimed_by: string | null; images: { status: string }[] };
      expect(task.status).toBe('completed');
      expect(task.claimed_by).toBeNull();
      expect(task.images.map((i) => i.status)).toEqual(['completed', 'completed', 'completed']);
      // ComfyUI numbers every POST /prompt: three history entries mean no image ran twice.
      const history = (await (await fetch(`${sim.url}/history`)).json()) as Record<string, unknown>;
      expect(Object.keys(history)).toHaveLength(3);

      const again = await kontext(['repair'], env);
      expect(again.code).toBe(0);
      expect(again.stdout).toBe('nothing to repair: no task is processing\n');
      expect((await kontext(['images', 'check'], env)).code).toBe(0);
    } finally {
      await sim.close();
    }
  });
});

describe('images check and cleanup with STORAGE_URL=s3://bucket/prefix', () => {
  let s3: S3Server;
  let restoreEnv: () => void;
  let stack: Stack;
  let env: Record<string, string>;
  beforeAll(async () => {
    s3 = await startS3(['kontext-cli']);
    restoreEnv = s3.applyEnv(); // for the in-process service; the CLI gets the same in `env`
    stack = await startStack({ config: { storageUrl: 's3://kontext-cli/gw' } });
    env = { DATA_DIR: stack.config.dataDir, STORAGE_URL: 's3://kontext-cli/gw', ...s3.env };
  });
  afterAll(async () => {
    await stack?.close();
    restoreEnv?.();
    await s3?.close();
  });

  it('checks the objects in the bucket, names a missing one by its URL, and cleanup deletes them there', async () => {
    const res = await postGenerate(stack.app.url, { description: 'in a bucket', count: '2', steps: '2', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;
    await waitForStatus(stack.app.url, id, ['completed']);
    const ok = await kontext(['images', 'check'], env);
    expect(ok.stdout).toMatch(/checked 2 images: all present and intact/);
    expect(ok.code).toBe(0);

    await stack.app.store.delete(`images/${id}/1.png`);
    const bad = await kontext(['images', 'check'], env);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(new RegExp(`${id}\\s+1\\s+s3://kontext-cli/gw/images/${id}/1.png\\s+missing`));
    expect(bad.stdout).toMatch(/checked 2 images: 1 problem/);

    const [upload] = (await stack.app.db.selectFrom('uploads').select('file_path').execute()).map((u) => u.file_path);
    expect(await stack.app.store.exists(upload!)).toBe(true);
    const run = await kontext(['cleanup', '--days', '0'], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/deleted 1 task/);
    expect(await stack.app.store.exists(`images/${id}/0.png`)).toBe(false);
    expect(await stack.app.store.exists(upload!)).toBe(false);
  });

  it('a bucket that does not exist ends a command with one line naming STORAGE_URL', async () => {
    const run = await kontext(['images', 'check'], { ...env, STORAGE_URL: 's3://no-such-bucket' });
    expect(run.code).toBe(1);
    // The last line: on Node 20 the AWS SDK prints its own NodeVersionSupportWarning before it.
    expect(run.stderr.trim().split('\n').at(-1)).toMatch(/^kontext images check: STORAGE_URL=s3:\/\/no-such-bucket: the bucket "no-such-bucket" does not exist at http:\/\/127\.0\.0\.1:\d+$/);
  });
});
