/**
 * `kontext keys create|list|revoke` and the owners in `kontext tasks`, run as real processes on the
 * service's database, SQLite in DATA_DIR and PostgreSQL at DATABASE_URL: a key is printed once, the
 * database holds only its hash, and the service's Authenticator takes what the CLI made.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../src/auth/authenticator.js';
import { createApiKey } from '../src/auth/create-api-key.js';
import type { Db } from '../src/db/database.js';
import { insertTask } from '../src/db/tasks.js';
import { forEachDialect, serviceDatabase, type TestDatabase } from './helpers/databases.js';
import { kontext as runKontext, type Run } from './helpers/kontext.js';
import { startStack, until } from './helpers/stack.js';

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'kontext-keys-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** The CLI's variables for a test database: DATABASE_URL, or DATA_DIR holding kontext.db. */
function envOf(database: TestDatabase): Record<string, string> {
  const where = serviceDatabase(database.target);
  return 'databaseUrl' in where ? { DATABASE_URL: where.databaseUrl } : { DATA_DIR: where.dataDir };
}

/** Runs `kontext` in the scratch folder on the test's database. */
function kontext(database: TestDatabase, args: string[]): Promise<Run> {
  return runKontext(scratch, args, envOf(database), 60_000);
}

const KEY = /kx_[A-Za-z0-9_-]{43}/g;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

interface KeyJson {
  id: string;
  name: string;
  key?: string;
  prefix: string;
  scopes: string[];
  maxConcurrent: number | null;
  imagesPerDay: number | null;
  rate: number | null;
  priority: string;
  createdAt: string;
  lastUsedAt?: string | null;
  revokedAt?: string | null;
}

async function keyRows(db: Db) {
  return db.selectFrom('api_keys').selectAll().orderBy('created_at').execute();
}

