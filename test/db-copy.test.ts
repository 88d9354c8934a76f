/**
 * `kontext db copy`, run as a real process: the SQLite database a real service left in its DATA_DIR
 * (tasks in every status, one of them mid-run) is copied into a fresh PostgreSQL database, row for
 * row; then the service started on the copy answers as before, serves the old images and finishes
 * the task that was running. A database with API keys keeps them (hashes, owners, revocations) and
 * its image-URL signing secret.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp } from '../src/app.js';
import { Authenticator } from '../src/auth/authenticator.js';
import { createApiKey } from '../src/auth/create-api-key.js';
import { loadSigningSecret, UrlSigner } from '../src/auth/url-signer.js';
import { revokeApiKey } from '../src/db/api-keys.js';
import { insertTask } from '../src/db/tasks.js';
import { openDatabase, type Db } from '../src/db/database.js';
import { createTestDatabase, postgresProblem, type TestDatabase } from './helpers/databases.js';
import { FAST, postGenerate, startStack, taskStatus, until, waitForStatus, type Stack, type TaskStatusBody } from './helpers/stack.js';
import { kontext as runKontext, type Run } from './helpers/kontext.js';

/** Variables the CLI would read: it must see only DATA_DIR from the test. */
/** Image URLs in task bodies are absolute: a fixed PUBLIC_URL makes them the same on both services. */
const PUBLIC_URL = 'http://kontext.test';

if (postgresProblem && process.env.CI) throw new Error(`kontext db copy: ${postgresProblem}; CI must run the PostgreSQL tests (set TEST_DATABASE_URL)`);
if (postgresProblem) console.warn(`skipping kontext db copy: ${postgresProblem} (set TEST_DATABASE_URL to run it)`);


let scratch: string;

/** Runs `kontext` in the scratch folder. */
function kontext(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<Run> {
  return runKontext(scratch, args, env, timeoutMs);
}

async function createTask(url: string, fields: Record<string, string>): Promise<string> {
  const res = await postGenerate(url, { size: '256x256', ...fields });
  expect(res.status).toBe(200);
  return ((await res.json()) as { task_id: string }).task_id;
}

/** Every row of the copied tables, in one order on both dialects (PostgreSQL text compares bytewise here). */
async function allRows(db: Db) {
  return {
    api_keys: await db.selectFrom('api_keys').selectAll().orderBy('id').execute(),
    settings: await db.selectFrom('settings').selectAll().orderBy('name').execute(),
    uploads: await db.selectFrom('uploads').selectAll().orderBy('sha256').execute(),
    tasks: await db.selectFrom('tasks').selectAll().orderBy('id').execute(),
    images: await db.selectFrom('images').selectAll().orderBy('task_id').orderBy('idx').execute(),
  };
}

describe('kontext db copy --help and usage', () => {
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'kontext-db-copy-'));
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it('documents where the files go; a missing or foreign --to and a missing source are refused with one line', async () => {
    const [help, noTo, mysql, noSource] = await Promise.all([
      kontext(['db', 'copy', '--help'], {}),
      kontext(['db', 'copy'], {}),
      kontext(['db', 'copy', '--to', 'mysql://db/kontext'], {}),
      kontext(['db', 'copy', '--to', 'postgres://127.0.0.1:1/none'], { DATA_DIR: join(scratch, 'nothing-here') }),
    ]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: kontext db copy --to <postgres-url>/);
    expect(help.stdout).toContain('STORAGE_URL=file:///<DATA_DIR>');
    expect(help.stdout).toMatch(/Exit codes/);
    for (const run of [noTo, mysql]) {
      expect(run.code).toBe(2);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(noTo.stderr).toMatch(/--to is required/);
    expect(mysql.stderr).toMatch(/--to must be a postgres:\/\/ URL/);
    expect(noSource.code).toBe(1);
    expect(noSource.stderr).toMatch(/no SQLite database at .*nothing-here/);
  });
});

