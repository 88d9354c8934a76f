/**
 * The hot reads that run straight on better-sqlite3 (src/db/direct-reads.ts) must look to the
 * handle's `onQuery` exactly as Kysely's executor would: the same event shape, one event per query,
 * and the same rows when SQLite is busy and the read goes through Kysely instead.
 */
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import BetterSqlite3 from 'better-sqlite3';
import type { LogEvent } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../src/db/database.js';
import { imagesOfTask, imagesOfTasks, insertImages } from '../src/db/images.js';
import { findTask, insertTask, listTasks } from '../src/db/tasks.js';

/**
 * Holds, from another process, the two locks of the `-shm` file that a process recovering the WAL
 * holds: the unix VFS keeps SQLite's shm locks at byte 120 + n (0: write, 2: recover). Until its
 * stdin closes. In Python because Node has no fcntl().
 */
const RECOVERY_LOCKER = `
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
for byte in (120, 122):
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, byte, os.SEEK_SET)
print("locked", flush=True)
sys.stdin.read()
`;
const python = spawnSync('python3', ['-c', 'import fcntl'], { stdio: 'ignore' }).status === 0;
if (!python && process.env.CI) throw new Error('direct reads: python3 with fcntl is needed to hold SQLite\'s recovery lock');
if (!python) console.warn('skipping the SQLITE_BUSY fallback of direct reads: no python3 with fcntl to hold SQLite\'s recovery lock');

