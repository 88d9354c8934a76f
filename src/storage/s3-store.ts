/**
 * A {@link BlobStore} in an S3 bucket (`STORAGE_URL=s3://bucket/prefix`): AWS S3 or anything that
 * speaks its protocol (MinIO, R2, s3rver). Credentials, region and endpoint come from the AWS SDK's
 * own variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL_S3); with a
 * custom endpoint, requests use path-style addressing (`endpoint/bucket/key`), which those servers expect.
 *
 * A PutObject is atomic by itself: S3 shows an object only once all of it arrived.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
// Types only: the SDK (about 100 ms of module loading) is loaded when a store is made, not by every start.
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';

/** The SDK module, loaded on first use. */
type S3Sdk = typeof import('@aws-sdk/client-s3');
import { assertBlobKey } from './blob-key.js';
import type { BlobStat, BlobStore, GetOptions, PutOptions, PutResult } from './blob-store.js';
import { describeS3Failure, isS3Absent, isS3ClientError } from './s3-failure.js';
import { StorageError } from './storage-error.js';

/** Options of {@link S3Store}. */
export interface S3StoreOptions {
  bucket: string;
  /** Prepended to every key, without leading or trailing slashes. @default '' */
  prefix?: string;
  /** Merged over what the SDK reads from the environment (tests pass an endpoint and credentials here). @default {} */
  client?: S3ClientConfig;
  /** Longest wait of `check()` for the bucket to answer, in ms. @default 5000 */
  checkTimeoutMs?: number;
  /** Attempts of a put that fails on the network or with a server error (the SDK cannot retry a stream body). @default 3 */
  putAttempts?: number;
  /** The variable named in `check()` errors. @default 'STORAGE_URL' */
  variable?: string;
  /** Where a put of a stream is spooled before it is sent (created when missing): the service's DATA_DIR/tmp, not the system's. @default os.tmpdir() */
  tmpDir?: string;
  /** Loads the SDK (tests make it fail). @default import('@aws-sdk/client-s3') */
  loadSdk?: () => Promise<S3Sdk>;
}

export class S3Store implements BlobStore {
  readonly location: string;
  /** The SDK and its client once loaded (the first call of any method waits for it). */
  private readonly sdk: Promise<{ sdk: S3Sdk; client: S3Client }>;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly endpoint: string | undefined;
  private readonly options: S3StoreOptions;

  constructor(options: S3StoreOptions) {
    this.options = options;
    this.bucket = options.bucket;
    this.prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.location = `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ''}`;
    const envEndpoint = process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined;
    const custom = options.client?.endpoint !== undefined || envEndpoint !== undefined;
    this.endpoint = typeof options.client?.endpoint === 'string' ? options.client.endpoint : envEndpoint;
    const config: S3ClientConfig = {
      // S3-compatible servers answer on one host name, not on <bucket>.<host>.
      forcePathStyle: custom,
      // Their region is a formality, but signing needs one; AWS itself keeps the SDK's own lookup (env, profile).
      ...(custom && !process.env.AWS_REGION ? { region: 'us-east-1' } : {}),
      // The SDK's default checksums send streams as aws-chunked bodies with a trailer, which
      // S3-compatible servers (s3rver, older MinIO) store verbatim, framing and all.
      ...(custom && !process.env.AWS_REQUEST_CHECKSUM_CALCULATION ? { requestChecksumCalculation: 'WHEN_REQUIRED' as const } : {}),
      ...(custom && !process.env.AWS_RESPONSE_CHECKSUM_VALIDATION ? { responseChecksumValidation: 'WHEN_REQUIRED' as const } : {}),
      // A dead endpoint must fail a request, not hang it: connect within 5 s, no socket idle for a minute.
      requestHandler: { connectionTimeout: 5000, socketTimeout: 60_000 },
      ...options.client,
    };
    this.sdk = (options.loadSdk ?? (() => import('@aws-sdk/client-s3')))().then(
      (sdk) => ({ sdk, client: new sdk.S3Client(config) }),
      (err: unknown) => {
        // Not installed (a trimmed image) or broken: the start's one line says which package.
        const why = (err instanceof Error ? err.message : String(err)).split('\n', 1)[0];
        throw new StorageError(options.variable ?? 'STORAGE_URL', this.location, `needs the package @aws-sdk/client-s3, which could not be loaded (${why})`, { cause: err });
      },
    );
    // Handled here too: a store closed before any call awaited it must not reject unhandled.
    this.sdk.catch(() => undefined);
  }

