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
  /** Why the last write failed, readable, with SQLite's code and message; null while writes succeed. */
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

/** A database error as an operator reads it: what is wrong first, SQLite's code and message after. */
export function describeWriteError(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  const reason = writeErrorReason(err);
  return reason === 'unknown error' ? message : `${reason} (${String(code)}: ${message})`;
}

/** What stops writes, in a few words that name no file or query. */
export function writeErrorReason(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT') return 'the disk holding the database is full';
  if (typeof code === 'string' && code.startsWith('SQLITE_BUSY')) return 'the database is locked by another process';
  if (code === 'SQLITE_READONLY' || code === 'EROFS') return 'the database is read-only';
  if (typeof code === 'string' && (code.startsWith('SQLITE_IOERR') || code === 'EIO')) return 'the database cannot be written (I/O error)';
  return 'unknown error';
}

/** Codes of a disk or database that cannot take writes now but may later (full, locked, read-only, I/O). */
const UNAVAILABLE = /^(SQLITE_(BUSY|FULL|IOERR|READONLY|CANTOPEN|LOCKED)|ENOSPC|EDQUOT|EROFS|EIO)/;

/** True for an error that says storage is unavailable (worth waiting for), not that the request was wrong. */
export function isStorageUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && UNAVAILABLE.test(code)) return true;
  }
  return false;
}
