/**
 * The guardian: a small process each test bed starts beside itself, in its
 * own session, holding the read end of a pipe whose write end only the bed's
 * owner holds. When the owner dies — however: uncaught exception, signal,
 * SIGKILL, or Jest exiting (Jest gives tests a copy of `process`, so 'exit'
 * and signal handlers registered inside a test never run) — the kernel closes
 * the pipe, the guardian reads EOF and removes what the run left behind.
 * After an orderly teardown the owner writes `released` and the guardian
 * leaves without touching anything.
 *
 *   node guardian.js PREFIX DIR KEEP(0|1)
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  destroyRunSync,
  GUARDIAN_RELEASED,
  MARKER_DIR,
  PREFIX_RE,
  releasePrefix,
} from './registry.js';

const [prefix, dir, keep] = process.argv.slice(2);
if (!prefix || !PREFIX_RE.test(prefix) || !dir) {
  process.stderr.write('usage: guardian.js PREFIX DIR KEEP\n');
  process.exit(64);
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d: string) => {
  input += d;
  if (input.includes(GUARDIAN_RELEASED)) process.exit(0);
});
process.stdin.on('end', () => {
  // The owner is gone. Its record still being there means it did not tear down.
  if (existsSync(join(MARKER_DIR, `${prefix.slice(0, -1)}.json`))) {
    const left = destroyRunSync(prefix, dir, keep === '1');
    if (left.length === 0) releasePrefix(prefix);
  }
  process.exit(0);
});
// Nobody should stop us half-way; the owner's terminal signals are not ours.
for (const s of ['SIGINT', 'SIGHUP', 'SIGPIPE'] as const) process.on(s, () => {});
