/**
 * The logger seam. Library code never writes to the console; it is handed a
 * {@link Logger} and the CLI decides where lines go (JSON lines on stderr).
 */

/** Structured fields attached to one log line. */
export type LogFields = Record<string, unknown>;

/** What every module of admin/, net/ and fs/ logs through. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A logger that drops everything. */
export const nullLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/**
 * Writes one JSON object per line (`{"time","level","msg",...fields}`) to
 * `out` (default: process.stderr), dropping lines below `minLevel`.
 */
export function jsonLogger(
  minLevel: LogLevel = 'info',
  out: { write(s: string): unknown } = process.stderr,
  now: () => number = Date.now,
): Logger {
  const min = LEVELS[minLevel];
  const line = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (LEVELS[level] < min) return;
    let text: string;
    try {
      text = JSON.stringify({ time: new Date(now()).toISOString(), level, msg, ...fields });
    } catch {
      // Unserialisable fields (cycles, BigInt) must not lose the message itself.
      text = JSON.stringify({ time: new Date(now()).toISOString(), level, msg });
    }
    out.write(text + '\n');
  };
  return {
    debug: (m, f) => line('debug', m, f),
    info: (m, f) => line('info', m, f),
    warn: (m, f) => line('warn', m, f),
    error: (m, f) => line('error', m, f),
  };
}

/** One captured line of a {@link MemoryLogger}. */
export interface LogRecord {
  level: LogLevel;
  msg: string;
  fields?: LogFields;
}

/** Keeps lines in memory (unit tests assert on them). */
export class MemoryLogger implements Logger {
  readonly records: LogRecord[] = [];
  debug(msg: string, fields?: LogFields): void {
    this.records.push({ level: 'debug', msg, fields });
  }
  info(msg: string, fields?: LogFields): void {
    this.records.push({ level: 'info', msg, fields });
  }
  warn(msg: string, fields?: LogFields): void {
    this.records.push({ level: 'warn', msg, fields });
  }
  error(msg: string, fields?: LogFields): void {
    this.records.push({ level: 'error', msg, fields });
  }
}
