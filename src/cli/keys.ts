/**
 * `kontext keys create|list|revoke`: the service's API keys, in its database (SQLite in DATA_DIR or
 * DATABASE_URL), while it runs or not. The service sees a new or revoked key within 5 seconds (its
 * lookup cache). A key is printed once, at creation: the database keeps only its hash.
 */
import { createApiKey } from '../auth/create-api-key.js';
import { hashApiKey, KEY_PREFIX } from '../auth/api-key.js';
import { findApiKeyByHash, findApiKeys, listApiKeys, revokeApiKey } from '../db/api-keys.js';
import type { Db } from '../db/database.js';
import { KEY_PRIORITIES, KEY_SCOPES, type ApiKeyRow, type KeyPriority, type KeyScope } from '../db/types.js';
import { intOption, parseCommandLine, type Command } from './command.js';
import { cliConfig, openDataDir, withDb } from './environment.js';
import { clip, CommandError, escapeControl, EXIT, printJson, printTable, UsageError } from './output.js';

/** The longest key name: names label lists and task owners, they are not descriptions. */
const MAX_NAME = 100;
/** Upper bounds of the limits: far above any real use, and within a 32-bit integer column. */
const MAX = { concurrent: 10_000, perDay: 10_000_000, perMinute: 1_000_000 } as const;

const DATABASE = `The database is the service's: SQLite in DATA_DIR, or PostgreSQL at DATABASE_URL (the
same variables and .env as the service). The service may be running: it sees a new or revoked
key within 5 seconds.`;

const CREATE_USAGE = `Usage: kontext keys create --name <name> [--scopes <list>] [--max-concurrent <n>]
       [--images-per-day <n>] [--rate <n>] [--priority low|normal|high] [--json]

Creates an API key and prints it once: the database keeps only its hash, so store it now. From the
first key on, every API request needs a key (the service is no longer open), also when every key
is later revoked. Names need not be unique (to rotate a key, create its successor under the same
name, then revoke the old one by id).

${DATABASE} With SQLite and no database in DATA_DIR yet (a service never started there), the
database is created, and a note says so.

Options:
      --name <name>          a label for lists and task owners, 1-${MAX_NAME} characters (required)
      --scopes <list>        comma-separated: ${KEY_SCOPES.join(', ')} (default generate,read);
                             generate: make and cancel tasks; read: see tasks and images;
                             admin: both, and every key's tasks
      --max-concurrent <n>   pending plus processing tasks at once, 1-${MAX.concurrent} (default no limit)
      --images-per-day <n>   images in any 24 hours, 1-${MAX.perDay} (default no limit)
      --rate <n>             generate requests per minute, 1-${MAX.perMinute} (default no limit)
      --priority <p>         ${KEY_PRIORITIES.join(', ')}: higher is served first in the queue,
                             round-robin among keys of one priority (default normal)
      --json                 {"id", "name", "key", "prefix", "scopes", "maxConcurrent", "imagesPerDay",
                             "rate", "priority", "createdAt"} instead of text (null: no limit)
  -h, --help                 show this help

Exit codes: 0 created, 1 the database cannot be opened or written, 2 usage error.`;

const LIST_USAGE = `Usage: kontext keys list [--json]

Lists the API keys, oldest first, revoked ones too: id, name, the key's first characters (to
recognise it), scopes, limits, priority, when it was created, last used (recorded coarsely, about
once a minute) and revoked. Never the key itself, which is not stored.

${DATABASE}

Options:
      --json      a JSON array instead of a table
  -h, --help      show this help

Exit codes: 0 listed (also when there are none), 1 no database in DATA_DIR, 2 usage error.`;

const REVOKE_USAGE = `Usage: kontext keys revoke <key_id | key>

Revokes an API key, named by its id as 'kontext keys list' shows it (key_...), or by the key itself
(kx_..., e.g. one found leaked): the service refuses it within 5 seconds. Its tasks stay (an admin key still sees them). Revoking cannot be undone; revoking a
revoked key again changes nothing.

${DATABASE}

Options:
  -h, --help      show this help

Exit codes: 0 revoked (or already revoked), 1 no such key (or no database in DATA_DIR), 2 usage error.`;