(postgresProblem ? describe.skip : describe)('kontext db copy from SQLite to PostgreSQL', () => {
  let stack: Stack;
  let target: TestDatabase;
  let url: string;
  let env: Record<string, string>;
  const ids = { completed: '', failed: '', processing: '', pending: '', cancelled: '' };
  const before = new Map<string, TaskStatusBody>();
  let oldImage: { body: Buffer; etag: string | null };

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'kontext-db-copy-'));
    stack = await startStack({ sim: { failOnText: '__FAIL__' }, config: { maxConcurrentTasks: 1, publicUrl: PUBLIC_URL } });
    const app = stack.app.url;
    ids.completed = await createTask(app, { description: 'a lighthouse', count: '2' });
    await waitForStatus(app, ids.completed, ['completed']);
    ids.failed = await createTask(app, { description: 'a __FAIL__ lighthouse' });
    await waitForStatus(app, ids.failed, ['failed']);
    // Held mid-run: the service stops with this task processing and its claim live.
    ids.processing = await createTask(app, { description: 'a slow lighthouse', steps: '100' });
    await until('the slow task to make progress', async () => {
      const s = await taskStatus(app, ids.processing);
      return s.status === 'processing' && s.progress > 0;
    });
    stack.sims[0]!.pause();
    ids.pending = await createTask(app, { description: 'a queued lighthouse' });
    ids.cancelled = await createTask(app, { description: 'a cancelled lighthouse' });
    expect((await fetch(`${app}/api/task/${ids.cancelled}/cancel`, { method: 'POST' })).status).toBe(200);
    for (const id of Object.values(ids)) before.set(id, await taskStatus(app, id));
    expect([...before.values()].map((b) => b.status)).toEqual(['completed', 'failed', 'processing', 'pending', 'cancelled']);
    const image = await fetch(`${app}/api/image/${ids.completed}?index=1`);
    expect(image.status).toBe(200);
    oldImage = { body: Buffer.from(await image.arrayBuffer()), etag: image.headers.get('etag') };
    await stack.app.close();

    target = await createTestDatabase('postgres');
    url = (target.target as { url: string }).url;
    env = { DATA_DIR: stack.config.dataDir };
  }, 60_000);

  afterAll(async () => {
    stack.sims[0]!.resume();
    await stack.close();
    await target?.drop();
    await rm(scratch, { recursive: true, force: true });
  });

  it('refuses while a claim is live, copies every row with --force (claims cleared), and refuses a second copy', async () => {
    const refused = await kontext(['db', 'copy', '--to', url], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`task ${ids.processing} is claimed by the service on .* until .*stop the service first`));
    const targetDb = await target.open();
    expect((await allRows(targetDb)).tasks).toEqual([]);

    const sourceDb = await openDatabase({ file: join(stack.config.dataDir, 'kontext.db') });
    const source = await allRows(sourceDb).finally(() => sourceDb.destroy());
    expect(source.tasks.find((t) => t.id === ids.processing)).toMatchObject({ status: 'processing', claimed_by: expect.any(String), lease_expires_at: expect.any(String) });
    expect(source.images.length).toBeGreaterThanOrEqual(4);
    // The service made its signing secret at start; no key: it was open.
    expect(source.settings.map((r) => r.name)).toEqual(['url_signing_secret']);
    expect(source.api_keys).toEqual([]);

    // --batch 1: every row its own INSERT, and paging through the two-column key of images.
    const copied = await kontext(['db', 'copy', '--to', url, '--force', '--batch', '1'], env);
    expect(copied.stderr).toBe('');
    expect(copied.code).toBe(0);
    expect(copied.stdout).toMatch(
      new RegExp(`copied ${source.tasks.length} tasks, ${source.images.length} images, ${source.uploads.length} uploads, 0 API keys, 1 settings in \\d+\\.\\d s`),
    );
    const copy = await allRows(targetDb);
    expect(copy.settings).toEqual(source.settings);
    expect(copy.uploads).toEqual(source.uploads);
    expect(copy.images).toEqual(source.images);
    expect(copy.tasks).toEqual(source.tasks.map((t) => ({ ...t, claimed_by: null, lease_expires_at: null })));

    const again = await kontext(['db', 'copy', '--to', url, '--force'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(new RegExp(`the target already holds ${source.uploads.length} uploads, ${source.tasks.length} tasks, ${source.images.length} images`));
    expect(await allRows(targetDb)).toEqual(copy);
  }, 60_000);

  it('the service on the copy answers as before, serves the old images and finishes the tasks that were left', async () => {
    stack.sims[0]!.resume();
    stack.app = await startApp({ ...stack.config, databaseUrl: url }, FAST);
    const app = stack.app.url;
    for (const id of [ids.completed, ids.failed, ids.cancelled]) expect(await taskStatus(app, id)).toEqual(before.get(id));

    const image = await fetch(`${app}/api/image/${ids.completed}?index=1`);
    expect(image.status).toBe(200);
    expect(image.headers.get('etag')).toBe(oldImage.etag);
    expect(Buffer.from(await image.arrayBuffer()).equals(oldImage.body)).toBe(true);

    // The task that was running (claim cleared) is adopted, and the queued one runs after it.
    for (const id of [ids.processing, ids.pending]) {
      const done = await waitForStatus(app, id, ['completed'], 30_000);
      expect(done.images).toHaveLength(1);
      expect((await fetch(done.images[0]!.replace(PUBLIC_URL, app))).status).toBe(200);
    }
  }, 60_000);
});

