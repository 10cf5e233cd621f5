/**
 * fsx-style random operations (acceptance 1): the same seeded sequence of
 * writes (sparse, large, overlapping), truncates, renames (also over an
 * existing target), unlinks, mkdir/rmdir, chmod and reads runs on the mount
 * and on a plain directory side by side; every result and every byte must
 * match. A remount in the middle checks that what was committed is what
 * comes back. Then concurrent dd writers (with fsyncs and chunk loads
 * holding later requests back) must each find exactly their own bytes.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import {
  open,
  readFile,
  writeFile,
  readdir,
  stat,
  truncate,
  rename,
  unlink,
  mkdir,
  rmdir,
  chmod,
  symlink,
  readlink,
  utimes,
  lstat,
} from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { makeBed, rng, unmount, type Bed } from './fs-kit.js';

const execp = promisify(execFile);
let bed: Bed;
beforeAll(async () => {
  bed = await makeBed('fsx');
});
afterAll(async () => {
  await bed.cleanup();
});

async function outcome<T>(p: Promise<T>): Promise<string> {
  try {
    const v = await p;
    return 'ok:' + (v === undefined ? '' : JSON.stringify(v));
  } catch (e) {
    return 'err:' + (e as NodeJS.ErrnoException).code;
  }
}

async function tree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      const st = await lstat(p);
      const key = rel + '/' + name;
      if (st.isDirectory()) {
        out[key] = `dir ${(st.mode & 0o7777).toString(8)}`;
        await walk(p, key);
      } else if (st.isSymbolicLink()) out[key] = `link ${await readlink(p)}`;
      else {
        const b = await readFile(p);
        out[key] = `file ${(st.mode & 0o7777).toString(8)} ${st.size} ${require_hash(b)}`;
      }
    }
  };
  await walk(root, '');
  return out;
}

import { createHash } from 'node:crypto';
const require_hash = (b: Buffer): string =>
  createHash('sha256').update(b).digest('hex').slice(0, 16);

describe('fs: random operations on the mount match a plain directory', () => {
  it('runs 2000 seeded operations with identical results', async () => {
    const { backing, key, mnt } = await bed.init('v');
    const plain = join(bed.dir, 'plain');
    await mkdir(plain);
    let child = await bed.mount(backing, mnt, key);
    const r = rng(20240601);
    const files = ['f0', 'f1', 'f2', 'f3', 'd0/g0', 'd0/g1', 'd1/h0'];
    const dirs = ['d0', 'd1', 'd2'];
    const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)]!;
    const MAXPOS = 3 << 20;
    let mismatches = 0;
    const both = async (label: string, fn: (root: string) => Promise<unknown>): Promise<void> => {
      const a = await outcome(fn(mnt));
      const b = await outcome(fn(plain));
      if (a !== b) {
        mismatches++;
        throw new Error(`${label}: mount ${a} vs plain ${b}`);
      }
    };
    for (let step = 0; step < 2000; step++) {
      const x = r();
      const f = pick(files);
      if (x < 0.35) {
        const pos = r() < 0.1 ? Math.floor(r() * (64 << 20)) : Math.floor(r() * MAXPOS);
        const len = r() < 0.2 ? Math.floor(r() * (1 << 20)) : Math.floor(r() * 9000);
        const data = Buffer.alloc(len);
        for (let i = 0; i < len; i += 4096)
          data.fill((step + i) & 0xff, i, Math.min(len, i + 4096));
        await both(`write ${f} ${pos}+${len}`, async (root) => {
          const fh = await open(join(root, f), 'a+').then(async (h) => {
            await h.close();
            return open(join(root, f), 'r+');
          });
          try {
            await fh.write(data, 0, len, pos);
          } finally {
            await fh.close();
          }
        });
      } else if (x < 0.5) {
        const pos = Math.floor(r() * 200000);
        const len = Math.floor(r() * 300000);
        await both(`read ${f} ${pos}+${len}`, async (root) => {
          const fh = await open(join(root, f), 'r');
          try {
            const b = Buffer.alloc(len);
            const { bytesRead } = await fh.read(b, 0, len, pos);
            return require_hash(b.subarray(0, bytesRead)) + ':' + bytesRead;
          } finally {
            await fh.close();
          }
        });
      } else if (x < 0.62) {
        const size = r() < 0.1 ? Math.floor(r() * (1 << 30)) : Math.floor(r() * MAXPOS);
        await both(`truncate ${f} ${size}`, (root) => truncate(join(root, f), size));
      } else if (x < 0.72) {
        const g = pick(files);
        await both(`rename ${f} ${g}`, (root) => rename(join(root, f), join(root, g)));
      } else if (x < 0.76) {
        await both(`unlink ${f}`, (root) => unlink(join(root, f)));
      } else if (x < 0.8) {
        const d = pick(dirs);
        await both(`mkdir ${d}`, (root) => mkdir(join(root, d)));
      } else if (x < 0.82) {
        const d = pick(dirs);
        await both(`rmdir ${d}`, (root) => rmdir(join(root, d)));
      } else if (x < 0.85) {
        const m = [0o600, 0o644, 0o755, 0o400][Math.floor(r() * 4)]!;
        await both(`chmod ${f}`, (root) => chmod(join(root, f), m));
      } else if (x < 0.88) {
        const d = pick(dirs);
        const e = pick(dirs);
        await both(`rename dir ${d} ${e}`, (root) => rename(join(root, d), join(root, e)));
      } else if (x < 0.9) {
        await both(`symlink ${f}`, (root) => symlink('target-' + step, join(root, f + '.lnk')));
      } else if (x < 0.92) {
        const t = Math.floor(r() * 1e9);
        await both(`utimes ${f}`, async (root) => {
          await utimes(join(root, f), t, t + 5);
          const st = await stat(join(root, f));
          return [Math.floor(st.mtimeMs / 1000), Math.floor(st.atimeMs / 1000)];
        });
      } else if (x < 0.9225) {
        // remount: committed state must come back exactly
        await unmount(bed, mnt, child);
        child = await bed.mount(backing, mnt, key);
      } else {
        await both(`stat ${f}`, async (root) => {
          const st = await stat(join(root, f));
          return [st.size, st.mode, st.isFile()];
        });
      }
    }
    expect(mismatches).toBe(0);
    expect(await tree(mnt)).toEqual(await tree(plain));
    // stock programs agree too
    const lsMnt = await execp('ls', ['-lR', '--time-style=+', mnt]);
    const lsPlain = await execp('ls', ['-lR', '--time-style=+', plain]);
    const norm = (s: string, root: string): string =>
      s
        .split(root)
        .join('ROOT')
        .split('\n')
        .filter((l) => !l.startsWith('total'))
        .map((l) => l.replace(/^(\S+)\s+\d+\s+\S+\s+\S+\s+(\d+)/, '$1 $2'))
        .filter((l) => !l.startsWith('d'))
        .join('\n');
    expect(norm(lsMnt.stdout, mnt)).toEqual(norm(lsPlain.stdout, plain));
    await unmount(bed, mnt, child);
    const c = await bed.cli(['fs', 'check', backing, '--key', key]);
    expect(c.stdout).toContain('volume is consistent');
    expect(c.code).toBe(0);
  });

  it('keeps the bytes of concurrent writers apart (each write request has its own buffer)', async () => {
    // Six dd processes write 128 KiB requests at once, so several write
    // requests are outstanding in the daemon and their buffers are reused
    // from request to request; two of them share one file, in alternating
    // 128 KiB blocks.
    const { backing, key, mnt } = await bed.init('w');
    const src = join(bed.dir, 'src');
    await mkdir(src);
    const BLOCKS = 64; // 8 MiB per writer
    const r = rng(7);
    const inputs: string[] = [];
    for (let w = 0; w < 6; w++) {
      const b = Buffer.alloc(BLOCKS * 131072);
      for (let i = 0; i < b.length; i += 4) b.writeUInt32LE((r() * 2 ** 32) >>> 0, i);
      const f = join(src, `in${w}`);
      await writeFile(f, b);
      inputs.push(f);
    }
    const dd = (args: string[]): Promise<unknown> =>
      execp('dd', [...args, 'bs=128K', 'conv=notrunc', 'status=none']);
    // Old contents first, then a remount: each 128 KiB write then covers
    // half a chunk that is not cached, so the daemon loads the chunk while
    // later requests wait with their data (as do those behind the fsyncs).
    let child = await bed.mount(backing, mnt, key);
    for (const name of ['out0', 'out1', 'out2', 'out3', 'shared'])
      await dd([`if=${inputs[5]}`, `of=${join(mnt, name)}`]);
    await unmount(bed, mnt, child);
    child = await bed.mount(backing, mnt, key);
    let writing = true;
    const syncer = (async () => {
      const fh = await open(join(mnt, 'out0'), 'r+');
      while (writing) await fh.sync();
      await fh.close();
    })();
    await Promise.all([
      ...[0, 1, 2, 3].map((w) => dd([`if=${inputs[w]}`, `of=${join(mnt, `out${w}`)}`])),
      // Writers 4 and 5 fill the even and the odd blocks of one file, one block per dd.
      ...[4, 5].map(async (w) => {
        for (let i = w - 4; i < BLOCKS; i += 2)
          await dd([
            `if=${inputs[w]}`,
            `of=${join(mnt, 'shared')}`,
            `skip=${i}`,
            `seek=${i}`,
            'count=1',
          ]);
      }),
    ]).finally(() => (writing = false));
    await syncer;
    const expected = Buffer.alloc(BLOCKS * 131072);
    const four = await readFile(inputs[4]!);
    const five = await readFile(inputs[5]!);
    for (let i = 0; i < BLOCKS; i++)
      (i % 2 ? five : four).copy(expected, i * 131072, i * 131072, (i + 1) * 131072);
    const check = async (): Promise<void> => {
      for (let w = 0; w < 4; w++)
        expect(require_hash(await readFile(join(mnt, `out${w}`)))).toBe(
          require_hash(await readFile(inputs[w]!)),
        );
      expect(require_hash(await readFile(join(mnt, 'shared')))).toBe(require_hash(expected));
    };
    await check();
    // fs status finds the daemon by its mount point (this one was started
    // without a state folder in its arguments: the default is derived).
    const st = await bed.cli(['fs', 'status', mnt, '--json']);
    expect(st.code).toBe(0);
    const j = JSON.parse(st.stdout) as {
      pid: number;
      mountpoint: string;
      counters: Record<string, number>;
      store: unknown;
    };
    expect(j.pid).toBe(child.pid);
    expect(j.mountpoint).toBe(mnt);
    expect(j.counters.objectsWritten).toBeGreaterThan(0);
    expect(j.store).toBeNull(); // a directory store has no counters of its own
    const none = await bed.cli(['fs', 'status', join(bed.dir, 'nowhere')]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/no Supernet fs mount daemon serves it/);
    await unmount(bed, mnt, child);
    child = await bed.mount(backing, mnt, key);
    await check(); // as committed, not only as cached
    await unmount(bed, mnt, child);
  });
});
