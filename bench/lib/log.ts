/** The benchmarks' logger: progress lines on stderr (stdout carries results). */
import type { Logger } from '../../test/bed/log.js';

export type { Logger };

/** A logger writing `[tag] msg {fields}` lines to stderr; debug only with BENCH_DEBUG=1. */
export function stderrLogger(tag: string): Logger {
  const write =
    (level: string) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      if (level === 'debug' && process.env.BENCH_DEBUG !== '1') return;
      const extra = fields && Object.keys(fields).length ? ` ${JSON.stringify(fields)}` : '';
      process.stderr.write(`[${tag}]${level === 'info' ? '' : ` ${level}:`} ${msg}${extra}\n`);
    };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}
