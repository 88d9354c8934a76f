/**
 * `kontext db copy`: moves the SQLite database of a single service (DATA_DIR/kontext.db) into an
 * empty PostgreSQL database, so that the service, or several replicas, can run on DATABASE_URL.
 * Rows are copied as they are, in one transaction on the target, and counted before the commit.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { openDatabase, type Db } from '../db/database.js';
import { intOption, parseCommandLine, type Command } from './command.js';
import { cliConfig, dataDirOf } from './environment.js';
import { CommandError, EXIT, UsageError } from './output.js';

const USAGE = `Usage: kontext db copy --to <postgres-url> [--from <sqlite file>] [--batch <n>] [--force]

Copies the service's SQLite database (DATA_DIR/kontext.db, or --from) into an empty PostgreSQL
database, to run the service or several replicas with DATABASE_URL: every upload, task and image
row as it is (ids, timestamps, seq, last frames, owners), the API keys (their hashes: every key
keeps working), the settings (the image-URL signing secret: signed URLs handed out stay valid; the
webhook secret) and the webhook outbox (events not yet delivered are sent from the new database). Processing tasks lose their claim, so the first
service started on the new database adopts them as after a restart. Heartbeats are not copied.

Stop the service first. The copy refuses while a processing task's claim is live: a running service
renews it, a stopped one's lapses TASK_LEASE_S after the stop. Wait until then, or pass --force
when you know the service is stopped.

The target is migrated, then must hold no tasks, images, uploads, API keys or webhook events: copies are never
merged, so a second copy (or a database replicas already use) is refused. Settings a service
started on the target made (its own signing secret) are replaced by the source's. Everything is copied in one
transaction and counted before the commit: an interrupted copy leaves the target empty, ready for
another try. The SQLite file is only read (after bringing its schema up to date, as a start does).

Files are not moved: uploads/ and images/ stay in DATA_DIR, and the rows name them relative to it.
Either point the new service at that folder, STORAGE_URL=file:///<DATA_DIR> (a volume every replica
mounts), or copy both folders with their paths to a bucket, e.g.
  aws s3 sync <DATA_DIR>/uploads s3://<bucket>/<prefix>/uploads
  aws s3 sync <DATA_DIR>/images s3://<bucket>/<prefix>/images
and set STORAGE_URL=s3://<bucket>/<prefix>.

Options:
      --to <url>      the PostgreSQL database: postgres://user[:password]@host[:port]/database (required)
      --from <file>   the SQLite database file (default DATA_DIR/kontext.db)
      --batch <n>     rows per INSERT, from 1 to 2000 (default 500)
      --force         copy even though a processing task's claim has not lapsed
  -h, --help          show this help

Exit codes: 0 copied, 1 failure (no database at --from, a target that is not empty, live claims,
counts that differ, a database error; nothing is left in the target), 2 usage error.`;

/** Rows per INSERT by default: few round trips, well below PostgreSQL's 65535 parameters (tasks have 26 columns). */
const DEFAULT_BATCH = 500;
/** The most rows per INSERT: 2000 × 26 columns stays below PostgreSQL's 65535 parameters per statement. */
const MAX_BATCH = 2000;

/**
 * Tables in copy order (images reference tasks), with the key that pages through them. `replace`:
 * the source's rows replace the target's of the same key instead of requiring an empty table.
 */
const TABLES = [
  { name: 'uploads', key: ['sha256'], replace: false },
  { name: 'tasks', key: ['id'], replace: false },
  { name: 'images', key: ['task_id', 'idx'], replace: false },
  { name: 'api_keys', key: ['id'], replace: false },
  // A service started on the empty target made its own signing secret; the source's must win, or
  // the URLs it signed would stop working.
  { name: 'settings', key: ['name'], replace: true },
  // Undelivered events go on being sent from the new database (same ids: receivers can deduplicate).
  { name: 'webhook_outbox', key: ['id'], replace: false },
] as const;
type TableName = (typeof TABLES)[number]['name'];

// Rows are copied column by column as both databases name them, whatever this version's types say.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped on purpose, see above
type AnyDb = Kysely<any>;
type Row = Record<string, unknown>;

