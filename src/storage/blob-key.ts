/**
 * Which keys a store accepts. Keys become file paths below the folder of a folder store, so they
 * must not escape it; segments starting with a dot are kept for the stores' own temporary files.
 */

const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/** Throws a TypeError unless `key` is one or more `/`-separated segments of letters, digits, `.`, `_`, `-`, none starting with a dot. */
export function assertBlobKey(key: string): void {
  if (key.length === 0 || key.length > 512 || !key.split('/').every((segment) => SEGMENT.test(segment))) {
    throw new TypeError(`invalid storage key ${JSON.stringify(key)}: use relative names like uploads/<sha256>.png`);
  }
}
