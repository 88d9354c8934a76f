/**
 * The one interface uploads and images are stored through: a folder (one host, or a volume every
 * replica mounts) or an S3 bucket. Keys are relative, slash-separated names such as
 * `uploads/<sha256>.png` or `images/<task>/<index>.png` (see blob-key.ts for what is allowed).
 *
 * Every store keeps the same promises: a `put` is atomic (a reader sees the old object, the new
 * one or none, never a part), a missing key is `undefined` rather than an error, and reads stream.
 */
import type { Readable } from 'node:stream';

/** What a store knows about one stored object. */
export interface BlobStat {
  /** Size in bytes. */
  size: number;
  /**
   * A strong validator, already quoted for an HTTP `ETag` header: it changes whenever the bytes may
   * have changed (S3: the object's ETag; folder: inode, size and modification time of the file).
   */
  etag: string;
  /** When the object was last written. */
  lastModified: Date;
}

/** What a successful `put` stored. */
export interface PutResult {
  /** Size in bytes. */
  size: number;
  /** As {@link BlobStat.etag}. */
  etag: string;
}

/** Options of {@link BlobStore.put}. */
export interface PutOptions {
  /** Recorded with the object where the store keeps it (S3's Content-Type). @default undefined (application/octet-stream on S3) */
  contentType?: string;
  /**
   * The source file (a path source only) is the store's to take: a folder store renames it into
   * place when it is on the same file system, any store removes it once the object is stored. On
   * failure the source stays. @default false (the source file is copied and left as it is)
   */
  move?: boolean;
  /**
   * The source file (a path source only) is already on disk for good (fsync'ed, as receiveUpload
   * leaves it): a folder store that moves it skips syncing it again. @default false
   */
  synced?: boolean;
}

/** A byte range, inclusive at both ends, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  /** First byte, from 0. */
  start: number;
  /** Last byte, inclusive; clamped to the object's end. @default the last byte */
  end?: number;
}

/** Options of {@link BlobStore.get}. */
export interface GetOptions {
  /** Only these bytes; a `start` at or past the end rejects with a RangeError. @default the whole object */
  range?: ByteRange;
}

/** Uploads and images, wherever they live. */
export interface BlobStore {
  /** Where the objects are, for logs and messages (`file:///...` or `s3://bucket/prefix`; never credentials). */
  readonly location: string;

  /**
   * Fails with one readable line (a {@link StorageError} naming the variable and the reason) when
   * the store cannot be used: a folder that cannot be created or written, a bucket that does not
   * exist or an endpoint that does not answer (within a bounded time). Call it once at start.
   */
  check(): Promise<void>;

  /** Stores `source` (a local file's path, or a stream) under `key`, replacing what was there, atomically. */
  put(key: string, source: string | Readable, options?: PutOptions): Promise<PutResult>;

  /** A stream of the object's bytes (or of `range`), or undefined when there is no such object. */
  get(key: string, options?: GetOptions): Promise<Readable | undefined>;

  /** Size, ETag and modification time of the object, or undefined when there is none. */
  stat(key: string): Promise<BlobStat | undefined>;

  /** Whether there is an object under `key`. */
  exists(key: string): Promise<boolean>;

  /** Removes the object; nothing happens when there is none. */
  delete(key: string): Promise<void>;

  /** Removes every object under `folder/` (a task's images with their variants); nothing happens when there is none. */
  deleteFolder(folder: string): Promise<void>;

  /** Releases what the store holds open (an S3 client's sockets); streams already returned keep working until they end. */
  close(): void;

  /**
   * The object's path on this machine, for readers that want a file (sharp, uploads to ComfyUI)
   * without a copy. Only stores backed by a local folder have it; the file may not exist.
   */
  localPath?(key: string): string;
}
