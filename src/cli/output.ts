/**
 * What every `kontext` command shares about its output: the exit codes scripts can rely on, usage
 * errors, and printing tables and JSON.
 */

/** Exit codes; documented in `kontext --help`, so scripts can branch on them. */
export const EXIT = {
  /** Done, nothing wrong. */
  OK: 0,
  /** The command failed, or found problems (a failed task, a missing file, a refused repair). */
  FAILURE: 1,
  /** Wrong command line or invalid configuration. */
  USAGE: 2,
  /** The service could not be reached. */
  UNREACHABLE: 3,
} as const;

/** A wrong command line: printed as one line with a hint to the command's `--help`, exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * Prints rows as a plain-text table, columns padded to their widest cell; the last column is
 * never padded (it is usually free text). Writes to stdout by default.
 */
export function printTable(header: readonly string[], rows: readonly (readonly string[])[], write: (line: string) => void = (l) => console.log(l)): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  write(line(header));
  for (const r of rows) write(line(r));
}

/** Prints a value as indented JSON on stdout (for `--json`). */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

/** Shortens text to `max` characters with an ellipsis, on one line (for table cells). */
export function clip(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/** A command that cannot go on: main prints `kontext <command>: <message>` on stderr and exits with `exitCode`. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    message: string,
    /** @default EXIT.FAILURE */
    readonly exitCode: number = EXIT.FAILURE,
  ) {
    super(message);
  }
}
