/**
 * One logger for the service: one line per event, JSON when stdout is not a terminal (for log
 * collectors), `time level message key=value` when it is (for people).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/** Options of `createLogger`. */
export interface LoggerOptions {
  /** Show debug lines. @default false */
  debug?: boolean;
  /** JSON lines instead of text. @default true unless stdout is a terminal */
  json?: boolean;
  /** Where lines go. @default process.stdout */
  write?: (line: string) => void;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const json = options.json ?? !process.stdout.isTTY;
  const write = options.write ?? ((line: string) => process.stdout.write(line + '\n'));
  const emit = (level: LogLevel, message: string, fields: LogFields = {}) => {
    if (level === 'debug' && !options.debug) return;
    const time = new Date().toISOString();
    if (json) {
      write(JSON.stringify({ time, level, msg: message, ...fields }));
    } else {
      const extra = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      write(`${time} ${level.toUpperCase().padEnd(5)} ${message}${extra ? ' ' + extra : ''}`);
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

/** A logger that drops everything (tests, embedded use). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
