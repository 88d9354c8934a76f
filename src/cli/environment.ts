/**
 * What commands take from the environment, as the service does: the configuration (same
 * variables, same `.env`) and the database in DATA_DIR.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { openDatabase, type Db } from '../db/database.js';
import type { BlobStore } from '../storage/blob-store.js';
import { openStore } from '../storage/open-store.js';
import { StorageError } from '../storage/storage-error.js';
import { CommandError, EXIT, UsageError } from './output.js';

/** The service's configuration; invalid variables end the command with their one-line-per-problem message (exit 2). */
export function cliConfig(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) throw new CommandError(err.message, EXIT.USAGE);
    throw err;
  }
}

/** DATA_DIR as an absolute path. */
export function dataDirOf(config: Config): string {
  return resolve(config.dataDir);
}

/** Options of `openDataDir`. */
export interface OpenDataDirOptions {
  /**
   * Create (and migrate) the SQLite file when DATA_DIR has none, saying so on stderr: for commands
   * that prepare a service before its first start (`keys create`). @default false
   */
  create?: boolean;
}

/**
 * Opens the service's database: PostgreSQL at DATABASE_URL, or SQLite in DATA_DIR. Refuses (exit 1)
 * when there is no SQLite file, rather than creating an empty one: a wrong DATA_DIR must not look
 * like "no tasks" (unless `create`).
 */
export async function openDataDir(config: Config, options: OpenDataDirOptions = {}): Promise<Db> {
  if (config.databaseUrl) {
    try {
      return await openDatabase({ url: config.databaseUrl });
    } catch (err) {
      throw new CommandError((err as Error).message);
    }
  }
  const file = join(dataDirOf(config), 'kontext.db');
  if (!existsSync(file)) {
    if (!options.create) throw new CommandError(`no database at ${file}; set DATA_DIR to the service's data folder (now ${JSON.stringify(config.dataDir)})`);
    // Said aloud: a mistyped DATA_DIR would otherwise hold a key the service never reads.
    console.error(`no database at ${file} yet: creating it (a service started with DATA_DIR=${JSON.stringify(config.dataDir)} will use it)`);
  }
  try {
    return await openDatabase({ file });
  } catch (err) {
    throw new CommandError(`cannot open the database at ${file}: ${(err as Error).message}`);
  }
}

/** The service's store of uploads and images (STORAGE_URL, DATA_DIR by default), checked; a bad one ends the command with its one line (exit 1). */
export async function openStorage(config: Config): Promise<BlobStore> {
  let store: BlobStore | undefined;
  try {
    store = openStore(config.storageUrl, dataDirOf(config));
    await store.check();
    return store;
  } catch (err) {
    store?.close();
    if (err instanceof StorageError) throw new CommandError(err.message);
    throw err;
  }
}

/** Runs `fn` with the store and closes it whatever happens. */
export async function withStore<T>(store: BlobStore, fn: (store: BlobStore) => Promise<T>): Promise<T> {
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

/** Runs `fn` with the database and closes it whatever happens. */
export async function withDb<T>(db: Db, fn: (db: Db) => Promise<T>): Promise<T> {
  try {
    return await fn(db);
  } finally {
    await db.destroy();
  }
}

/** The variable `generate` and `tasks cancel` read the API key from when `--api-key` is not given. */
export const API_KEY_VARIABLE = 'KONTEXT_API_KEY';

/**
 * The API key to present to the service: `--api-key`, else $KONTEXT_API_KEY; undefined for none
 * (an open service needs none). A key is a single word: anything else is a usage error, named
 * without echoing it.
 */
export function apiKeyOf(flag: string | undefined): string | undefined {
  const raw = flag ?? process.env[API_KEY_VARIABLE];
  const source = flag !== undefined ? '--api-key' : API_KEY_VARIABLE;
  if (raw === undefined || (flag === undefined && raw.trim() === '')) return undefined;
  const key = raw.trim();
  if (key === '') throw new UsageError(`${source} is empty; give the API key (kx_...)`);
  if (/[\s\u0000-\u001f\u007f]/.test(key)) throw new UsageError(`${source} must be one API key (kx_...), without spaces or control characters`);
  return key;
}

/** The header that presents `apiKey`; none without a key. */
export function authorizationHeader(apiKey: string | undefined): Record<string, string> {
  return apiKey === undefined ? {} : { authorization: `Bearer ${apiKey}` };
}