forEachDialect('kontext keys', (ctx) => {
  it('create with every option prints the key once; list shows it without a secret; the database holds only its hash', async () => {
    const made = await kontext(ctx.database, ['keys', 'create', '--name', 'ci runner', '--scopes', 'admin, read', '--max-concurrent', '2', '--images-per-day', '100', '--rate', '10', '--priority', 'high', '--json']);
    expect(made.code).toBe(0);
    expect(made.stderr).toMatch(/only time the key is shown/);
    const created = JSON.parse(made.stdout) as KeyJson;
    expect(Object.keys(created)).toEqual(['id', 'name', 'key', 'prefix', 'scopes', 'maxConcurrent', 'imagesPerDay', 'rate', 'priority', 'createdAt']);
    expect(created).toMatchObject({ name: 'ci runner', scopes: ['read', 'admin'], maxConcurrent: 2, imagesPerDay: 100, rate: 10, priority: 'high' });
    expect(created.id).toMatch(/^key_[0-9a-f]{16}$/);
    expect(created.key).toMatch(/^kx_[A-Za-z0-9_-]{43}$/);
    expect(created.prefix).toBe(created.key!.slice(0, 11));
    expect(Date.parse(created.createdAt)).not.toBeNaN();

    // Text, the defaults: the key on a line of its own, exactly once, and the warning.
    const plain = await kontext(ctx.database, ['keys', 'create', '--name', 'laptop']);
    expect(plain.code).toBe(0);
    const shown = plain.stdout.match(KEY) ?? [];
    expect(shown).toHaveLength(1);
    const laptopKey = shown[0]!;
    expect(plain.stdout).toContain(`\n  ${laptopKey}\n`);
    expect(plain.stdout).toMatch(/scopes generate,read; limits: none; priority normal/);
    expect(plain.stdout).toMatch(/This is the only time the key is shown/);

    const [listJson, table] = await Promise.all([kontext(ctx.database, ['keys', 'list', '--json']), kontext(ctx.database, ['keys', 'list'])]);
    expect(listJson.code).toBe(0);
    const listed = JSON.parse(listJson.stdout) as KeyJson[];
    expect(listed.map((k) => [k.name, k.scopes, k.maxConcurrent, k.imagesPerDay, k.rate, k.priority, k.lastUsedAt, k.revokedAt])).toEqual([
      ['ci runner', ['read', 'admin'], 2, 100, 10, 'high', null, null],
      ['laptop', ['generate', 'read'], null, null, null, 'normal', null, null],
    ]);
    expect(listed[0]).toMatchObject({ id: created.id, prefix: created.prefix, createdAt: created.createdAt });
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+PREFIX\s+SCOPES\s+LIMITS\s+PRIORITY\s+CREATED\s+LAST USED\s+REVOKED$/);
    expect(lines[1]).toMatch(new RegExp(`^${created.id}\\s+ci runner\\s+${created.prefix}…\\s+read,admin\\s+2 at once, 100 images/day, 10/min\\s+high\\s`));
    expect(lines[2]).toMatch(/^key_\w+\s+laptop\s+kx_\S+…\s+generate,read\s+none\s+normal\s/);

    const rows = await keyRows(ctx.db);
    expect(rows).toHaveLength(2);
    for (const [key, row] of [
      [created.key!, rows[0]!],
      [laptopKey, rows[1]!],
    ] as const) {
      expect(row.hash).toBe(sha256(key));
      // No column holds the key, nor can list output show the hash.
      for (const value of Object.values(row)) expect(String(value)).not.toContain(key.slice(11));
      for (const out of [listJson.stdout, table.stdout]) {
        expect(out).not.toContain(key);
        expect(out).not.toContain(row.hash);
      }
    }

    // What the service does with a presented key: the CLI's keys are the service's keys.
    const auth = new Authenticator({ db: ctx.db });
    const admin = await auth.authenticate(created.key);
    expect(admin.ok && [admin.caller.keyId, admin.caller.seesAll, admin.caller.priority]).toEqual([created.id, true, 'high']);
    const laptop = await auth.authenticate(laptopKey);
    expect(laptop.ok && [laptop.caller.name, [...laptop.caller.scopes].sort()]).toEqual(['laptop', ['generate', 'read']]);
  }, 120_000);

  it('revoke by id, again (nothing changes), by the key itself; an unknown id exits 1; revoking the last active key says the service stays closed', async () => {
    const a = await createApiKey(ctx.db, { name: 'a' });
    const b = await createApiKey(ctx.db, { name: 'b' });
    const first = await kontext(ctx.database, ['keys', 'revoke', a.row.id]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`key ${a.row.id} "a" revoked`));
    expect(first.stdout).not.toMatch(/no key is active/);
    const revokedAt = (await keyRows(ctx.db)).find((r) => r.id === a.row.id)!.revoked_at;
    expect(Date.parse(revokedAt ?? '')).not.toBeNaN();

    const [again, byKey, unknown, noId] = await Promise.all([
      kontext(ctx.database, ['keys', 'revoke', a.row.id]),
      kontext(ctx.database, ['keys', 'revoke', b.key]),
      kontext(ctx.database, ['keys', 'revoke', 'key_0000000000000000']),
      kontext(ctx.database, ['keys', 'revoke']),
    ]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already revoked .*nothing changed/);
    expect(byKey.code).toBe(0);
    expect(byKey.stdout).toMatch(new RegExp(`key ${b.row.id} "b" revoked`));
    expect(byKey.stdout).toMatch(/no key is active: the service refuses every API request/);
    expect(byKey.stdout + byKey.stderr).not.toContain(b.key);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^kontext keys revoke: no key key_0000000000000000; see 'kontext keys list'$/m);
    expect(noId.code).toBe(2);
    expect(noId.stderr).toMatch(/a key id is required/);

    const rows = await keyRows(ctx.db);
    expect(rows.find((r) => r.id === a.row.id)!.revoked_at).toBe(revokedAt);
    expect(rows.every((r) => r.revoked_at)).toBe(true);
    expect(await new Authenticator({ db: ctx.db }).authenticate(b.key)).toMatchObject({ ok: false, failure: 'revoked' });
    const listed = JSON.parse((await kontext(ctx.database, ['keys', 'list', '--json'])).stdout) as KeyJson[];
    expect(listed.map((k) => k.revokedAt === null)).toEqual([false, false]);
  }, 120_000);

  it('kontext tasks list and show name each task\'s owner: the key\'s name, or open', async () => {
    const ci = await createApiKey(ctx.db, { name: 'ci' });
    const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
    const task = (id: string, seconds: number, owner: string | null) =>
      insertTask(ctx.db, { id, description: `task ${id}`, status: 'pending', result_path: '[]', error_message: null, created_at: at(seconds), updated_at: at(seconds), owner_key_id: owner });
    await task('t-open', 1, null);
    await task('t-ci', 2, ci.row.id);
    // A key the database does not know (e.g. rows copied without their keys): its id stands in.
    await task('t-lost', 3, 'key_00000000deadbeef');

    const [table, json, show, showOpen] = await Promise.all([
      kontext(ctx.database, ['tasks', 'list']),
      kontext(ctx.database, ['tasks', 'list', '--json']),
      kontext(ctx.database, ['tasks', 'show', 't-ci', '--json']),
      kontext(ctx.database, ['tasks', 'show', 't-open']),
    ]);
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+STATUS\s+PROGRESS\s+IMAGES\s+CREATED\s+OWNER\s+DESCRIPTION$/);
    expect(lines.slice(1).map((l) => l.split(/\s{2,}/).at(-2))).toEqual(['key_00000000deadbeef', 'ci', 'open']);
    const listed = JSON.parse(json.stdout) as { id: string; owner: string | null; owner_key_id: string | null }[];
    expect(listed.map((t) => [t.id, t.owner, t.owner_key_id])).toEqual([
      ['t-lost', null, 'key_00000000deadbeef'],
      ['t-ci', 'ci', ci.row.id],
      ['t-open', null, null],
    ]);
    expect(JSON.parse(show.stdout)).toMatchObject({ id: 't-ci', owner: 'ci', owner_key_id: ci.row.id });
    expect(showOpen.stdout).toMatch(/^owner\s+open \(made while the service had no API keys\)$/m);
  }, 120_000);

  it('a running service takes a key the CLI made at once, and refuses it within 5 s of its revocation', async () => {
    const stack = await startStack({ config: serviceDatabase(ctx.database.target) });
    try {
      const health = async () => ((await (await fetch(`${stack.app.url}/health`)).json()) as { auth: string }).auth;
      const list = (headers: Record<string, string> = {}) => fetch(`${stack.app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"query":"{ tasks(first: 1) { edges { node { id } } } }"}' });
      expect(await health()).toBe('open');
      expect((await list()).status).toBe(200);
      const made = JSON.parse((await kontext(ctx.database, ['keys', 'create', '--name', 'live', '--json'])).stdout) as KeyJson;
      // The key works on its first request; requests without one are refused once the "open" answer expires.
      expect((await list({ authorization: `Bearer ${made.key!}` })).status).toBe(200);
      await until('keys required', async () => (await list()).status === 401, 5000);
      expect(await health()).toBe('keys');
      expect((await kontext(ctx.database, ['keys', 'revoke', made.id])).code).toBe(0);
      const revokedAt = Date.now();
      await until('the revoked key refused', async () => (await list({ authorization: `Bearer ${made.key!}` })).status === 401, 5000);
      expect(Date.now() - revokedAt).toBeLessThan(5000);
    } finally {
      await stack.app.close();
      await Promise.all(stack.sims.map((sim) => sim.close()));
    }
  });
});

// Options are checked before the database is opened: one dialect shows it.
forEachDialect(
  'kontext keys create with bad options',
  (ctx) => {
    it('bad options are refused with the option named (exit 2, one line) and store nothing', async () => {
      const cases: [string[], RegExp][] = [
        [['--scopes', 'read'], /--name is required/],
        [['--name', '  '], /--name must be 1 to 100 characters/],
        [['--name', 'x'.repeat(101)], /--name must be 1 to 100 characters/],
        [['--name', 'a\u001b[2Jb'], /--name must not contain control characters/],
        [['--name', 'a', '--scopes', 'read,write'], /--scopes must be a comma-separated list of generate, read, admin, not 'read,write'/],
        [['--name', 'a', '--scopes', ','], /--scopes must name at least one of generate, read, admin/],
        [['--name', 'a', '--max-concurrent', '0'], /--max-concurrent must be a whole number from 1 to 10000, not '0'/],
        [['--name', 'a', '--images-per-day', '1.5'], /--images-per-day must be a whole number from 1 to 10000000, not '1.5'/],
        [['--name', 'a', '--rate', 'fast'], /--rate must be a whole number from 1 to 1000000, not 'fast'/],
        [['--name', 'a', '--priority', 'urgent'], /--priority must be one of low, normal, high, not 'urgent'/],
        [['--name', 'a', '--expires', '1d'], /--expires/],
      ];
      const runs = await Promise.all(cases.map(([args]) => kontext(ctx.database, ['keys', 'create', ...args])));
      runs.forEach((run, i) => {
        expect(run.code, cases[i]![0].join(' ')).toBe(2);
        expect(run.stderr.trim().split('\n')).toHaveLength(1);
        expect(run.stderr).toMatch(cases[i]![1]);
        expect(run.stderr).toMatch(/Run 'kontext keys create --help' for usage/);
        expect(run.stdout).toBe('');
      });
      expect(await keyRows(ctx.db)).toEqual([]);
    }, 120_000);
  },
  ['sqlite'],
);

describe('kontext keys without a database', () => {
  it('create makes the SQLite database in DATA_DIR (and says so); list refuses a DATA_DIR without one', async () => {
    const dataDir = join(scratch, 'fresh');
    const list = await runKontext(scratch, ['keys', 'list'], { DATA_DIR: dataDir });
    expect(list.code).toBe(1);
    expect(list.stderr).toMatch(/no database at .*fresh\/kontext\.db/);
    const made = await runKontext(scratch, ['keys', 'create', '--name', 'first', '--json'], { DATA_DIR: dataDir });
    expect(made.code).toBe(0);
    expect(made.stderr).toMatch(/no database at .*fresh\/kontext\.db yet: creating it/);
    const { id } = JSON.parse(made.stdout) as KeyJson;
    const listed = await runKontext(scratch, ['keys', 'list', '--json'], { DATA_DIR: dataDir });
    expect((JSON.parse(listed.stdout) as KeyJson[]).map((k) => k.id)).toEqual([id]);
  }, 60_000);
});
