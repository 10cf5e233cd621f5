/**
 * Acceptance 5: what an observer of the backing directory learns. It sees a
 * flat set of objects with random names whose sizes come from a small fixed
 * set of buckets; no name, name length, tree shape, owner, mode or exact
 * file size shows.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { mkdir, readdir, readFile, stat, writeFile, chmod, chown, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { makeBed, unmount, type Bed } from './fs-kit.js';
import { allObjectSizes, VOL_HEADER_LEN } from '../../fs/format.js';

let bed: Bed;
beforeAll(async () => {
  bed = await makeBed('observer');
});
afterAll(async () => {
  await bed.cleanup();
});

const SIZES = [1, 777, 4097, 100_000, 262_143, 300_001];
/*
 * Owner ids and the name padding are searched for in ~5 MB of ciphertext:
 * a 4-byte pattern turns up in random bytes about once in a thousand runs
 * (it did, in CI), so the patterns searched for are 8 bytes or more.
 */
const UID = 123_456_789;
const GID = 987_654_321;

/** Builds a volume: `nested` puts the same directories in a chain instead of side by side. */
async function build(name: string, nameLen: number, nested: boolean): Promise<string> {
  const { backing, key, mnt } = await bed.init(name);
  const child = await bed.mount(backing, mnt, key);
  const label = (i: number): string => `SECRET${i}`.padEnd(nameLen, 'x');
  let dir = mnt;
  for (let i = 0; i < 4; i++) {
    const d = join(nested ? dir : mnt, label(i));
    await mkdir(d);
    if (nested) dir = d;
    for (const [j, size] of SIZES.entries()) {
      const f = join(d, label(10 + j));
      await writeFile(f, Buffer.alloc(size, `CONTENT${j}`));
      await chmod(f, 0o640);
      await chown(f, UID, GID);
    }
  }
  await symlink(label(99), join(mnt, label(98)));
  await unmount(bed, mnt, child);
  return backing;
}

async function exposed(
  backing: string,
): Promise<{ top: string[]; sizes: number[]; blobs: Buffer[] }> {
  const top = (await readdir(backing)).sort();
  const sizes: number[] = [];
  const blobs: Buffer[] = [];
  for (const n of await readdir(join(backing, 'objects'))) {
    const p = join(backing, 'objects', n);
    const st = await stat(p);
    expect(n).toMatch(/^[0-9a-f]{32}$/);
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    sizes.push(st.size);
    blobs.push(await readFile(p));
  }
  blobs.push(await readFile(join(backing, 'superblock')), await readFile(join(backing, 'volume')));
  return { top, sizes: sizes.sort((a, b) => a - b), blobs };
}

describe('fs: what the provider sees', () => {
  it('exposes no names, name lengths, tree shape, owners or exact sizes', async () => {
    const flatShort = await exposed(await build('flat-short', 8, false));
    const nestedLong = await exposed(await build('nested-long', 200, true));
    for (const x of [flatShort, nestedLong]) {
      expect(x.top).toEqual(['objects', 'superblock', 'volume']);
      const allowed = new Set(allObjectSizes());
      for (const s of x.sizes) expect(allowed.has(s)).toBe(true);
      for (const s of SIZES) expect(x.sizes).not.toContain(s);
      expect(x.blobs.at(-1)!.length).toBe(VOL_HEADER_LEN);
      for (const b of x.blobs) {
        const text = b.toString('latin1');
        expect(text).not.toMatch(/SECRET|CONTENT|x{8}/);
        // owner ids do not appear in clear either: as text, nor as the inode
        // record's uid ‖ gid (fs/inode.ts IOFF_UID, IOFF_GID)
        const owners = Buffer.alloc(8);
        owners.writeUInt32BE(UID, 0);
        owners.writeUInt32BE(GID, 4);
        expect(b.includes(Buffer.from(String(UID)))).toBe(false);
        expect(b.includes(owners)).toBe(false);
      }
    }
    // Same files, names 8 vs 200 bytes long, side by side vs a chain of
    // directories: the observer sees exactly the same multiset of object sizes.
    expect(nestedLong.sizes).toEqual(flatShort.sizes);
  });
});
