/**
 * A full provider is reported as ENOSPC, not as a damaged volume (EIO): the
 * backing directory is a 6 MiB tmpfs, the writer fills it. What was made
 * durable before stays readable, byte for byte.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeBed, type Bed } from './fs-kit.js';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
let bed: Bed;
let small: string;

beforeAll(async () => {
  bed = await makeBed('enospc');
  small = join(bed.dir, 'small');
  await mkdir(small);
  if (isRoot) await run('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'snfs-enospc', small]);
});
afterAll(async () => {
  await bed.cleanup().catch(() => undefined);
  if (isRoot) await run('umount', ['-l', small]).catch(() => undefined);
});

(isRoot ? describe : describe.skip)('encrypting fs on a full backing store', () => {
  it('fails the write with ENOSPC; fsynced data stays intact', async () => {
    const backing = join(small, 'backing');
    const key = join(bed.dir, 'key.json');
    const r = await bed.cli(['fs', 'init', backing, '--key', key]);
    expect(r.code).toBe(0);
    const mnt = join(bed.dir, 'mnt');
    await bed.mount(backing, mnt, key);
    const keep = Buffer.alloc(300_000, 'durable');
    await writeFile(join(mnt, 'keep'), keep);
    const kh = await open(join(mnt, 'keep'), 'r+');
    await kh.sync();
    await kh.close();

    const chunk = Buffer.alloc(1 << 20, 7);
    const fh = await open(join(mnt, 'big'), 'w');
    let err: NodeJS.ErrnoException | null = null;
    try {
      for (let i = 0; i < 16 && !err; i++) await fh.write(chunk);
      await fh.sync();
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    await fh.close().catch((e: NodeJS.ErrnoException) => (err ??= e));
    expect(err?.code).toBe('ENOSPC');
    expect((await readFile(join(mnt, 'keep'))).equals(keep)).toBe(true);
    // A change that could never become durable is refused too, not
    // accepted in memory and lost at the next remount.
    await expect(mkdir(join(mnt, 'later'))).rejects.toMatchObject({ code: 'ENOSPC' });
    await expect(writeFile(join(mnt, 'keep'), 'x')).rejects.toMatchObject({ code: 'ENOSPC' });
    expect((await readFile(join(mnt, 'keep'))).equals(keep)).toBe(true);
  });
});
