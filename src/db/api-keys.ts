/** Queries on `api_keys` (only this module writes SQL for it). */
import type { Db } from './database.js';
import type { ApiKeyRow, NewApiKey } from './types.js';

/** Stores a new key (its hash, never the key). */
export async function insertApiKey(db: Db, key: NewApiKey): Promise<ApiKeyRow> {
  return db.insertInto('api_keys').values(key).returningAll().executeTakeFirstOrThrow();
}

/** The key with this hash, revoked or not. */
export async function findApiKeyByHash(db: Db, hash: string): Promise<ApiKeyRow | undefined> {
  return db.selectFrom('api_keys').selectAll().where('hash', '=', hash).executeTakeFirst();
}

/** Keys by id (for owners' priorities and names). */
export async function findApiKeys(db: Db, ids: readonly string[]): Promise<ApiKeyRow[]> {
  if (ids.length === 0) return [];
  return db.selectFrom('api_keys').selectAll().where('id', 'in', ids).execute();
}

/** Every key, oldest first, revoked ones included. */
export async function listApiKeys(db: Db): Promise<ApiKeyRow[]> {
  return db.selectFrom('api_keys').selectAll().orderBy('created_at').orderBy('id').execute();
}

/** Whether any key exists, revoked or not: once one was made the service never falls back to open. */
export async function anyApiKey(db: Db): Promise<boolean> {
  return (await db.selectFrom('api_keys').select('id').limit(1).executeTakeFirst()) !== undefined;
}

/** Marks a key revoked; false when there is no such key (revoking twice keeps the first time). */
export async function revokeApiKey(db: Db, id: string, at: string): Promise<boolean> {
  const row = await db.selectFrom('api_keys').select(['id', 'revoked_at']).where('id', '=', id).executeTakeFirst();
  if (!row) return false;
  if (!row.revoked_at) await db.updateTable('api_keys').set({ revoked_at: at }).where('id', '=', id).execute();
  return true;
}

/** Records that a key was used (callers throttle this: it is coarse on purpose). */
export async function touchApiKey(db: Db, id: string, at: string): Promise<void> {
  await db.updateTable('api_keys').set({ last_used_at: at }).where('id', '=', id).execute();
}
