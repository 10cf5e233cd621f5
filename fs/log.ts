/**
 * The logger seam of the filesystem (same shape as the rest of Supernet's):
 * library code never writes to the console; it is handed a {@link Logger}.
 */

/** Structured fields attached to one log line. */
export type LogFields = Record<string, unknown>;

/** What every fs module logs through. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** A logger that drops everything. */
export const nullLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** One JSON object per line on `out` (default stderr), dropping `debug` unless asked. */
export function jsonLogger(
  debug = false,
  out: { write(s: string): unknown } = process.stderr,
): Logger {
  const line = (level: string, msg: string, fields?: LogFields): void => {
    let text: string;
    try {
      text = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
    } catch {
      text = JSON.stringify({ time: new Date().toISOString(), level, msg });
    }
    out.write(text + '\n');
  };
  return {
    debug: (m, f) => {
      if (debug) line('debug', m, f);
    },
    info: (m, f) => line('info', m, f),
    warn: (m, f) => line('warn', m, f),
    error: (m, f) => line('error', m, f),
  };
}

/** Keeps lines in memory (tests assert on them). */
export class MemoryLogger implements Logger {
  readonly records: Array<{ level: string; msg: string; fields?: LogFields }> = [];
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