/** `kontext keys create`. */
export const keysCreateCommand: Command = {
  name: 'keys create',
  usage: CREATE_USAGE,
  async run(argv) {
    const { values } = parseCommandLine(argv, {
      options: {
        name: { type: 'string' },
        scopes: { type: 'string' },
        'max-concurrent': { type: 'string' },
        'images-per-day': { type: 'string' },
        rate: { type: 'string' },
        priority: { type: 'string' },
        json: { type: 'boolean' },
      },
    });
    const name = nameOption(values.name);
    const scopes = scopesOption(values.scopes);
    const maxConcurrent = intOption('max-concurrent', values['max-concurrent'], 1, MAX.concurrent);
    const imagesPerDay = intOption('images-per-day', values['images-per-day'], 1, MAX.perDay);
    const ratePerMinute = intOption('rate', values.rate, 1, MAX.perMinute);
    const priority = priorityOption(values.priority);
    return withDb(await openDataDir(cliConfig(), { create: true }), async (db) => {
      const { key, row } = await createApiKey(db, {
        name,
        scopes,
        ...(maxConcurrent === undefined ? {} : { maxConcurrent }),
        ...(imagesPerDay === undefined ? {} : { imagesPerDay }),
        ...(ratePerMinute === undefined ? {} : { ratePerMinute }),
        ...(priority === undefined ? {} : { priority }),
      });
      const shownOnce = 'This is the only time the key is shown: store it now (the database keeps only its hash).';
      if (values.json) {
        const { prefix, scopes, maxConcurrent, imagesPerDay, rate, createdAt } = keyJson(row);
        printJson({ id: row.id, name: row.name, key, prefix, scopes, maxConcurrent, imagesPerDay, rate, priority: row.priority, createdAt });
        console.error(shownOnce);
        return EXIT.OK;
      }
      console.log(`created key ${row.id} "${escapeControl(row.name)}": scopes ${row.scopes}; limits: ${limitsText(row)}; priority ${row.priority}`);
      console.log('');
      console.log(`  ${key}`);
      console.log('');
      console.log(shownOnce);
      console.log(`Send it as 'Authorization: Bearer <key>' (or 'X-API-Key: <key>'); the service accepts it within 5 seconds.`);
      return EXIT.OK;
    });
  },
};

/** `kontext keys list`. */
export const keysListCommand: Command = {
  name: 'keys list',
  usage: LIST_USAGE,
  async run(argv) {
    const { values } = parseCommandLine(argv, { options: { json: { type: 'boolean' } } });
    return withDb(await openDataDir(cliConfig()), async (db) => {
      const keys = await listApiKeys(db);
      if (values.json) {
        printJson(keys.map((k) => ({ id: k.id, name: k.name, ...keyJson(k) })));
        return EXIT.OK;
      }
      if (keys.length === 0) {
        console.log("no keys: the service is open (it serves every request without a key until one is created with 'kontext keys create')");
        return EXIT.OK;
      }
      printTable(
        ['ID', 'NAME', 'PREFIX', 'SCOPES', 'LIMITS', 'PRIORITY', 'CREATED', 'LAST USED', 'REVOKED'],
        keys.map((k) => [k.id, clip(k.name, 40), `${k.prefix}…`, k.scopes, limitsText(k), k.priority, shortTime(k.created_at), shortTime(k.last_used_at), shortTime(k.revoked_at)]),
      );
      if (keys.every((k) => k.revoked_at)) console.log(activeNone());
      return EXIT.OK;
    });
  },
};