  async check(): Promise<void> {
    const { sdk, client } = await this.sdk;
    const timeoutMs = this.options.checkTimeoutMs ?? 5000;
    try {
      await client.send(new sdk.HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const reason = describeS3Failure(err, { bucket: this.bucket, endpoint: this.endpoint, timeoutMs });
      throw new StorageError(this.options.variable ?? 'STORAGE_URL', this.location, reason, { cause: err });
    }
  }

  async put(key: string, source: string | Readable, options: PutOptions = {}): Promise<PutResult> {
    const { sdk, client } = await this.sdk;
    const objectKey = this.keyOf(key);
    // PutObject needs the length before the first byte: a stream is spooled to a temporary file first.
    const spool = typeof source === 'string' ? undefined : await spoolToFile(source, this.options.tmpDir ?? tmpdir());
    const path = spool ? spool.path : (source as string);
    try {
      const { size } = await stat(path);
      const attempts = this.options.putAttempts ?? 3;
      for (let attempt = 1; ; attempt++) {
        try {
          const out = await client.send(
            new sdk.PutObjectCommand({
              Bucket: this.bucket,
              Key: objectKey,
              Body: createReadStream(path),
              ContentLength: size,
              ...(options.contentType ? { ContentType: options.contentType } : {}),
            }),
          );
          if (typeof source === 'string' && options.move) await unlink(source).catch(() => undefined);
          return { size, etag: out.ETag ?? (await this.stat(key))?.etag ?? '""' };
        } catch (err) {
          if (attempt >= attempts || isS3ClientError(err)) throw err;
        }
      }
    } finally {
      if (spool) await spool.remove();
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable | undefined> {
    const { sdk, client } = await this.sdk;
    const range = options.range;
    if (range && range.end !== undefined && range.end < range.start) {
      throw new RangeError(`range ${range.start}-${range.end} is empty`);
    }
    try {
      const out = await client.send(
        new sdk.GetObjectCommand({
          Bucket: this.bucket,
          Key: this.keyOf(key),
          ...(range ? { Range: `bytes=${range.start}-${range.end ?? ''}` } : {}),
        }),
      );
      // In Node the body is the HTTP response itself: streamed as it arrives, never buffered whole.
      return out.Body as Readable;
    } catch (err) {
      if (isS3Absent(err)) return undefined;
      if ((err as { name?: string }).name === 'InvalidRange') {
        throw new RangeError(`range ${range?.start}-${range?.end ?? ''} is outside ${key}`, { cause: err });
      }
      throw err;
    }
  }

  async stat(key: string): Promise<BlobStat | undefined> {
    const { sdk, client } = await this.sdk;
    try {
      const out = await client.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key) }));
      return { size: out.ContentLength ?? 0, etag: out.ETag ?? '""', lastModified: out.LastModified ?? new Date(0) };
    } catch (err) {
      if (isS3Absent(err)) return undefined;
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.stat(key)) !== undefined;
  }

  async delete(key: string): Promise<void> {
    const { sdk, client } = await this.sdk;
    // S3 answers 204 for a key that is not there, so an absent object needs no case of its own.
    await client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key) }));
  }

  async deleteFolder(folder: string): Promise<void> {
    const { sdk, client } = await this.sdk;
    const prefix = `${this.keyOf(folder)}/`;
    // A page lists at most 1000 keys, and DeleteObjects takes at most 1000: one request per page.
    for (let token: string | undefined; ; ) {
      const page = await client.send(new sdk.ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length) await client.send(new sdk.DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys, Quiet: true } }));
      if (!page.IsTruncated || !page.NextContinuationToken) return;
      token = page.NextContinuationToken;
    }
  }

  close(): void {
    // Without an SDK there is no client to close (its load failure is told by the calls).
    void this.sdk.then(({ client }) => client.destroy(), () => undefined);
  }

  private keyOf(key: string): string {
    assertBlobKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }
}

/** Writes `source` to a new private temporary file below `tmpDir`; the caller calls `remove()`. */
async function spoolToFile(source: Readable, tmpDir: string): Promise<{ path: string; remove: () => Promise<void> }> {
  await mkdir(tmpDir, { recursive: true });
  const dir = await mkdtemp(join(tmpDir, 'kontext-s3-'));
  const remove = () => rm(dir, { recursive: true, force: true });
  const path = join(dir, randomUUID());
  try {
    await pipeline(source, createWriteStream(path, { flags: 'wx' }));
  } catch (err) {
    await remove();
    throw err;
  }
  return { path, remove };
}
