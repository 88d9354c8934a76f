/**
 * The `pg` pool Kysely's PostgresDialect runs on, wrapped so that the service learns of every
 * write's outcome (WriteHealth, as the SQLite driver reports it) and a lost server never crashes
 * the process: pg emits 'error' on a client whose connection drops, and an unheard 'error' event
 * ends Node.
 */
import pg from 'pg';
import type { PostgresCursor, PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';
import { DatabaseUnreachableError, isStorageUnavailable, type WriteHealth } from './write-health.js';

/** Options of {@link createPostgresPool}. */
export interface PostgresPoolOptions {
  /** `postgres://user@host:port/db`. */
  url: string;
  /** Told of every write's outcome and of lost connections. @default none */
  health?: WriteHealth;
  /** Longest wait for a new connection, in ms (also bounds the check at start). @default 5000 */
  connectTimeoutMs?: number;
  /** Most connections held open. @default 10 */
  maxConnections?: number;
}

/** PostgreSQL's type id of `bigint` (int8), which `count(*)` and our bigint columns return. */
const INT8_OID = 20;

/**
 * bigint as a JS number, as SQLite returns it: every bigint here (counts, seeds up to
 * Number.MAX_SAFE_INTEGER) fits, and one query module must not see strings on one dialect only.
 */
function parseInt8(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`bigint ${value} does not fit a JS number`);
  return n;
}

/** A pool for `openDatabase`; nothing connects until the first query. */
export function createPostgresPool(options: PostgresPoolOptions): ReportingPool {
  const pool = new pg.Pool({
    connectionString: options.url,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    max: options.maxConnections ?? 10,
    application_name: 'kontext-gateway',
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID && format !== 'binary' ? parseInt8 : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  return new ReportingPool(pool, options.health);
}

/** The pool Kysely sees: connects and queries through `pg`, reporting outcomes to WriteHealth. */
export class ReportingPool implements PostgresPool {
  constructor(
    readonly pool: pg.Pool,
    private readonly health: WriteHealth | undefined,
  ) {
    // An idle connection the server closed (restart, admin shutdown): pg drops it from the pool.
    pool.on('error', (err) => this.report(err));
  }

  async connect(): Promise<PostgresPoolClient> {
    try {
      return new ReportingClient(await this.pool.connect(), this);
    } catch (err) {
      throw this.report(err);
    }
  }

  end(): Promise<void> {
    return this.pool.end();
  }

  /** A write (or begin/commit) went through. */
  succeeded(): void {
    this.health?.succeeded();
  }

  /** Classifies a failure, tells WriteHealth when it says the database is unavailable; returns the error to throw. */
  report(err: unknown): unknown {
    const error = isConnectionLoss(err) ? new DatabaseUnreachableError(firstError(err)) : err;
    // Only errors about the database itself: a unique violation or a bad query says it works.
    if (isStorageUnavailable(error)) this.health?.failed(error);
    return error;
  }
}

/** One checked-out connection. */
class ReportingClient implements PostgresPoolClient {
  readonly #client: pg.PoolClient;
  readonly #pool: ReportingPool;
  /** While checked out, pg's pool does not listen for the client's errors; this does. */
  readonly #onError = (err: Error): void => void this.#pool.report(err);

  constructor(client: pg.PoolClient, pool: ReportingPool) {
    this.#client = client;
    this.#pool = pool;
    client.on('error', this.#onError);
  }

  query<R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>>;
  query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>;
  query<R>(sql: string | PostgresCursor<R>, parameters?: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
    if (typeof sql !== 'string') throw new Error('streaming queries are not enabled on this pool');
    return this.run<R>(sql, parameters ?? []);
  }

  release(destroy?: boolean): void {
    this.#client.removeListener('error', this.#onError);
    this.#client.release(destroy);
  }

  private async run<R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>> {
    try {
      const result = await this.#client.query(sql, [...parameters]);
      if (result.command !== 'SELECT') this.#pool.succeeded();
      return result as unknown as PostgresQueryResult<R>;
    } catch (err) {
      throw this.#pool.report(err);
    }
  }
}

/** Node's codes for a connection refused, reset or timed out, or a host not found. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
/** pg's own messages (no code) for a connection that ended or never came. */
const PG_CONNECTION_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed/i;

/** True when the error says the server could not be reached or the connection dropped. */
export function isConnectionLoss(err: unknown): boolean {
  const e = firstError(err);
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') return NETWORK_CODES.has(code);
  return e instanceof Error && PG_CONNECTION_MESSAGES.test(e.message);
}

/** Connecting to `localhost` tries each address; Node then throws an AggregateError with an empty message. */
export function firstError(err: unknown): unknown {
  return err instanceof AggregateError && err.errors.length > 0 ? err.errors[0] : err;
}
