/**
 * The shape of a `kontext` command, and its command-line parsing: `node:util` parseArgs in strict
 * mode, with its errors turned into one-line usage errors.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './output.js';

/** One command (or sub-command) of `kontext`. */
export interface Command {
  /** The words after `kontext`, e.g. `tasks list`. */
  name: string;
  /** The whole text of `kontext <name> --help`. */
  usage: string;
  /** Runs with the arguments after the command's name; resolves with the exit code. */
  run(argv: string[]): Promise<number>;
}

/** Parses a command's arguments (strict: unknown options are usage errors). */
export function parseCommandLine<T extends ParseArgsConfig>(argv: string[], config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs<T>({ strict: true, ...config, args: argv });
  } catch (err) {
    const e = err as Error & { code?: string };
    if (!e.code?.startsWith('ERR_PARSE_ARGS')) throw err;
    // Node's messages go on with a hint about `--`; the first sentence is the useful part.
    throw new UsageError(e.message.split(/(?<=\.) /)[0] ?? e.message);
  }
}

/** A whole number option within limits; undefined when not given. */
export function intOption(name: string, raw: string | undefined, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw.trim()) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, not '${raw}'`);
  return n;
}