/** `kontext keys revoke <id>`. */
export const keysRevokeCommand: Command = {
  name: 'keys revoke',
  usage: REVOKE_USAGE,
  async run(argv) {
    const { positionals } = parseCommandLine(argv, { options: {}, allowPositionals: true });
    if (positionals.length === 0) throw new UsageError("a key id is required (key_..., see 'kontext keys list')");
    if (positionals.length > 1) throw new UsageError(`one key id, please (got ${positionals.length})`);
    const id = positionals[0]!;
    return withDb(await openDataDir(cliConfig()), async (db) => {
      // A leaked key found somewhere is revoked by itself: its id need not be known.
      const isKey = id.startsWith(KEY_PREFIX);
      const before = isKey ? await findApiKeyByHash(db, hashApiKey(id)) : (await findApiKeys(db, [id]))[0];
      if (!before || !(await revokeApiKey(db, before.id, new Date().toISOString()))) {
        // A key is never echoed: stderr may end up in a log.
        throw new CommandError(isKey ? "no key in the database matches the key given; see 'kontext keys list'" : `no key ${id}; see 'kontext keys list'`);
      }
      if (before.revoked_at) {
        console.log(escapeControl(`key ${before.id} "${before.name}" was already revoked at ${before.revoked_at}; nothing changed`));
        return EXIT.OK;
      }
      console.log(escapeControl(`key ${before.id} "${before.name}" revoked; the service refuses it within 5 seconds`));
      if (!(await anyActive(db))) console.log(activeNone());
      return EXIT.OK;
    });
  },
};

/** A key's fields for `--json`, past its id and name (never its hash). */
function keyJson(k: ApiKeyRow) {
  return {
    prefix: k.prefix,
    scopes: k.scopes.split(',').filter(Boolean),
    maxConcurrent: k.max_concurrent,
    imagesPerDay: k.images_per_day,
    rate: k.rate_per_minute,
    priority: k.priority,
    createdAt: k.created_at,
    lastUsedAt: k.last_used_at,
    revokedAt: k.revoked_at,
  };
}

/** `2 at once, 100 images/day, 10/min`, or `none`. */
function limitsText(k: ApiKeyRow): string {
  const parts = [
    k.max_concurrent === null ? undefined : `${k.max_concurrent} at once`,
    k.images_per_day === null ? undefined : `${k.images_per_day} images/day`,
    k.rate_per_minute === null ? undefined : `${k.rate_per_minute}/min`,
  ].filter((p) => p !== undefined);
  return parts.length ? parts.join(', ') : 'none';
}

async function anyActive(db: Db): Promise<boolean> {
  return (await listApiKeys(db)).some((k) => !k.revoked_at);
}

/** Revoking every key does not reopen the service: say so, it is easy to expect the opposite. */
function activeNone(): string {
  return "no key is active: the service refuses every API request (it does not become open again); create one with 'kontext keys create'";
}

function nameOption(raw: string | undefined): string {
  if (raw === undefined) throw new UsageError('--name is required (a label for the key, e.g. --name ci)');
  const name = raw.trim();
  if (name.length === 0 || name.length > MAX_NAME) throw new UsageError(`--name must be 1 to ${MAX_NAME} characters, not ${name.length}`);
  // Names are printed in tables and logs: control characters would only ever be a mistake or a trick.
  if (escapeControl(name) !== name) throw new UsageError('--name must not contain control characters');
  return name;
}

function scopesOption(raw: string | undefined): KeyScope[] {
  if (raw === undefined) return ['generate', 'read'];
  const words = raw.split(',').map((s) => s.trim().toLowerCase());
  const wrong = words.filter((w) => !(KEY_SCOPES as readonly string[]).includes(w));
  if (words.every((w) => w === '')) throw new UsageError(`--scopes must name at least one of ${KEY_SCOPES.join(', ')}`);
  if (wrong.length > 0) throw new UsageError(`--scopes must be a comma-separated list of ${KEY_SCOPES.join(', ')}, not '${raw}'`);
  // In a fixed order, each once: the stored list then reads the same however it was typed.
  return KEY_SCOPES.filter((s) => words.includes(s));
}

function priorityOption(raw: string | undefined): KeyPriority | undefined {
  if (raw === undefined) return undefined;
  const p = raw.trim().toLowerCase();
  if (!(KEY_PRIORITIES as readonly string[]).includes(p)) throw new UsageError(`--priority must be one of ${KEY_PRIORITIES.join(', ')}, not '${raw}'`);
  return p as KeyPriority;
}

/** An ISO time as `2025-01-02 03:04:05` (UTC, as stored); `-` for none. */
function shortTime(iso: string | null): string {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') : '-';
}