(postgresProblem ? describe.skip : describe)('kontext db copy of a database with API keys', () => {
  let dir: string;
  let file: string;
  const targets: TestDatabase[] = [];
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'kontext-db-copy-'));
    dir = await mkdtemp(join(tmpdir(), 'kontext-db-copy-keys-'));
    file = join(dir, 'kontext.db');
  });
  afterAll(async () => {
    for (const t of targets) await t.drop();
    await rm(dir, { recursive: true, force: true });
    await rm(scratch, { recursive: true, force: true });
  });

  async function target(): Promise<{ url: string; db: Db }> {
    const t = await createTestDatabase('postgres');
    targets.push(t);
    return { url: (t.target as { url: string }).url, db: await t.open() };
  }

  it('copies keys (hashes, limits, revocations), owners and the signing secret over the one a service on the target made; a target with keys is refused', async () => {
    const source = await openDatabase({ file });
    const admin = await createApiKey(source, { name: 'ops', scopes: ['admin'], maxConcurrent: 3, imagesPerDay: 50, ratePerMinute: 6, priority: 'high' });
    const old = await createApiKey(source, { name: 'old laptop' });
    await revokeApiKey(source, old.row.id, new Date().toISOString());
    const secret = await loadSigningSecret(source, undefined);
    const at = new Date().toISOString();
    await insertTask(source, { id: 'owned-1', description: 'a red door', status: 'completed', result_path: '[]', error_message: null, created_at: at, updated_at: at, owner_key_id: admin.row.id });
    await insertTask(source, { id: 'open-1', description: 'a blue door', status: 'completed', result_path: '[]', error_message: null, created_at: at, updated_at: at });
    const before = await allRows(source);
    await source.destroy();

    // A service was started on the empty target once: it made a secret of its own.
    const { url, db } = await target();
    const theirs = await loadSigningSecret(db, undefined);
    expect(theirs.equals(secret)).toBe(false);

    const run = await kontext(['db', 'copy', '--to', url, '--from', file]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/copied 2 tasks, 0 images, 0 uploads, 2 API keys, 1 settings in/);
    expect(await allRows(db)).toEqual(before);
    expect((await db.selectFrom('tasks').select(['id', 'owner_key_id']).orderBy('id').execute())).toEqual([
      { id: 'open-1', owner_key_id: null },
      { id: 'owned-1', owner_key_id: admin.row.id },
    ]);

    // What the service on the copy will do with them: the key works, the revoked one stays revoked,
    // and a URL signed before the move still checks.
    const auth = new Authenticator({ db });
    const ok = await auth.authenticate(admin.key);
    expect(ok.ok && ok.caller.keyId).toBe(admin.row.id);
    expect(await auth.authenticate(old.key)).toMatchObject({ ok: false, failure: 'revoked' });
    const signed = new URLSearchParams(new UrlSigner(secret, 3600).sign('owned-1', 0));
    const moved = new UrlSigner(await loadSigningSecret(db, undefined), 3600);
    expect(moved.check('owned-1', 0, signed.get('exp'), signed.get('sig'))).toBe('valid');

    // A target that already has a key is another service's database: refused, nothing written.
    const other = await target();
    await createApiKey(other.db, { name: 'theirs' });
    const refused = await kontext(['db', 'copy', '--to', other.url, '--from', file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/the target already holds 1 api_keys; db copy only fills an empty database/);
    expect((await allRows(other.db)).tasks).toEqual([]);
  }, 60_000);
});
