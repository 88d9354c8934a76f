/**
 * Whether the database takes writes right now. The driver reports every write's outcome; after a
 * failure (disk full, locked by another process, I/O error) a probe write is tried every
 * `probeIntervalMs` until one succeeds, so the service notices by itself when space or the lock
 * comes back, even when nothing else writes. `/ready` answers 503 while writes fail.
 */
import { EventEmitter } from 'node:events';

/** Options of {@link WriteHealth}. */
export interface WriteHealthOptions {
  /** Time between probe writes while writes fail, in ms. @default 1000 */
  probeIntervalMs?: number;
}

export class WriteHealth extends EventEmitter<{ change: [ok: boolean, error: string | null] }> {
  /** The last write succeeded. */
  ok = true;
  /** Why the last write failed, readable, with the driver's code and message; null while writes succeed. */
  error: string | null = null;
  /** The same in a few words that name no file (for anyone asking /ready); null while writes succeed. */
  reason: string | null = null;
  private probe: (() => Promise<unknown>) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly probeIntervalMs: number;

  constructor(options: WriteHealthOptions = {}) {
    super();
    this.probeIntervalMs = options.probeIntervalMs ?? 1000;
  }

  /** Sets the write tried while writes fail (its outcome reaches this object through the driver). */
  setProbe(probe: () => Promise<unknown>): void {
    this.probe = probe;
  }

  /** A write failed. */
  failed(err: unknown): void {
    const error = describeWriteError(err);
    const changed = this.ok;
    this.ok = false;
    this.error = error;
    this.reason = writeErrorReason(err);
    if (changed) this.emit('change', false, error);
    this.schedule();
  }

  /** A write succeeded. */
  succeeded(): void {
    if (this.ok) return;
    this.ok = true;
    this.error = null;
    this.reason = null;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.emit('change', true, null);
  }

  /** Stops probing (the database is closing). */
  stop(): void {
    clearTimeout(this.timer);
    this.probe = undefined;
  }

  private schedule(): void {
    if (this.timer || !this.probe) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // A failed probe reports itself through the driver, which schedules the next one.
      this.probe?.().catch(() => undefined);
    }, this.probeIntervalMs);
    this.timer.unref();
  }
}

/** A database error as an operator reads it: what is wrong first, the driver's code and message after. */
export function describeWriteError(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  const reason = writeErrorReason(err);
  if (reason === 'unknown error') return message;
  return code === undefined ? `${reason} (${message})` : `${reason} (${String(code)}: ${message})`;
}

/** What stops writes, in a few words that name no file or query. */
export function writeErrorReason(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT') return 'the disk holding the database is full';
  if (typeof code === 'string' && code.startsWith('SQLITE_BUSY')) return 'the database is locked by another process';
  if (code === 'SQLITE_READONLY' || code === 'EROFS') return 'the database is read-only';
  if (typeof code === 'string' && (code.startsWith('SQLITE_IOERR') || code === 'EIO')) return 'the database cannot be written (I/O error)';
  return postgresErrorReason(err) ?? 'unknown error';
}

/**
 * The same for PostgreSQL: SQLSTATE codes (https://www.postgresql.org/docs/current/errcodes-appendix.html)
 * and {@link DatabaseUnreachableError}; undefined for any other error.
 */
function postgresErrorReason(err: unknown): string | undefined {
  if (err instanceof DatabaseUnreachableError) return 'the database server cannot be reached';
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return undefined;
  if (code === '53100') return 'the disk holding the database is full';
  if (code === '25006') return 'the database is read-only';
  if (code === '58030') return 'the database cannot be written (I/O error)';
  if (code === '53300') return 'the database server accepts no more connections';
  // 08: connection exception; 57P01-57P03: the server is shutting down, crashed or starting.
  if (code.startsWith('08') || /^57P0[123]$/.test(code)) return 'the database server cannot be reached';
  return undefined;
}

/**
 * The PostgreSQL server could not be reached or dropped the connection (refused, reset, timed out).
 * The driver wraps such network errors in this class so that they tell apart from the same Node
 * codes on other connections (a ComfyUI server refusing is not a storage problem).
 */
export class DatabaseUnreachableError extends Error {
  /** Matched by {@link isStorageUnavailable}. */
  readonly code = 'DATABASE_UNREACHABLE';
  constructor(cause: unknown) {
    const inner = (cause as { code?: unknown }).code;
    const message = cause instanceof Error ? cause.message : String(cause);
    super(typeof inner === 'string' ? `${inner}: ${message}` : message, { cause });
    this.name = 'DatabaseUnreachableError';
  }
}

/**
 * Codes of a disk or database that cannot take writes now but may later (full, locked, read-only,
 * I/O, unreachable): SQLite's, Node's, and PostgreSQL's SQLSTATEs for the same (see postgresErrorReason).
 */
const UNAVAILABLE = /^(SQLITE_(BUSY|FULL|IOERR|READONLY|CANTOPEN|LOCKED)|ENOSPC|EDQUOT|EROFS|EIO|DATABASE_UNREACHABLE$|53100$|53300$|25006$|58030$|08[0-9A-Z]{3}$|57P0[123]$)/;

/** True for an error that says storage is unavailable (worth waiting for), not that the request was wrong. */
export function isStorageUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && UNAVAILABLE.test(code)) return true;
  }
  return false;
}
