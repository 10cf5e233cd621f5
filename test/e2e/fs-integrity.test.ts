/**
 * Acceptance 2: every attack of the integrity list, done to the backing
 * objects while mounted and while unmounted, is detected: the read fails with
 * EIO, the event is logged, no wrong data is ever returned, and `fs check`
 * names the damaged file.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { cp, readFile, rename, rm, truncate, writeFile, mkdir } from 'node:fs/promises';
import { execFile, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeBed, unmount, type Bed } from './fs-kit.js';
import { openVolume, control, resolveState } from '../../fs/mount.js';

const execp = promisify(execFile);
let bed: Bed;
beforeAll(async () => {
  bed = await makeBed('integ');
});
afterAll(async () => {
  await bed.cleanup();
});

const content = (name: string, n = 600_000): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 64) b.write(`${name}:${i};`.padEnd(64, '.'), i, 'latin1');
  return b;
};

/** cat through the mount: returns the bytes, or the error text. */
async function cat(path: string): Promise<{ ok: boolean; data?: Buffer; err?: string }> {
  try {
    const r = await execp('cat', [path], { encoding: 'buffer', maxBuffer: 1 << 26 });
    return { ok: true, data: r.stdout as Buffer };
  } catch (e) {
    return { ok: false, err: String((e as { stderr?: Buffer }).stderr) };
  }
}

const ATTACKS = [
  'modify',
  'swap-blocks',
  'truncate',
  'swap-objects',
  'delete',
  'rollback-file',
] as const;

async function setup(
  name: string,
): Promise<{ backing: string; key: string; mnt: string; child: ChildProcess }> {
  const v = await bed.init(name);
  const child = await bed.mount(v.backing, v.mnt, v.key);
  for (const a of ATTACKS) await writeFile(join(v.mnt, a), content(a));
  await writeFile(join(v.mnt, 'victim'), content('victim'));
  await writeFile(join(v.mnt, 'other'), content('other'));
  await control(await resolveState(v.backing), { op: 'commit' });
  return { ...v, child };
}

async function where(
  backing: string,
  key: string,
  path: string,
): Promise<{ page: string | null; chunks: string[] }> {
  const { volume } = await openVolume({ backing, keyFile: key, readOnly: true });
  return volume.locate(path);
}

const obj = (backing: string, id: string): string => join(backing, 'objects', id);

/** Does the attack to the stored objects of file `a`; `mod` runs a legitimate change (for rollback). */
async function attack(
  a: (typeof ATTACKS)[number],
  backing: string,
  key: string,
  modify: () => Promise<void>,
): Promise<void> {
  const loc = await where(backing, key, '/' + a);
  const [c0, c1] = loc.chunks as [string, string];
  switch (a) {
    case 'modify': {
      const b = await readFile(obj(backing, c0));
      b[100]! ^= 0x01;
      await writeFile(obj(backing, c0), b);
      break;
    }
    case 'swap-blocks': {
      await rename(obj(backing, c0), obj(backing, 'tmp'));
      await rename(obj(backing, c1), obj(backing, c0));
      await rename(obj(backing, 'tmp'), obj(backing, c1));
      break;
    }
    case 'truncate':
      await truncate(obj(backing, c1), 5000);
      break;
    case 'swap-objects': {
      // replace this file's first chunk by another file's (a rename on the provider)
      const other = await where(backing, key, '/other');
      await cp(obj(backing, other.chunks[0]!), obj(backing, c0));
      break;
    }
    case 'delete':
      await rm(obj(backing, c1));
      break;
    case 'rollback-file': {
      const oldChunk = await readFile(obj(backing, c0));
      await modify();
      const now = await where(backing, key, '/' + a);
      // the provider serves the old copy under the new name
      await writeFile(obj(backing, now.chunks[0]!), oldChunk);
      break;
    }
  }
}

