/**
 * Acceptance 3: `kill -9` of the filesystem process during heavy writes, 20
 * times at random points. After each crash the volume passes `fs check`,
 * mounts again, and every file holds a complete version that was fsynced or
 * a newer one; the fsynced prefix of an append-only log is intact.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { open, rename, readFile, readdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeBed, rng, unmount, type Bed } from './fs-kit.js';
import { isMounted } from '../../fs/mount.js';

/**
 * File handles whose close() failed because the daemon was killed under
 * them (ENOTCONN). Node would retry the close when it garbage-collects the
 * handle and turn that failure into an uncaught exception that ends the
 * whole test process, so they stay referenced until the process exits.
 */
const keep: unknown[] = [];

const execp = promisify(execFile);
let bed: Bed;
beforeAll(async () => {
  bed = await makeBed('crash');
});
afterAll(async () => {
  await bed.cleanup();
});

const FILES = ['w0', 'w1', 'w2', 'w3', 'w4'];

/** Version `v` of file `f`: a header and bytes derived from (f, v). */
function version(f: string, v: number): Buffer {
  const len = 1000 + ((v * 7919 + f.charCodeAt(1) * 104729) % 300_000);
  const out = Buffer.alloc(len);
  const head = Buffer.from(`${f} v${v} len${len}\n`);
  head.copy(out);
  let h = createHash('sha256').update(`${f}/${v}`).digest();
  for (let o = head.length; o < len; o += 32) {
    h.copy(out, o, 0, Math.min(32, len - o));
    h = createHash('sha256').update(h).digest();
  }
  return out;
}

function parseVersion(f: string, b: Buffer): number {
  const m = /^(\S+) v(\d+) len(\d+)\n/.exec(b.subarray(0, 64).toString('latin1'));
  if (!m || m[1] !== f) throw new Error(`${f}: not a version header`);
  const v = Number(m[2]);
  if (!version(f, v).equals(b)) throw new Error(`${f}: version ${v} is torn or corrupt`);
  return v;
}

const RECORD = 64;
const record = (i: number): string => `record ${i} `.padEnd(RECORD - 1, '*') + '\n';

describe('fs: crash safety under kill -9', () => {
  it('survives 20 random kills during heavy writes', async () => {
    const { backing, key, mnt } = await bed.init('v');
    const durable = new Map<string, number>();
    const next = new Map<string, number>();
    let durableRecords = 0;
    let records = 0;
    const r = rng(777);
    let child = await bed.mount(backing, mnt, key);
    for (let round = 0; round < 20; round++) {
      let stop = false;
      const writer = async (): Promise<void> => {
        while (!stop) {
          const f = FILES[Math.floor(r() * FILES.length)]!;
          const v = (next.get(f) ?? 0) + 1;
          next.set(f, v);
          const tmp = join(mnt, `${f}.tmp`);
          const fh = await open(tmp, 'w');
          try {
            await fh.write(version(f, v));
            await fh.sync();
          } finally {
            await fh.close().catch(() => keep.push(fh));
          }
          await rename(tmp, join(mnt, f));
          const d = await open(mnt, 'r');
          try {
            await d.sync();
          } finally {
            await d.close().catch(() => keep.push(d));
          }
          if (v > (durable.get(f) ?? 0)) durable.set(f, v);
        }
      };
      const logger = async (): Promise<void> => {
        const fh = await open(join(mnt, 'log'), 'a');
        try {
          // Inside the try: a kill during the truncate must still close the
          // handle (an unclosed FileHandle's close at GC throws and ends jest).
          if (records === 0) await fh.truncate(0);
          while (!stop) {
            const n = 1 + Math.floor(r() * 20);
            let s = '';
            for (let i = 0; i < n; i++) s += record(records + i);
            await fh.write(s);
            records += n;
            if (r() < 0.5) {
              await fh.sync();
              durableRecords = records;
            }
          }
        } finally {
          await fh.close().catch(() => keep.push(fh));
        }
      };
      const streamer = async (): Promise<void> => {
        // unsynced bulk data: dirty state the crash must not tear into the rest
        const fh = await open(join(mnt, 'bulk'), 'w');
        const block = Buffer.alloc(1 << 20, round);
        try {
          while (!stop) await fh.write(block);
        } finally {
          await fh.close().catch(() => keep.push(fh));
        }
      };
      const work = [writer(), logger(), streamer()].map((p) => p.catch(() => {}));
      await new Promise((res) => setTimeout(res, 150 + Math.floor(r() * 700)));
      process.kill(child.pid!, 'SIGKILL');
      stop = true;
      await Promise.all(work);
      await new Promise((res) =>
        child.exitCode !== null || child.signalCode !== null ? res(0) : child.once('exit', res),
      );
      for (let i = 0; i < 50 && (await isMounted(mnt)); i++)
        await new Promise((res) => setTimeout(res, 50));
      if (await isMounted(mnt)) await execp('fusermount', ['-uz', mnt]);
      // Records written after the last fsync may or may not have survived.
      records = durableRecords;

      const chk = await bed.cli(['fs', 'check', backing, '--key', key]);
      expect({ round, code: chk.code, out: chk.stdout }).toEqual({
        round,
        code: 0,
        out: expect.stringContaining('volume is consistent'),
      });
      child = await bed.mount(backing, mnt, key);
      for (const f of FILES) {
        const want = durable.get(f);
        if (want === undefined) continue;
        const got = parseVersion(f, await readFile(join(mnt, f)));
        expect({ round, f, ok: got >= want }).toEqual({ round, f, ok: true });
        next.set(f, Math.max(next.get(f)!, got));
      }
      const log = await readFile(join(mnt, 'log'), 'latin1').catch(() => '');
      const lines = log.length / RECORD;
      expect(Number.isInteger(lines)).toBe(true);
      for (let i = 0; i < lines; i++)
        expect(log.slice(i * RECORD, (i + 1) * RECORD)).toBe(record(i));
      expect(lines).toBeGreaterThanOrEqual(durableRecords);
      records = lines;
      durableRecords = Math.min(durableRecords, lines);
    }
    expect(durable.size).toBeGreaterThan(0);
    expect((await readdir(mnt)).sort()).toEqual(expect.arrayContaining(['log']));
    await unmount(bed, mnt, child);
  });
});
