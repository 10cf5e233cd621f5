/**
 * The native addon's whole-object file I/O (fs/native/aead.c putFile and
 * getFile, used by DirStore for objects): one threadpool job per object must
 * behave exactly like the open/write/close calls it replaces: O_EXCL (an id
 * is never written twice), short reads only at the end, errno as a coded
 * Node error, and no object half-visible to DirStore's readers. The sealed
 * variants (one job that seals and writes, or reads and opens) must store
 * exactly what the synchronous seal would accept and refuse every tampering.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aeadAddon } from '../../fs/native/aead.js';
import { DirStore } from '../../fs/store.js';
import { ObjectIO } from '../../fs/objects.js';
import { BufferPool } from '../../fs/bufpool.js';
import { CHUNK_SIZE, Kind, openObjectInto } from '../../fs/format.js';
import { IntegrityError } from '../../fs/errors.js';

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
    const loose = (f: unknown) => f as (...a: unknown[]) => void;
    expect(() => loose(addon!.sealPutFile)(join(dir, 'd'), false, () => {})).toThrow(/sealPutFile/);
    expect(() => loose(addon!.getOpenFile)(join(dir, 'd'), Buffer.alloc(1), () => {})).toThrow(
      /getOpenFile/,
    );
    // A tail that is not the trailer's length is refused before any job runs.
    const b = Buffer.alloc(32);
    expect(() =>
      addon!.getOpenFile(join(dir, 'd'), b, b, b.subarray(0, 16), b, b, 24, 12, 4, b, b, () => {}),
    ).toThrow(/trailerLen/);
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

describe('fs sealed file jobs (sealPutFile, getOpenFile through ObjectIO)', () => {
  const key = randomBytes(32);
  const keys = (e: number): Buffer | null => (e === 4 ? key : null);
  const b = { owner: 9, level: 0, index: 3 };

  async function volumeIO(): Promise<{ s: DirStore; io: ObjectIO }> {
    const s = new DirStore(await mkdtemp(join(dir, 'sealed-')));
    await s.init();
    return { s, io: new ObjectIO(s, new BufferPool(1 << 22), 1 << 24) };
  }

  withNative('seals into the file in one job, and opens it back in one job', async () => {
    const { s, io } = await volumeIO();
    for (const len of [0, 1, 5000, CHUNK_SIZE]) {
      const payload = randomBytes(len);
      const { ref, sealed } = io.writeAsync(4, key, Kind.Chunk, b, payload);
      await sealed;
      await io.takeBatch().done;
      const name = ref.id.toString('hex');
      const stored = await readFile(s.objectPath(name));
      // The file is exactly what the synchronous open accepts, pinned by the ref's tag.
      const dst = Buffer.alloc(CHUNK_SIZE);
      expect(openObjectInto(keys, Kind.Chunk, ref, b, stored, dst)).toBe(len);
      expect(dst.subarray(0, len).equals(payload)).toBe(true);
      const dst2 = Buffer.alloc(CHUNK_SIZE);
      expect(await io.fetchOpen(name, keys, Kind.Chunk, ref, b, dst2)).toBe(len);
      expect(dst2.subarray(0, len).equals(payload)).toBe(true);
    }
  });

  withNative(
    'reports a missing object as null and any tampering as an integrity error, wiped',
    async () => {
      const { s, io } = await volumeIO();
      const payload = randomBytes(70_000);
      const { ref, sealed } = io.writeAsync(4, key, Kind.Chunk, b, payload);
      await sealed;
      await io.takeBatch().done;
      const name = ref.id.toString('hex');
      const path = s.objectPath(name);
      const good = await readFile(path);
      const tampered: Array<[string, Buffer]> = [];
      const flip = (at: number): Buffer => {
        const x = Buffer.from(good);
        x[at]! ^= 1;
        return x;
      };
      tampered.push(['ciphertext bit', flip(5000)]);
      tampered.push(['header epoch', flip(7)]);
      tampered.push(['stored tag', flip(good.length - 1)]);
      tampered.push(['truncated', good.subarray(0, good.length - 100)]);
      tampered.push(['too long for a chunk', Buffer.concat([good, Buffer.alloc(CHUNK_SIZE)])]);
      for (const [what, bytes] of tampered) {
        await rm(path);
        await writeFile(path, bytes);
        const dst = Buffer.alloc(CHUNK_SIZE, 0xaa);
        let caught: unknown = null;
        try {
          await io.fetchOpen(name, keys, Kind.Chunk, ref, b, dst);
        } catch (e) {
          caught = e;
        }
        expect({ what, integrity: caught instanceof IntegrityError }).toEqual({
          what,
          integrity: true,
        });
        // Nothing decrypted survives: what the job wrote is wiped, the rest untouched.
        expect({ what, plain: dst.includes(payload.subarray(0, 64)) }).toEqual({
          what,
          plain: false,
        });
      }
      // Another place (binding) for the same bytes fails too.
      await rm(path);
      await writeFile(path, good);
      await expect(
        io.fetchOpen(name, keys, Kind.Chunk, ref, { ...b, index: 4 }, Buffer.alloc(CHUNK_SIZE)),
      ).rejects.toBeInstanceOf(IntegrityError);
      await rm(path);
      expect(await io.fetchOpen(name, keys, Kind.Chunk, ref, b, Buffer.alloc(CHUNK_SIZE))).toBe(
        null,
      );
    },
  );
});
