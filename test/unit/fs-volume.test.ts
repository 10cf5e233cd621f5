import { describe, it, expect } from '@jest/globals';
import { Volume } from '../../fs/volume.js';
import { MemStore } from '../../fs/store.js';
import { MemoryAnchor } from '../../fs/anchor.js';
import { Keyring } from '../../fs/keys.js';
import { newId, CHUNK_SIZE } from '../../fs/format.js';
import { FsErrno, VolumeError } from '../../fs/errors.js';
import { MemoryLogger } from '../../admin/logger.js';

async function fresh(
  opts = {},
): Promise<{ store: MemStore; keys: Keyring; anchor: MemoryAnchor; v: Volume }> {
  const store = new MemStore();
  const keys = Keyring.generate(newId());
  const anchor = new MemoryAnchor();
  const v = await Volume.create(
    store,
    keys,
    anchor,
    { uid: 0, gid: 0 },
    { commitIntervalMs: 0, ...opts },
  );
  return { store, keys, anchor, v };
}

async function readAll(v: Volume, path: string): Promise<Buffer> {
  const st = await v.getattr(path);
  const fh = await v.open(path);
  const b = Buffer.alloc(st.size);
  const n = await v.read(fh, b, st.size, 0);
  await v.release(fh);
  return b.subarray(0, n);
}

/** Small seeded PRNG so failures replay. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * A store with a provider's latency: every get takes `delayMs` and the most
 * gets in flight at once is recorded (the rekey must not fetch one small
 * file per round trip).
 */
class SlowStore extends MemStore {
  inFlight = 0;
  maxInFlight = 0;
  superblockPuts = 0;
  constructor(private readonly delayMs: number) {
    super();
  }
  private async slow<T>(f: () => Promise<T>): Promise<T> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((r) => setTimeout(r, this.delayMs));
      return await f();
    } finally {
      this.inFlight--;
    }
  }
  override get(name: string): Promise<Buffer | null> {
    return this.slow(() => super.get(name));
  }
  override getInto(name: string, buf: Buffer): Promise<number | null> {
    return this.slow(() => super.getInto(name, buf));
  }
  override put(name: string, data: Buffer): Promise<void> {
    if (name === 'superblock') this.superblockPuts++;
    return super.put(name, data);
  }
}