let dir: string;
let file: string;
let db: Db | undefined;
let other: BetterSqlite3.Database | undefined;
let locker: ChildProcessByStdio<Writable, Readable, null> | undefined;
let events: LogEvent[];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kontext-direct-reads-'));
  file = join(dir, 'kontext.db');
  events = [];
  db = await openDatabase({ file, onQuery: (event) => void events.push(event) });
  const at = new Date().toISOString();
  for (const id of ['t1', 't2']) {
    await insertTask(db, { id, description: `task ${id}`, status: 'completed', created_at: at, updated_at: at });
    await insertImages(db, [0, 1].map((idx) => ({ task_id: id, idx, seed: idx, prompt_id: `${id}-${idx}`, status: 'completed' as const })));
  }
  events.length = 0;
});
afterEach(async () => {
  locker?.kill();
  locker = undefined;
  other?.close();
  other = undefined;
  await db?.destroy();
  db = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** What a value is made of, at every level: its own keys (symbols too), each value's type; not the values. */
function shape(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value === null ? 'null' : typeof value;
  const keys = Reflect.ownKeys(value).map(String).sort();
  return {
    kind: Array.isArray(value) ? 'array' : (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)?.constructor?.name ?? 'null-prototype',
    // Any key whose value has another shape, or that one side lacks, makes the two differ.
    keys: Object.fromEntries(keys.map((key) => [key, shape((value as Record<string, unknown>)[key])])),
  };
}

/** Whether `promise` has settled, checked later. */
function watch(promise: Promise<unknown>): () => boolean {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  return () => settled;
}

/** The task-status read: made once through the direct path and once through Kysely. */
async function directAndKyselyEvents(d: Db): Promise<{ direct: LogEvent; kysely: LogEvent }> {
  await findTask(d, 't1'); // the first use compiles the query, through Kysely
  events.length = 0;
  const direct = findTask(d, 't1');
  // Reported before the promise settles: it ran at once, not through Kysely's asynchronous executor.
  expect(events).toHaveLength(1);
  expect((await direct)?.description).toBe('task t1');
  const [directEvent] = events.splice(0);
  // A transaction is open on the handle: the same compiled read declines the direct path and waits
  // its turn through Kysely's executor.
  let viaKysely!: Promise<unknown>;
  await d.transaction().execute(async () => {
    viaKysely = findTask(d, 't1');
    expect(events).toHaveLength(0);
  });
  expect(await viaKysely).toMatchObject({ id: 't1', description: 'task t1' });
  expect(events).toHaveLength(1);
  return { direct: directEvent!, kysely: events[0]! };
}

describe('direct reads on SQLite', () => {
  it('report a query to onQuery in the shape Kysely reports the same compiled query', async () => {
    const { direct, kysely } = await directAndKyselyEvents(db!);
    expect(shape(direct)).toEqual(shape(kysely));
    for (const event of [direct, kysely]) {
      expect(event.level).toBe('query');
      expect(event.query.sql).toMatch(/^select \* from "tasks" where "id" = \?$/);
      expect(event.query.parameters).toEqual(['t1']);
      expect(typeof event.queryDurationMillis).toBe('number');
      expect(event.queryDurationMillis).toBeGreaterThanOrEqual(0);
    }
    expect(direct.query.sql).toBe(kysely.query.sql);
    expect(direct).toMatchObject({ isStream: false });
    expect(kysely).toMatchObject({ isStream: false });
  });

  it.each([
    ['findTask', (d: Db) => findTask(d, 't2')],
    ['listTasks', (d: Db) => listTasks(d, { limit: 10, status: 'completed' })],
    ['listTasks after a cursor', (d: Db) => listTasks(d, { limit: 10, after: { createdAt: '9999', id: 'z' } })],
    ['imagesOfTask', (d: Db) => imagesOfTask(d, 't1')],
    ['imagesOfTasks', (d: Db) => imagesOfTasks(d, ['t1', 't2'])],
  ])('log %s once when it runs directly, with the rows Kysely read', async (_name, read) => {
    const d = db!;
    const first = await read(d); // compiled and run through Kysely
    expect(events).toHaveLength(1);
    events.length = 0;
    const again = read(d);
    expect(events).toHaveLength(1); // at once: the direct path
    expect(await again).toEqual(first);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ level: 'query', query: { sql: expect.stringMatching(/^select /) } });
  });

  it('report a read that fails at once as Kysely reports it: one error event of the same shape', async () => {
    const d = db!;
    await imagesOfTask(d, 't1'); // compiled
    other = new BetterSqlite3(file);
    other.exec('drop table images'); // another process's migration gone wrong: the kept statement now fails
    events.length = 0;
    const direct = imagesOfTask(d, 't1');
    await expect(direct).rejects.toThrow(/no such table: images/);
    expect(events).toHaveLength(1);
    const [directEvent] = events.splice(0);
    let viaKysely!: Promise<unknown>;
    await d.transaction().execute(async () => {
      viaKysely = imagesOfTask(d, 't1');
      viaKysely.catch(() => undefined); // awaited below, after the transaction
    });
    await expect(viaKysely).rejects.toThrow(/no such table: images/);
    expect(events).toHaveLength(1);
    expect(directEvent).toMatchObject({ level: 'error', query: { parameters: ['t1'] } });
    expect(shape(directEvent)).toEqual(shape(events[0]));
    expect(directEvent!.query.sql).toBe(events[0]!.query.sql);
  });

  /*
   * In WAL mode a second better-sqlite3 handle holds no lock that makes this handle's reads busy:
   * `locking_mode=EXCLUSIVE` needs an exclusive lock on the database file, which the service's
   * handle prevents with the shared lock it keeps from its first read on (the other handle gets
   * SQLITE_BUSY, the reads go on); BEGIN IMMEDIATE or EXCLUSIVE and TRUNCATE or RESTART checkpoints
   * never block WAL readers beyond the synchronous call itself. What does: a process recovering the
   * WAL (SQLite's "sometimes queries return SQLITE_BUSY in WAL mode"), which readers meet when the
   * WAL index header is torn, as a writer that died while updating it leaves it. That is made here
   * for real: another process holds the recovery locks and the header's two copies differ.
   */
  it.skipIf(!python)('fall back to Kysely when SQLite is busy (a WAL recovery), and log the read once, with the right rows', async () => {
    const d = db!;
    await findTask(d, 't1'); // compiled
    const child = (locker = spawn('python3', ['-c', RECOVERY_LOCKER, `${file}-shm`], { stdio: ['pipe', 'pipe', 'inherit'] }));
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`the locker exited with ${code}`)));
    });
    await tearWalIndexHeader(`${file}-shm`);
    events.length = 0;
    const read = findTask(d, 't1');
    expect(events).toHaveLength(0); // the direct attempt met SQLITE_BUSY_RECOVERY and declined, unlogged
    const settled = watch(read);
    await new Promise((r) => setTimeout(r, 150));
    expect(settled()).toBe(false); // Kysely's path retries while the recovery lock is held
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin.end();
    await exited;
    expect(await read).toMatchObject({ id: 't1', description: 'task t1', status: 'completed' });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ level: 'query', query: { parameters: ['t1'] } });
    expect(events[0]!.query.sql).toMatch(/^select \* from "tasks" where "id" = \?$/);
    expect(events[0]!.queryDurationMillis).toBeGreaterThanOrEqual(140); // Kysely's event, timed over the wait
    // This handle recovered the WAL itself on the retry: the next read runs at once again.
    events.length = 0;
    const next = findTask(d, 't2');
    expect(events).toHaveLength(1);
    expect((await next)?.description).toBe('task t2');
  });
});

/**
 * Makes the two copies of the WAL index header (48 bytes each at the start of the `-shm` file)
 * differ, as a writer that died halfway through updating them leaves them: the next reader must
 * recover the index from the WAL. Changes the second copy's change counter.
 */
async function tearWalIndexHeader(shm: string): Promise<void> {
  const handle = await open(shm, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, 48 + 8);
    byte[0] = byte[0]! ^ 0xff;
    await handle.write(byte, 0, 1, 48 + 8);
  } finally {
    await handle.close();
  }
}
