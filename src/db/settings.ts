/** Queries on `settings`: values every replica shares (only this module writes SQL for it). */
import type { Db } from './database.js';

/**
 * The stored value of `name`, storing `fallback` first when there is none. Replicas starting at once
 * all end up with the value the first one stored.
 */
export async function settingOrCreate(db: Db, name: string, fallback: string): Promise<string> {
  await db
    .insertInto('settings')
    .values({ name, value: fallback })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  const row = await db.selectFrom('settings').select('value').where('name', '=', name).executeTakeFirstOrThrow();
  return row.value;
}
