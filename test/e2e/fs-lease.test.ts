/**
 * The writer lease end to end (fs/lease.ts, docs/storage.md "Writer lease"),
 * with the real CLI and mount daemons on one directory backend:
 *  - a second `fs mount` with its own state folder (what another host is)
 *    is refused while the first serves, and the first one's data survives;
 *  - a second `fs mount` with the same state folder is refused at once;
 *  - after a kill -9 of the holder, the next mount on this host takes the
 *    lease over at once (the crashed pid is recorded in the state folder),
 *    and from another state folder after the lease's TTL.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { existsSync } from 'node:fs';
import { execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeBed, type Bed } from './fs-kit.js';
import { decodeLease, LEASE_NAME } from '../../fs/lease.js';

const execp = promisify(execFile);
let bed: Bed;
let vol: { backing: string; key: string; mnt: string };

beforeAll(async () => {
  bed = await makeBed('lease');
  vol = await bed.init('v');
  for (const m of ['mnt2', 'mnt3', 'mnt4']) await mkdir(join(bed.dir, m));
});

afterAll(async () => {
  // Mounts made through the CLI (only if a refusal failed, or the last case broke).
  for (const m of ['mnt2', 'mnt3', 'mnt4']) {
    const r = await bed.cli(['fs', 'unmount', join(bed.dir, m)]);
    if (r.code !== 0) await execp('fusermount', ['-uz', join(bed.dir, m)]).catch(() => {});
  }
  await bed.cleanup();
});

const leaseFile = (): string => join(vol.backing, LEASE_NAME);

/** `supernet fs mount` of the volume at bed.dir/MNT, with another state folder (another host) if given. */
const cliMount = (mnt: string, state?: string) =>
  bed.cli([
    'fs',
    'mount',
    vol.backing,
    join(bed.dir, mnt),
    '--key',
    vol.key,
    ...(state ? ['--state', join(bed.dir, state)] : []),
  ]);

/** kill -9 of a mount daemon, then the dead mount detached. */
async function crash(daemon: ChildProcess): Promise<void> {
  daemon.kill('SIGKILL');
  await new Promise((r) => daemon.once('exit', r));
  await bed.cli(['fs', 'unmount', vol.mnt]).catch(() => {});
}

describe('writer lease', () => {
  it('refuses a second writer (other state folder, same folder) while a mount serves', async () => {
    const first = await bed.mount(vol.backing, vol.mnt, vol.key);
    await writeFile(join(vol.mnt, 'a.txt'), 'first mount\n');
    expect(decodeLease(await readFile(leaseFile()))).not.toBeNull();
    // Another host: its own state folder, so only the lease can tell.
    const other = await cliMount('mnt2', 'state-other');
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/in use by another mount/);
    // This host again: the mount record answers before any lease is looked at.
    const same = await cliMount('mnt3');
    expect(same.code).not.toBe(0);
    expect(same.stderr).toMatch(new RegExp(`already mounted by pid ${first.pid}`));
    // Neither refused open swept the live mount's objects.
    expect(await readFile(join(vol.mnt, 'a.txt'), 'utf8')).toBe('first mount\n');
    const ck = await bed.cli(['fs', 'unmount', vol.mnt]);
    expect(ck.code).toBe(0);
    expect(existsSync(leaseFile())).toBe(false);
    const check = await bed.cli(['fs', 'check', vol.backing, '--key', vol.key]);
    expect(check.stdout).toMatch(/volume is consistent/);
  }, 60_000);

  it('after a kill -9 of the holder: this host takes over at once, another after the TTL', async () => {
    const victim = await bed.mount(vol.backing, vol.mnt, vol.key);
    await writeFile(join(vol.mnt, 'b.txt'), 'before the crash\n');
    const fd = await bed.cli(['fs', 'check', vol.backing, '--key', vol.key]);
    expect(fd.code).toBe(0); // read-only: no lease needed while mounted
    await crash(victim);
    expect(decodeLease(await readFile(leaseFile()))).not.toBeNull(); // left behind
    // This host: the state folder names the dead pid; the lease is taken at once.
    const again = await bed.mount(vol.backing, vol.mnt, vol.key);
    expect(await readFile(join(vol.mnt, 'b.txt'), 'utf8')).toBe('before the crash\n');
    await crash(again);
    // From elsewhere: taken over once the lease has been silent for its TTL.
    const late = await cliMount('mnt4', 'state-other');
    expect(late.stderr + late.stdout).toMatch(/mounted/);
    expect(late.code).toBe(0);
    expect(await readFile(join(bed.dir, 'mnt4', 'b.txt'), 'utf8')).toBe('before the crash\n');
    expect((await bed.cli(['fs', 'unmount', join(bed.dir, 'mnt4')])).code).toBe(0);
  }, 90_000);
});