describe('fs: integrity attacks on the backing objects', () => {
  it('detects every attack while mounted (EIO, logged, never wrong data)', async () => {
    const { backing, key, mnt, child } = await setup('live');
    const state = await resolveState(backing);
    for (const a of ATTACKS) {
      await attack(a, backing, key, async () => {
        await writeFile(join(mnt, a), content(a + '-v2'));
        await control(state, { op: 'commit' });
      });
      await control(state, { op: 'drop-caches' });
      const r = await cat(join(mnt, a));
      expect({ a, ok: r.ok }).toEqual({ a, ok: false });
      expect(r.err).toMatch(/Input\/output error/);
    }
    // untouched files still read correctly
    expect((await cat(join(mnt, 'victim'))).data!.equals(content('victim'))).toBe(true);
    const log = (child as ChildProcess & { log: () => string }).log();
    expect(log.match(/integrity violation/g)!.length).toBeGreaterThanOrEqual(ATTACKS.length);

    // whole-tree rollback while mounted: the provider restores an old copy of everything
    const snap = join(bed.dir, 'snap-live');
    await control(state, { op: 'commit' });
    await cp(backing, snap, { recursive: true });
    await writeFile(join(mnt, 'victim'), content('victim-v2'));
    await writeFile(join(mnt, 'new'), content('new'));
    await control(state, { op: 'commit' });
    await rm(backing, { recursive: true });
    await cp(snap, backing, { recursive: true });
    await control(state, { op: 'drop-caches' });
    const r = await cat(join(mnt, 'victim'));
    if (r.ok) expect(r.data!.equals(content('victim-v2'))).toBe(true);
    else expect(r.err).toMatch(/Input\/output error/);
    expect((await cat(join(mnt, 'new'))).ok).toBe(false);
    await execp('fusermount', ['-u', mnt]);
    await new Promise((res) => (child.exitCode !== null ? res(0) : child.once('exit', res)));
    // The daemon's last commit re-asserted its own (newest) tree, so the
    // rolled-back objects now show up as deleted ones: detected, never served.
    const again = await bed.mount(backing, mnt, key);
    expect((await cat(join(mnt, 'new'))).ok).toBe(false);
    await unmount(bed, mnt, again);
    const k = await bed.cli(['fs', 'check', backing, '--key', key]);
    expect(k.code).toBe(65);
    expect(k.stdout).toMatch(/DAMAGED/);
  });

  it('detects every attack done while unmounted; fs check names each damaged file', async () => {
    const { backing, key, mnt, child } = await setup('cold');
    await unmount(bed, mnt, child);
    for (const a of ATTACKS) {
      await attack(a, backing, key, async () => {
        const c = await bed.mount(backing, mnt, key);
        await writeFile(join(mnt, a), content(a + '-v2'));
        await unmount(bed, mnt, c);
      });
    }
    const chk = await bed.cli(['fs', 'check', backing, '--key', key]);
    expect(chk.code).toBe(65);
    for (const a of ATTACKS) expect(chk.stdout).toContain(`DAMAGED /${a}:`);
    expect(chk.stdout).not.toContain('DAMAGED /victim');
    const c = await bed.mount(backing, mnt, key);
    for (const a of ATTACKS) {
      const r = await cat(join(mnt, a));
      expect({ a, ok: r.ok }).toEqual({ a, ok: false });
    }
    expect((await cat(join(mnt, 'victim'))).data!.equals(content('victim'))).toBe(true);
    await unmount(bed, mnt, c);

    // rollback of metadata: an old inode page served under the current name
    const before = await where(backing, key, '/victim');
    const oldPage = await readFile(obj(backing, before.page!));
    const c1 = await bed.mount(backing, mnt, key);
    await writeFile(join(mnt, 'victim'), content('victim-v3'));
    await unmount(bed, mnt, c1);
    const after = await where(backing, key, '/victim');
    const curPage = await readFile(obj(backing, after.page!));
    await writeFile(obj(backing, after.page!), oldPage);
    const pk = await bed.cli(['fs', 'check', backing, '--key', key]);
    expect(pk.code).toBe(65);
    expect(pk.stdout).toMatch(/DAMAGED .*tag differs/);
    const c3 = await bed.mount(backing, mnt, key);
    expect((await cat(join(mnt, 'victim'))).ok).toBe(false);
    await unmount(bed, mnt, c3);
    await writeFile(obj(backing, after.page!), curPage);

    // whole-tree rollback while unmounted
    const snap = join(bed.dir, 'snap-cold');
    await cp(backing, snap, { recursive: true });
    const c2 = await bed.mount(backing, mnt, key);
    await writeFile(join(mnt, 'victim'), content('victim-v2'));
    await unmount(bed, mnt, c2);
    await rm(backing, { recursive: true });
    await cp(snap, backing, { recursive: true });
    const m = await bed.cli(['fs', 'mount', backing, mnt, '--key', key]);
    expect(m.code).toBe(65);
    expect(m.stderr).toMatch(/rolled the volume back/);
    const k = await bed.cli(['fs', 'check', backing, '--key', key]);
    expect(k.code).toBe(65);
  });

  it('gives clear errors for a wrong key and for a directory that is no volume', async () => {
    const a = await bed.init('ka');
    const b = await bed.init('kb');
    const wrong = await bed.cli(['fs', 'check', a.backing, '--key', b.key]);
    expect(wrong.code).toBe(77);
    expect(wrong.stderr).toMatch(/key is for volume/);
    const empty = join(bed.dir, 'empty');
    await mkdir(empty);
    const none = await bed.cli(['fs', 'mount', empty, a.mnt, '--key', a.key]);
    expect(none.code).toBe(65);
    expect(none.stderr).toMatch(/no Supernet volume header/);
  });
});
