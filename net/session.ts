/**
 * The sender session number (net/wire.ts): half of every SNSL nonce. It must
 * grow with every start of an agent so that a restarted agent, whose sequence
 * numbers start again at 1, never repeats a (subkey, nonce) pair. It is the
 * start time in seconds, or one more than the last one written, whichever is
 * larger; the state file makes it survive a clock that steps back.
 */
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';

const FILE = 'session';

export function nextSession(stateDir: string, nowMs: number): number {
  let last: number;
  try {
    last = Number(readFileSync(join(stateDir, FILE), 'utf8').trim()) || 0;
  } catch {
    last = 0;
  }
  const s = Math.max(Math.floor(nowMs / 1000), last + 1) >>> 0;
  const tmp = join(stateDir, `${FILE}.tmp`);
  writeFileSync(tmp, `${s}\n`, { mode: 0o600 });
  renameSync(tmp, join(stateDir, FILE));
  return s;
}
