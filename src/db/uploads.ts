/** Queries on `uploads`: stored reference images, keyed by content hash. */
import type { Db } from './database.js';
import type { NewUpload, UploadRow } from './types.js';

/** Records an upload; storing the same content twice keeps the first row. */
export async function saveUpload(db: Db, upload: NewUpload): Promise<void> {
  await db.insertInto('uploads').values(upload).onConflict((oc) => oc.column('sha256').doNothing()).execute();
}

export async function findUpload(db: Db, sha256: string): Promise<UploadRow | undefined> {
  return db.selectFrom('uploads').selectAll().where('sha256', '=', sha256).executeTakeFirst();
}

/** Of these uploads, deletes the rows no task refers to any more and returns them (to delete their files). */
export async function deleteUnreferenced(db: Db, sha256s: readonly string[]): Promise<UploadRow[]> {
  if (sha256s.length === 0) return [];
  return db
    .deleteFrom('uploads')
    .where('sha256', 'in', sha256s)
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('tasks').select('id').whereRef('tasks.upload_sha256', '=', 'uploads.sha256'))))
    .returningAll()
    .execute();
}
