/**
 * Picks the store STORAGE_URL names: unset means the folder DATA_DIR, `file:///path` a folder
 * (a volume every replica mounts), `s3://bucket/prefix` a bucket. Call `check()` on the result
 * before serving, so a bad value stops the start with one line.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import type { BlobStore } from './blob-store.js';
import { FileStore } from './file-store.js';
import { S3Store } from './s3-store.js';
import { StorageError } from './storage-error.js';

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /** For `s3://`: merged over what the AWS SDK reads from the environment. @default {} */
  s3?: S3ClientConfig;
  /** For `s3://`: longest wait of `check()`, in ms. @default 5000 */
  checkTimeoutMs?: number;
  /** For `s3://`: where streams are spooled before a put (the service passes its per-replica temp folder). @default `dataDir`/tmp */
  tmpDir?: string;
}

/** The store for STORAGE_URL (`storageUrl`), or the folder `dataDir` when it is unset; throws a StorageError for a URL it cannot use. */
export function openStore(storageUrl: string | undefined, dataDir: string, options: OpenStoreOptions = {}): BlobStore {
  if (storageUrl === undefined || storageUrl === '') return new FileStore(dataDir, { variable: 'DATA_DIR', value: dataDir });
  let url: URL;
  try {
    url = new URL(storageUrl);
  } catch {
    throw new StorageError('STORAGE_URL', storageUrl, 'is not a URL (use file:///absolute/path or s3://bucket/prefix)');
  }
  if (url.protocol === 'file:') {
    let path: string;
    try {
      path = fileURLToPath(url);
    } catch (err) {
      throw new StorageError('STORAGE_URL', storageUrl, `is not a local folder (${(err as Error).message})`);
    }
    return new FileStore(path, { variable: 'STORAGE_URL', value: storageUrl });
  }
  if (url.protocol === 's3:') {
    if (!url.hostname) throw new StorageError('STORAGE_URL', storageUrl, 'names no bucket (use s3://bucket/prefix)');
    return new S3Store({
      bucket: url.hostname,
      prefix: decodeURIComponent(url.pathname),
      ...(options.s3 ? { client: options.s3 } : {}),
      ...(options.checkTimeoutMs !== undefined ? { checkTimeoutMs: options.checkTimeoutMs } : {}),
      tmpDir: options.tmpDir ?? join(dataDir, 'tmp'),
    });
  }
  throw new StorageError('STORAGE_URL', storageUrl, `unknown scheme ${url.protocol} (use file:///absolute/path or s3://bucket/prefix)`);
}
