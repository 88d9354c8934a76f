/** Kysely's SQLite dialect with {@link RetryingSqliteDriver} in place of its own driver. */
import { SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler, type DatabaseIntrospector, type Dialect, type Driver, type Kysely } from 'kysely';
import { RetryingSqliteDriver, type RetryingSqliteDriverOptions } from './sqlite-driver.js';

export class RetryingSqliteDialect implements Dialect {
  /** The driver made for the handle (Kysely makes it when the handle is made), for direct reads. */
  driver: RetryingSqliteDriver | undefined;

  constructor(private readonly options: RetryingSqliteDriverOptions) {}

  createDriver(): Driver {
    return (this.driver = new RetryingSqliteDriver(this.options));
  }

  createQueryCompiler(): SqliteQueryCompiler {
    return new SqliteQueryCompiler();
  }

  createAdapter(): SqliteAdapter {
    return new SqliteAdapter();
  }

  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SqliteIntrospector(db);
  }
}
