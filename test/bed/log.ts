/**
 * The logger seam the test bed writes its own diary to. Library code gets a
 * logger injected; the default one appends JSON lines to `<bed dir>/bed.log`
 * (kept with KEEP_BED=1) and mirrors to stderr when BED_DEBUG=1.
 */
import { appendFileSync } from 'node:fs';

/** The project's logger shape: a message plus optional structured fields. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

type Level = 'debug' | 'info' | 'warn' | 'error';

/** A logger that appends one JSON object per line to `file`. */
export function fileLogger(file: string, mirrorToStderr = process.env.BED_DEBUG === '1'): Logger {
  const write = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    const line = JSON.stringify({ t: new Date().toISOString(), level, msg, ...fields }) + '\n';
    try {
      appendFileSync(file, line);
    } catch {
      // The directory is gone (after teardown): the diary is best effort.
    }
    if (mirrorToStderr) process.stderr.write(`[bed] ${line}`);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}

/** A logger that drops everything. */
export const nullLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};