describe('fs volume engine (in-memory store)', () => {
  it('creates, writes, reads, renames and survives a reopen', async () => {
    const { store, keys, anchor, v } = await fresh();
    await v.mkdir('/d', 0o755, 0, 0);
    const fh = await v.create('/d/a', 0o644, 1000, 1000);
    const data = Buffer.alloc(3 * CHUNK_SIZE + 123, 7);
    await v.write(fh, data, data.length, 0);
    await v.release(fh);
    await v.symlink('/d/a', '/l', 0, 0);
    await v.rename('/d/a', '/d/b');
    await v.close();
    const w = await Volume.open(store, keys, anchor, { commitIntervalMs: 0 });
    expect((await w.readdir('/d')).sort()).toEqual(['b']);
    expect((await readAll(w, '/d/b')).equals(data)).toBe(true);
    expect(await w.readlink('/l')).toBe('/d/a');
    const st = await w.getattr('/d/b');
    expect(st.uid).toBe(1000);
    expect(st.mode & 0o777).toBe(0o644);
    await expect(w.getattr('/d/a')).rejects.toThrow(FsErrno);
    await w.close();
  });

  it('keeps sparse files and huge truncates sparse', async () => {
    const { store, v } = await fresh();
    const fh = await v.create('/s', 0o644, 0, 0);
    await v.write(fh, Buffer.from('end'), 3, 5 * 2 ** 30);
    await v.ftruncate(fh, 2 ** 40);
    await v.release(fh);
    await v.commit();
    expect((await v.getattr('/s')).size).toBe(2 ** 40);
    const b = Buffer.alloc(8);
    const fh2 = await v.open('/s');
    await v.read(fh2, b, 8, 5 * 2 ** 30 - 5);
    expect(b.toString('latin1')).toBe('\0\0\0\0\0end');
    await v.release(fh2);
    // a handful of objects, not a terabyte
    expect(store.blobs.size).toBeLessThan(20);
  });

  it('matches a model under random operations, across commits and reopens', async () => {
    const r = rng(42);
    const f = await fresh({ dirtyBytes: 1 << 20 });
    const { store, keys, anchor } = f;
    let v = f.v;
    const model = new Map<string, Buffer>();
    const names = ['a', 'b', 'c', 'd'];
    for (let step = 0; step < 600; step++) {
      const name = '/' + names[Math.floor(r() * names.length)]!;
      const op = r();
      if (op < 0.4) {
        const pos = Math.floor(r() * 3 * CHUNK_SIZE);
        const len = 1 + Math.floor(r() * 70000);
        const data = Buffer.alloc(len, Math.floor(r() * 256));
        const fh = model.has(name) ? await v.open(name) : await v.create(name, 0o644, 0, 0);
        await v.write(fh, data, len, pos);
        await v.release(fh);
        const old = model.get(name) ?? Buffer.alloc(0);
        const next = Buffer.alloc(Math.max(old.length, pos + len));
        old.copy(next);
        data.copy(next, pos);
        model.set(name, next);
      } else if (op < 0.55 && model.has(name)) {
        const size = Math.floor(r() * 2 * CHUNK_SIZE);
        await v.truncate(name, size);
        const old = model.get(name)!;
        const next = Buffer.alloc(size);
        old.copy(next, 0, 0, Math.min(size, old.length));
        model.set(name, next);
      } else if (op < 0.65 && model.has(name)) {
        const to = '/' + names[Math.floor(r() * names.length)]!;
        await v.rename(name, to);
        const b = model.get(name)!;
        model.delete(name);
        model.set(to, b);
      } else if (op < 0.72 && model.has(name)) {
        await v.unlink(name);
        model.delete(name);
      } else if (op < 0.8) {
        await v.commit();
      } else if (op < 0.83) {
        await v.close();
        v = await Volume.open(store, keys, anchor, { commitIntervalMs: 0, dirtyBytes: 1 << 20 });
      } else if (model.has(name)) {
        expect((await readAll(v, name)).equals(model.get(name)!)).toBe(true);
      }
    }
    for (const [name, b] of model) expect((await readAll(v, name)).equals(b)).toBe(true);
    expect((await v.readdir('/')).sort()).toEqual([...model.keys()].map((n) => n.slice(1)).sort());
    await v.close();
    // nothing left over: every stored object is referenced
    const live = await (await Volume.open(store, keys, anchor, { readOnly: true })).reachable();
    expect(new Set(await store.list())).toEqual(live);
    void { keys, anchor };
  });

  it('detects tampering, missing objects and whole-volume rollback', async () => {
    const { store, keys, anchor, v } = await fresh();
    const fh = await v.create('/f', 0o644, 0, 0);
    await v.write(fh, Buffer.alloc(5000, 1), 5000, 0);
    await v.release(fh);
    await v.close();
    const snapshot = new Map(store.blobs);
    const w = await Volume.open(store, keys, anchor, { commitIntervalMs: 0 });
    const fh2 = await w.open('/f');
    await w.write(fh2, Buffer.alloc(10, 2), 10, 0);
    await w.release(fh2);
    await w.close();
    // whole-tree rollback
    const current = new Map(store.blobs);
    store.blobs.clear();
    for (const [k, b] of snapshot) store.blobs.set(k, b);
    await expect(Volume.open(store, keys, anchor)).rejects.toThrow(VolumeError);
    store.blobs.clear();
    for (const [k, b] of current) store.blobs.set(k, b);
    // flip one bit in every object in turn: each read that needs it fails with an IntegrityError
    const log = new MemoryLogger();
    for (const name of await store.list()) {
      const orig = store.blobs.get(name)!;
      const bad = Buffer.from(orig);
      bad[bad.length - 40]! ^= 1;
      store.blobs.set(name, bad);
      const x = await Volume.open(store, keys, anchor, { readOnly: true, logger: log }).catch(
        (e) => e,
      );
      if (x instanceof Volume) await expect(readAll(x, '/f')).rejects.toThrow(/object/);
      store.blobs.set(name, orig);
    }
    expect(log.records.filter((r) => r.msg === 'integrity violation').length).toBeGreaterThan(0);
  });

  it('rekeys: afterwards no object opens with the old key', async () => {
    const { store, keys, anchor, v } = await fresh();
    for (let i = 0; i < 5; i++) {
      const fh = await v.create('/f' + i, 0o644, 0, 0);
      await v.write(fh, Buffer.alloc(CHUNK_SIZE + i, i), CHUNK_SIZE + i, 0);
      await v.release(fh);
    }
    await v.commit();
    const old = new Keyring(keys.volumeId);
    old.keys.set(1, keys.key(1)!);
    keys.addEpoch();
    await v.rekey();
    expect(keys.current).toBe(2);
    expect(keys.key(1)).toBeNull();
    await v.close();
    await expect(Volume.open(store, old, new MemoryAnchor(), { readOnly: true })).rejects.toThrow(
      VolumeError,
    );
    const w = await Volume.open(store, keys, anchor, { readOnly: true });
    expect(await w.refsOutside(2)).toBe(0);
    for (let i = 0; i < 5; i++)
      expect((await readAll(w, '/f' + i)).equals(Buffer.alloc(CHUNK_SIZE + i, i))).toBe(true);
  });

  it('rekeys many small files with their fetches overlapped and few checkpoints', async () => {
    const store = new SlowStore(2);
    const keys = Keyring.generate(newId());
    const anchor = new MemoryAnchor();
    const FILES = 640; // ten inode pages
    const v = await Volume.create(store, keys, anchor, { uid: 0, gid: 0 }, { commitIntervalMs: 0 });
    for (let i = 0; i < FILES; i++) {
      const fh = await v.create('/s' + i, 0o644, 0, 0);
      const b = Buffer.from(`small file ${i}\n`);
      await v.write(fh, b, b.length, 0);
      await v.release(fh);
    }
    await v.close();
    // Reopened: nothing cached, every chunk comes from the store.
    const w = await Volume.open(store, keys, anchor, { commitIntervalMs: 0 });
    keys.addEpoch();
    store.maxInFlight = 0;
    store.superblockPuts = 0;
    await w.rekey();
    // One get at a time was one round trip per small file (REKEY_AHEAD_FILES).
    expect(store.maxInFlight).toBeGreaterThanOrEqual(8);
    // A commit per inode page was one more round trip per 64 files; the
    // final commit and at most one per second remain (REKEY_CHECKPOINT_MS;
    // a commit per page would be 11 here, and ~3 is usual).
    expect(store.superblockPuts).toBeLessThan(FILES / 64 - 2);
    expect(await w.refsOutside(keys.current)).toBe(0);
    await w.close();
    const r = await Volume.open(store, keys, anchor, { readOnly: true });
    for (let i = 0; i < FILES; i++)
      expect((await readAll(r, '/s' + i)).toString()).toBe(`small file ${i}\n`);
    await r.close();
  });
});
