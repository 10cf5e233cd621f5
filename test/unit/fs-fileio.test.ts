/**
 * The native addon's whole-object file I/O (fs/native/aead.c putFile and
 * getFile, used by DirStore for objects): one threadpool job per object must
 * behave exactly like the open/write/close calls it replaces: O_EXCL (an id
 * is never written twice), short reads only at the end, errno as a coded
 * Node error, and no object half-visible to DirStore's readers.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aeadAddon } from '../../fs/native/aead.js';
import { DirStore } from '../../fs/store.js';

const addon = aeadAddon();
const withNative = addon ? it : it.skip;

const put = (path: string, buf: Buffer, durable: boolean): Promise<[number, number]> =>
  new Promise((res) => addon!.putFile(path, buf, durable, (e, n) => res([e, n])));
const get = (path: string, buf: Buffer): Promise<[number, number]> =>
  new Promise((res) => addon!.getFile(path, buf, (e, n) => res([e, n])));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'supernet-fileio-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('fs native file I/O', () => {
  withNative('writes a new file whole (mode 0600) and refuses an existing one', async () => {
    const data = randomBytes(300_000);
    const p = join(dir, 'a');
    expect(await put(p, data, true)).toEqual([0, data.length]);
    expect((await readFile(p)).equals(data)).toBe(true);
    expect((await stat(p)).mode & 0o777).toBe(0o600);
    const [e] = await put(p, randomBytes(10), false);
    expect(e).toBe(17); // EEXIST: nothing overwritten
    expect((await readFile(p)).equals(data)).toBe(true);
  });

  withNative('reads until the buffer is full or the file ends', async () => {
    const data = randomBytes(70_000);
    const p = join(dir, 'b');
    await writeFile(p, data);
    const big = Buffer.alloc(100_000);
    expect(await get(p, big)).toEqual([0, data.length]);
    expect(big.subarray(0, data.length).equals(data)).toBe(true);
    const small = Buffer.alloc(1000);
    expect(await get(p, small)).toEqual([0, 1000]);
    expect(small.equals(data.subarray(0, 1000))).toBe(true);
    expect((await get(join(dir, 'missing'), small))[0]).toBe(2); // ENOENT
  });

  withNative('refuses bad arguments with a clear error', () => {
    expect(() => addon!.getFile('', Buffer.alloc(1), () => {})).toThrow(/path/);
    expect(() => addon!.putFile(join(dir, 'c'), 'x' as unknown as Buffer, false, () => {})).toThrow(
      /buf/,
    );
    expect(() =>
      (addon!.getFile as unknown as (...a: unknown[]) => void)(join(dir, 'c'), Buffer.alloc(1)),
    ).toThrow(/getFile/);
  });

  it('DirStore: objects round-trip, a missing one is null, a second put of an id fails', async () => {
    const s = new DirStore(join(dir, 'store'));
    await s.init();
    const name = randomBytes(16).toString('hex');
    const data = randomBytes(5000);
    await s.put(name, data, true);
    const buf = Buffer.alloc(6000);
    expect(await s.getInto(name, buf)).toBe(data.length);
    expect(buf.subarray(0, data.length).equals(data)).toBe(true);
    expect(await s.getInto(randomBytes(16).toString('hex'), buf)).toBeNull();
    await expect(s.put(name, data)).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(s.put('../x', data)).rejects.toThrow(/invalid object name/);
  });
});