/** `kontext db copy`. */
export const dbCopyCommand: Command = {
  name: 'db copy',
  usage: USAGE,
  async run(argv) {
    const { values } = parseCommandLine(argv, {
      options: { to: { type: 'string' }, from: { type: 'string' }, batch: { type: 'string' }, force: { type: 'boolean' } },
    });
    if (values.to === undefined) throw new UsageError('--to is required (the PostgreSQL database to fill)');
    const target = printable(values.to);
    const batch = intOption('batch', values.batch, 1, MAX_BATCH) ?? DEFAULT_BATCH;
    // Only the default source needs the configuration: a bad variable must not stop `--from`.
    const file = values.from !== undefined ? resolve(values.from) : join(dataDirOf(cliConfig()), 'kontext.db');
    if (!existsSync(file)) throw new CommandError(`no SQLite database at ${file}; set DATA_DIR to the service's data folder, or pass --from`);

    await migrateSource(file);
    const source = openReadOnly(file);
    try {
      const started = Date.now();
      // One read transaction: in WAL mode it sees one snapshot, and never blocks a writer.
      const counts = await source.transaction().execute(async (src) => {
        if (!values.force) await refuseLiveClaims(src);
        const counts = await countRows(src);
        console.log(`copying ${file} to ${target}: ${summary(counts)}`);
        const dst = await openTarget(values.to!);
        try {
          await dst.transaction().execute(async (trx) => {
            await refuseNonEmpty(trx);
            for (const table of TABLES) await copyTable(src, trx, table, counts[table.name], batch);
            await verifyCounts(src, trx, counts);
          });
        } finally {
          await dst.destroy();
        }
        return counts;
      });
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      console.log(`copied ${summary(counts)} in ${seconds} s`);
      console.log(`next: run the service with DATABASE_URL=${target} and STORAGE_URL at the files of ${dirname(file)} (see --help)`);
      return EXIT.OK;
    } finally {
      await source.destroy();
    }
  },
};

/** The URL as it may be printed (no password); a URL that is not PostgreSQL's is a usage error. */
function printable(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Not echoed: a mistyped URL may still hold a password.
    throw new UsageError('--to is not a URL; expected postgres://user@host:port/database');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new UsageError(`--to must be a postgres:// URL, not ${url.protocol}//...`);
  }
  if (url.password) url.password = '***';
  return url.toString();
}

/** Brings an older SQLite file to the current schema, as the service's start would, so every column exists. */
async function migrateSource(file: string): Promise<void> {
  let db: Db;
  try {
    db = await openDatabase({ file });
  } catch (err) {
    throw new CommandError(`cannot open the SQLite database at ${file}: ${(err as Error).message}`);
  }
  await db.destroy();
}

/** A read-only handle on the SQLite file: the copy cannot change the source. */
function openReadOnly(file: string): AnyDb {
  return new Kysely({ dialect: new SqliteDialect({ database: new BetterSqlite3(file, { readonly: true, fileMustExist: true }) }) });
}

async function openTarget(url: string): Promise<AnyDb> {
  try {
    return (await openDatabase({ url, maxConnections: 1 })) as AnyDb;
  } catch (err) {
    // openDatabase names the variable the service reads; here the URL came from --to.
    throw new CommandError((err as Error).message.replace(/^DATABASE_URL:/, '--to:'));
  }
}

/**
 * A live claim means a service was running the task a moment ago: copied now, the old service would
 * go on with it while the new one adopts it too. Claims of a stopped service lapse after TASK_LEASE_S.
 */
async function refuseLiveClaims(src: AnyDb): Promise<void> {
  const now = new Date().toISOString();
  const live = (await src
    .selectFrom('tasks')
    .select(['id', 'claimed_by', 'lease_expires_at'])
    .where('status', '=', 'processing')
    .where('claimed_by', 'is not', null)
    .where('lease_expires_at', '>', now)
    .orderBy('lease_expires_at', 'desc')
    .execute()) as { id: string; claimed_by: string; lease_expires_at: string }[];
  const last = live[0];
  if (!last) return;
  throw new CommandError(
    `${live.length === 1 ? `task ${last.id} is` : `${live.length} tasks are`} claimed by the service on ${last.claimed_by} until ${last.lease_expires_at}: ` +
      `stop the service first; once it is stopped, run the copy again after that time (or now with --force)`,
  );
}

function summary(counts: Record<TableName, number>): string {
  // Webhook events only when there are some: the line reads as it did for a service without webhooks.
  const webhooks = counts.webhook_outbox > 0 ? `, ${counts.webhook_outbox} webhook events` : '';
  return `${counts.tasks} tasks, ${counts.images} images, ${counts.uploads} uploads, ${counts.api_keys} API keys, ${counts.settings} settings${webhooks}`;
}

async function countRows(db: AnyDb): Promise<Record<TableName, number>> {
  const counts = {} as Record<TableName, number>;
  for (const { name } of TABLES) {
    const { n } = (await db.selectFrom(name).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()) as { n: number | string };
    counts[name] = Number(n);
  }
  return counts;
}

/**
 * Merging two services' rows is not offered: the result would be neither database, and a copy
 * repeated after success would only fail on duplicate ids. The lock makes a second copy started at
 * the same time wait for this one, then find the target full; replicas may still read meanwhile.
 */
async function refuseNonEmpty(trx: AnyDb): Promise<void> {
  await sql`lock table uploads, tasks, images, api_keys, settings, webhook_outbox in share row exclusive mode`.execute(trx);
  const counts = await countRows(trx);
  const held = TABLES.filter((t) => !t.replace && counts[t.name] > 0).map((t) => `${counts[t.name]} ${t.name}`);
  if (held.length > 0) {
    throw new CommandError(`the target already holds ${held.join(', ')}; db copy only fills an empty database (create a new one, or drop this one's tables)`);
  }
}

