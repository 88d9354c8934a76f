/**
 * A store that cannot be used, found by `check()` at start. The message is one line that names the
 * variable to fix and why, e.g. `STORAGE_URL=s3://photos: the bucket "photos" does not exist`.
 */
export class StorageError extends Error {
  override readonly name = 'StorageError';
  constructor(
    /** The variable that chose the store: STORAGE_URL, or DATA_DIR when STORAGE_URL is unset. */
    readonly variable: string,
    /** Its value. */
    readonly value: string,
    /** What is wrong, in a few words. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${variable}=${value}: ${reason}`.replace(/\s*\n\s*/g, ' '), options);
  }
}
