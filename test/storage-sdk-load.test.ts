/**
 * STORAGE_URL=s3://... loads the AWS SDK only when the store is made. When the package cannot be
 * loaded (not installed, broken), the start stops with the one line of a StorageError that names
 * STORAGE_URL and the package, and nothing rejects unhandled (the store is closed on the way out).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { startApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { S3Store } from '../src/storage/s3-store.js';

// As a missing package fails its import (this file only: the other storage tests use the real SDK).
// Only the first import of the file fails so (vitest loads the real module at the next), so the
// other test uses the store's loader instead.
vi.mock('@aws-sdk/client-s3', () => {
  throw Object.assign(new Error("Cannot find package '@aws-sdk/client-s3' imported from s3-store.js"), { code: 'ERR_MODULE_NOT_FOUND' });
});

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
let dir: string;
afterEach(async () => {
  process.off('unhandledRejection', onUnhandled);
  await rm(dir, { recursive: true, force: true });
});

/** Lets pending rejections surface (a few turns of the event loop). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

it('the start fails with one line naming STORAGE_URL and the package, and nothing rejects unhandled', async () => {
  dir = await mkdtemp(join(tmpdir(), 'kontext-s3-sdk-'));
  process.on('unhandledRejection', onUnhandled);
  const config = { ...loadConfig({}), host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), comfyuiUrls: [], storageUrl: 's3://photos/kontext' };
  const err = await startApp(config).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(err?.name).toBe('StorageError');
  expect(err?.message).toMatch(/^STORAGE_URL=s3:\/\/photos\/kontext: .*@aws-sdk\/client-s3/);
  expect(err?.message).not.toContain('\n');
  await settle();
  expect(unhandled).toEqual([]);
});

it('a store never used, closed or not, rejects nothing unhandled; its first call gets the same one line', async () => {
  dir = await mkdtemp(join(tmpdir(), 'kontext-s3-sdk-'));
  process.on('unhandledRejection', onUnhandled);
  const loadSdk = () => Promise.reject(new Error('Cannot find package @aws-sdk/client-s3\n    at a stack line'));
  new S3Store({ bucket: 'photos', loadSdk }).close();
  const kept = new S3Store({ bucket: 'photos', prefix: 'kontext', loadSdk, variable: 'BACKUP_URL' });
  await settle();
  expect(unhandled).toEqual([]);
  const err = await kept.stat('a-key').then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(err?.name).toBe('StorageError');
  expect(err?.message).toBe('BACKUP_URL=s3://photos/kontext: needs the package @aws-sdk/client-s3, which could not be loaded (Cannot find package @aws-sdk/client-s3)');
});
