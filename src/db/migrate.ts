/**
 * Runs the migrations at start. The only file that imports Kysely's migration API (it moves to
 * `kysely/migration` in 0.29). Migrations are imported here, not found on disk, so they are
 * type-checked and work the same from any build layout.
 */
import { Migrator, type Kysely, type Migration } from 'kysely';
import * as m0001 from './migrations/0001-legacy-tasks.js';
import * as m0002 from './migrations/0002-engine.js';
import * as m0003 from './migrations/0003-task-list-index.js';
import * as m0004 from './migrations/0004-heartbeats.js';
import * as m0005 from './migrations/0005-replicas.js';
import * as m0006 from './migrations/0006-api-keys.js';
import * as m0007 from './migrations/0007-webhooks.js';

const MIGRATIONS: Record<string, Migration> = {
  '0001-legacy-tasks': m0001,
  '0002-engine': m0002,
  '0003-task-list-index': m0003,
  '0004-heartbeats': m0004,
  '0005-replicas': m0005,
  '0006-api-keys': m0006,
  '0007-webhooks': m0007,
};

/** Brings the database to the latest schema; throws naming the migration that failed. */
export async function migrateToLatest(db: Kysely<unknown>): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => MIGRATIONS } });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error) {
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${(error as Error).message ?? String(error)}`);
  }
}
