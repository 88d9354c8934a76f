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
  constructor(message: string) {
    // It may quote the command line, which may quote a task.
    super(escapeControlKeepingLines(message));
  }
}

// C0 controls, DEL and C1 controls (ESC starts the sequences that retitle a window or clear the
// screen; U+009B is an 8-bit CSI to some terminals), plus the Unicode line separators and bidi
// overrides, which can make printed text look unlike what it is.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
// What JSON.stringify leaves raw (it escapes C0 itself; its own indentation is made of newlines).
const CONTROL_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const CONTROL_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function visible(c: string): string {
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`;
}

/**
 * Text from a task, the database or the service made safe to print on a terminal: every control
 * character (newlines and tabs too) becomes a visible escape such as `\x1b` or `\u202e`, so it
 * cannot change the operator's terminal. Use it on everything a command prints that it did not write.
 */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, visible);
}

/** {@link escapeControl}, but newlines are kept (for messages of several lines). */
export function escapeControlKeepingLines(text: string): string {
  return text.replace(CONTROL_BUT_NEWLINE, visible);
}

/**
 * Prints rows as a plain-text table, columns padded to their widest cell; the last column is
 * never padded (it is usually free text). Cells are printed with {@link escapeControl}. Writes to
 * stdout by default.
 */
export function printTable(header: readonly string[], rawRows: readonly (readonly string[])[], write: (line: string) => void = (l) => console.log(l)): void {
  const rows = rawRows.map((r) => r.map(escapeControl));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  write(line(header));
  for (const r of rows) write(line(r));
}

/**
 * Prints a value as indented JSON on stdout (for `--json`). JSON.stringify escapes C0 controls but
 * not DEL, C1 or bidi overrides: those are written as `\\uXXXX` too (the same JSON once parsed).
 */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2).replace(CONTROL_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
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
    // Messages quote tasks and the service's answers; main prints them as they are.
    super(escapeControlKeepingLines(message));
  }
}
