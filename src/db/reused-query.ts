/**
 * Hot queries compiled once per database handle and run again with new parameters: the reads of
 * task status and pages, and the progress frame's UPDATE ... RETURNING (tasks.ts's saveFrame).
 *
 * Building a Kysely query (frozen operation nodes) and compiling it to SQL took about a third of
 * the Kysely time per `GET /api/task-status/{id}` in the read benchmark's profile, for SQL that never
 * changes. A {@link ReusedQuery} compiles on first use per handle and query shape (the dialect
 * decides the SQL: `?` or `$1`), then hands the driver the same SQL with the call's parameters.
 * On SQLite a compiled query that returns rows runs at once when it can (direct-reads.ts),
 * otherwise through `executeQuery`; logging, query counts and write health see it either way.
 */
import type { CompiledQuery, Compilable } from 'kysely';
import type { Db } from './database.js';
import { readDirectly } from './direct-reads.js';

/**
 * One query that is compiled once per `Db` and shape. `build` must put the parameters in the SQL in
 * the order `run` is given them: the first compilation checks this against the values it was built
 * with and throws on a mismatch (a bug here, found by the first test that runs the query).
 */
export class ReusedQuery<R> {
  readonly #compiled = new WeakMap<Db, Map<string, CompiledQuery<R>>>();

  /**
   * Runs the query of shape `shape` (a key naming which optional clauses it has) with `parameters`.
   * `build` makes it with those same parameters when this handle has not compiled that shape yet.
   */
  async run(db: Db, shape: string, parameters: readonly unknown[], build: () => Compilable<R>): Promise<R[]> {
    let byShape = this.#compiled.get(db);
    if (!byShape) this.#compiled.set(db, (byShape = new Map()));
    const known = byShape.get(shape);
    if (known) return readDirectly(db, known, parameters) ?? (await db.executeQuery<R>({ ...known, parameters })).rows;
    const compiled = build().compile();
    if (compiled.parameters.length !== parameters.length || compiled.parameters.some((p, i) => p !== parameters[i])) {
      throw new Error(`ReusedQuery ${shape}: parameters ${JSON.stringify(parameters)} are not the query's ${JSON.stringify(compiled.parameters)}`);
    }
    byShape.set(shape, compiled);
    return (await db.executeQuery<R>(compiled)).rows;
  }
}