/** Copies one table, `batch` rows per INSERT, paging through the source by its key. */
async function copyTable(src: AnyDb, trx: AnyDb, table: (typeof TABLES)[number], total: number, batch: number): Promise<void> {
  const columns = await sharedColumns(src, trx, table.name);
  let after: Row | undefined;
  let copied = 0;
  let printedAt = Date.now();
  for (;;) {
    let q = src.selectFrom(table.name).select(columns);
    if (after) {
      const last = after;
      const [k1, k2] = table.key as readonly string[];
      // A row value, (task_id, idx) > (…, …), for the two-column key; SQLite has them since 3.15.
      q = q.where((eb) => (k2 === undefined ? eb(k1!, '>', last[k1!]) : eb(eb.refTuple(k1!, k2), '>', eb.tuple(last[k1!], last[k2]))));
    }
    for (const k of table.key) q = q.orderBy(k);
    const rows = (await q.limit(batch).execute()) as Row[];
    if (rows.length === 0) break;
    const values = table.name === 'tasks' ? rows.map(withoutClaim) : table.name === 'webhook_outbox' ? rows.map(withoutLease) : rows;
    try {
      const insert = trx.insertInto(table.name).values(values);
      const rest = columns.filter((c) => !(table.key as readonly string[]).includes(c));
      await (table.replace
        ? insert.onConflict((oc) => oc.columns(table.key).doUpdateSet((eb) => Object.fromEntries(rest.map((c) => [c, eb.ref(`excluded.${c}`)]))))
        : insert
      ).execute();
    } catch (err) {
      const first = rows[0]!;
      throw new CommandError(`copying ${table.name} from ${describeKey(table.key, first)} failed: ${(err as Error).message}`);
    }
    copied += rows.length;
    after = rows[rows.length - 1];
    // A line a second at most: a large database would otherwise print thousands.
    if (Date.now() - printedAt >= 1000) {
      console.log(`  ${table.name}: ${copied} of ${total}`);
      printedAt = Date.now();
    }
  }
  console.log(`  ${table.name}: ${copied} of ${total}`);
}

/**
 * The columns both sides have. After the migrations that is every column of the target; a column
 * only the source has (an old service's own) is named and left behind.
 */
async function sharedColumns(src: AnyDb, trx: AnyDb, table: TableName): Promise<string[]> {
  const target = (
    await sql<{ column_name: string }>`select column_name from information_schema.columns where table_schema = current_schema() and table_name = ${table} order by ordinal_position`.execute(trx)
  ).rows.map((r) => r.column_name);
  const source = new Set((await sql<{ name: string }>`select name from pragma_table_info(${table})`.execute(src)).rows.map((r) => r.name));
  const extra = [...source].filter((c) => !target.includes(c));
  if (extra.length > 0) console.log(`  ${table}: not copied, no such column in the target: ${extra.join(', ')}`);
  return target.filter((c) => source.has(c));
}

/** Processing tasks keep their state but not their claim: the new service adopts them at once, as after a restart. */
function withoutClaim(row: Row): Row {
  return 'claimed_by' in row ? { ...row, claimed_by: null, lease_expires_at: null } : row;
}

/** Webhook events keep their state but not their lease: the new service's deliverer takes them at once. */
function withoutLease(row: Row): Row {
  return { ...row, leased_by: null, lease_expires_at: null };
}

function describeKey(key: readonly string[], row: Row): string {
  return key.map((k) => `${k} ${JSON.stringify(row[k])}`).join(', ');
}

/**
 * Inside the transaction, so a difference rolls the whole copy back. A replaced table may also hold
 * rows only the target had: there every source row must be there, as it is.
 */
async function verifyCounts(src: AnyDb, trx: AnyDb, expected: Record<TableName, number>): Promise<void> {
  const got = await countRows(trx);
  for (const t of TABLES.filter((t) => t.replace)) got[t.name] = await sameRows(src, trx, t.name, t.key);
  const wrong = TABLES.filter((t) => got[t.name] !== expected[t.name]).map((t) => `${t.name}: ${got[t.name]} instead of ${expected[t.name]}`);
  if (wrong.length > 0) throw new CommandError(`the copy does not match the source (${wrong.join('; ')}); nothing was committed`);
}

/** How many of the source's rows of `table` the target holds unchanged (for small tables: read whole). */
async function sameRows(src: AnyDb, trx: AnyDb, table: TableName, key: readonly string[]): Promise<number> {
  const id = (r: Row) => JSON.stringify(key.map((k) => r[k]));
  const whole = (r: Row) => JSON.stringify(Object.keys(r).sort().map((k) => [k, r[k]]));
  const there = new Map(((await trx.selectFrom(table).selectAll().execute()) as Row[]).map((r) => [id(r), whole(r)]));
  const source = (await src.selectFrom(table).selectAll().execute()) as Row[];
  return source.filter((r) => there.get(id(r)) === whole(r)).length;
}
