/**
 * The engine's concurrency (docs/storage.md, "Speed"): puts run in the
 * background, commits persist outside the lock, read-ahead fetches outside
 * it. A store whose calls can be held back (gates) makes the interleavings
 * that matter happen on purpose: read-ahead that turns stale, reads of
 * objects whose put is still running, operations during a commit's durable
 * part, and random concurrent operations checked against a model.
 */
import { describe, it, expect } from '@jest/globals';
import { Volume } from '../../fs/volume.js';
import { MemStore } from '../../fs/store.js';
import { MemoryAnchor } from '../../fs/anchor.js';
import { Keyring } from '../../fs/keys.js';
import { CHUNK_SIZE, newId } from '../../fs/format.js';
import { MemoryLogger } from '../../admin/logger.js';

/** A MemStore whose gets and puts wait while their gate is closed (and may be slowed at random). */
class GatedStore extends MemStore {
  private gates = { get: null as Promise<void> | null, put: null as Promise<void> | null };
  private openers = { get: (): void => {}, put: (): void => {} };
  puts = 0;
  gets = 0;
  jitter: (() => number) | null = null;
  /** Gets of these names wait until {@link release}. */
  private held = new Set<string>();
  private heldGate: Promise<void> | null = null;
  private heldOpen = (): void => {};
  /** Gets waiting on held names now. */
  waiting = 0;

  hold(names: string[]): void {
    for (const n of names) this.held.add(n);
    this.heldGate = new Promise((r) => (this.heldOpen = r));
  }
  release(): void {
    this.held.clear();
    this.heldGate = null;
    this.heldOpen();
  }
  private async passName(name: string): Promise<void> {
    while (this.held.has(name) && this.heldGate) {
      this.waiting++;
      await this.heldGate;
      this.waiting--;
    }
  }

  shut(which: 'get' | 'put'): void {
    this.gates[which] = new Promise((r) => (this.openers[which] = r));
  }
  reopen(which: 'get' | 'put'): void {
    this.gates[which] = null;
    this.openers[which]();
  }
  private async pass(which: 'get' | 'put'): Promise<void> {
    while (this.gates[which]) await this.gates[which];
    if (this.jitter) await new Promise((r) => setTimeout(r, this.jitter!()));
  }
  override async get(name: string): Promise<Buffer | null> {
    this.gets++;
    await this.passName(name);
    await this.pass('get');
    return super.get(name);
  }
  override async getInto(name: string, buf: Buffer): Promise<number | null> {
    this.gets++;
    await this.passName(name);
    await this.pass('get');
    return super.getInto(name, buf);
  }
  override async put(name: string, data: Buffer): Promise<void> {
    this.puts++;
    // The engine lends `data` only until the put settles: copy at once, as a
    // real store writes it before resolving.
    const copy = Buffer.from(data);
    await this.pass('put');
    await super.put(name, copy);
  }
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

async function fresh(opts = {}): Promise<{
  store: GatedStore;
  keys: Keyring;
  anchor: MemoryAnchor;
  v: Volume;
}> {
  const store = new GatedStore();
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

async function readAt(v: Volume, path: string, pos: number, len: number): Promise<Buffer> {
  const fh = await v.open(path);
  const b = Buffer.alloc(len);
  const n = await v.read(fh, b, len, pos);
  await v.release(fh);
  return b.subarray(0, n);
}

async function writeAt(v: Volume, path: string, data: Buffer, pos: number): Promise<void> {
  const fh = await v.open(path);
  await v.write(fh, data, data.length, pos);
  await v.release(fh);
}

const pattern = (n: number, seed: number): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
};

describe('fs volume engine: concurrency', () => {
  it('never serves read-ahead that went stale (truncate, rewrite) while it was fetching', async () => {
    const { store, v } = await fresh();
    const old = pattern(12 * CHUNK_SIZE, 1);
    const fh = await v.create('/f', 0o644, 0, 0);
    await v.write(fh, old, old.length, 0);
    await v.release(fh);
    await v.commit();
    const { chunks } = await v.locate('/f');
    expect(chunks.length).toBe(12);
    await v.dropCaches();
    // A sequential read of chunk 0 starts read-ahead of the next chunks:
    // hold their fetches back.
    store.hold(chunks.slice(1));
    const first = await readAt(v, '/f', 0, CHUNK_SIZE);
    expect(first.equals(old.subarray(0, CHUNK_SIZE))).toBe(true);
    // The read-ahead's fetches start once the read's own chunk has been
    // opened (on the threadpool): give them the turns they need.
    for (let i = 0; i < 200 && store.waiting < 2; i++) await tick();
    expect(store.waiting).toBeGreaterThan(1);
    // While they wait: truncate away what they fetch (the truncate itself
    // needs chunk 1, so let the fetches go once it is under way), then write
    // new bytes there.
    const trunc = v.truncate('/f', CHUNK_SIZE + 10);
    await tick();
    store.release();
    await trunc;
    for (let i = 0; i < 20; i++) await tick();
    // Grow it again (a hole, zeros) and write a little in the middle: any
    // stale chunk the read-ahead left in the cache would show its old bytes.
    await v.truncate('/f', 12 * CHUNK_SIZE);
    const neu = pattern(1000, 2);
    await writeAt(v, '/f', neu, 5 * CHUNK_SIZE + 100);
    const want = Buffer.alloc(12 * CHUNK_SIZE);
    old.copy(want, 0, 0, CHUNK_SIZE + 10);
    neu.copy(want, 5 * CHUNK_SIZE + 100);
    const got = await readAt(v, '/f', 0, want.length + 1);
    expect(got.length).toBe(want.length);
    expect(got.equals(want)).toBe(true);
    await v.close();
  });

  it('serves objects whose put is still running, and a commit waits for them', async () => {
    const { store, keys, anchor, v } = await fresh();
    store.shut('put');
    const data = pattern(6 * CHUNK_SIZE, 3);
    const fh = await v.create('/g', 0o644, 0, 0);
    // full chunks are sealed and put at once (write-behind), then leave the cache
    await v.write(fh, data, data.length, 0);
    await v.release(fh);
    expect(store.blobs.size).toBeGreaterThan(0);
    const got = await readAt(v, '/g', 0, data.length);
    expect(got.equals(data)).toBe(true);
    let committed = false;
    const c = v.commit().then(() => (committed = true));
    for (let i = 0; i < 20; i++) await tick();
    expect(committed).toBe(false);
    // operations go on while the commit waits for its puts
    expect((await v.getattr('/g')).size).toBe(data.length);
    await writeAt(v, '/g', Buffer.from('tail'), data.length);
    store.reopen('put');
    await c;
    expect(committed).toBe(true);
    await v.close();
    const w = await Volume.open(store, keys, anchor, { commitIntervalMs: 0 });
    const all = await readAt(w, '/g', 0, data.length + 4);
    expect(all.equals(Buffer.concat([data, Buffer.from('tail')]))).toBe(true);
    await w.close();
    const live = await (await Volume.open(store, keys, anchor, { readOnly: true })).reachable();
    expect(new Set(await store.list())).toEqual(live);
  });

  it('matches a model under concurrent random operations with a slow, jittery store', async () => {
    const r = rng(7);
    const f = await fresh({ dirtyBytes: 1 << 20, inflightBytes: 1 << 20, readAheadChunks: 3 });
    const { store, keys, anchor } = f;
    let v = f.v;
    store.jitter = () => Math.floor(r() * 3);
    const model = new Map<string, Buffer>();
    const names = ['/a', '/b', '/c', '/d', '/e'];
    for (const n of names) {
      await v.release(await v.create(n, 0o644, 0, 0));
      model.set(n, Buffer.alloc(0));
    }
    const apply = (name: string, pos: number, data: Buffer): void => {
      const old = model.get(name)!;
      const next = Buffer.alloc(Math.max(old.length, pos + data.length));
      old.copy(next);
      data.copy(next, pos);
      model.set(name, next);
    };
    for (let round = 0; round < 25; round++) {
      // one operation per file at a time (so the model's order is the
      // volume's), all files at once
      const ops = names.map(async (name, k) => {
        const x = r();
        if (x < 0.5) {
          const pos = Math.floor(r() * 4 * CHUNK_SIZE);
          const len = 1 + Math.floor(r() * 2 * CHUNK_SIZE);
          const data = pattern(len, round * 10 + k);
          apply(name, pos, data);
          await writeAt(v, name, data, pos);
        } else if (x < 0.65) {
          const size = Math.floor(r() * 3 * CHUNK_SIZE);
          const old = model.get(name)!;
          const next = Buffer.alloc(size);
          old.copy(next, 0, 0, Math.min(size, old.length));
          model.set(name, next);
          await v.truncate(name, size);
        } else {
          const want = model.get(name)!;
          const got = await readAt(v, name, 0, want.length + 100);
          expect({ name, round, same: got.equals(want) }).toEqual({ name, round, same: true });
        }
      });
      const extra: Array<Promise<unknown>> = [];
      if (r() < 0.3) extra.push(v.commit());
      if (r() < 0.2) extra.push(v.dropCaches());
      await Promise.all([...ops, ...extra]);
      if (r() < 0.15) {
        await v.close();
        v = await Volume.open(store, keys, anchor, {
          commitIntervalMs: 0,
          dirtyBytes: 1 << 20,
          inflightBytes: 1 << 20,
          readAheadChunks: 3,
        });
      }
    }
    for (const [name, want] of model) {
      const got = await readAt(v, name, 0, want.length + 100);
      expect({ name, same: got.equals(want) }).toEqual({ name, same: true });
    }
    await v.close();
    store.jitter = null;
    const log = new MemoryLogger();
    const w = await Volume.open(store, keys, anchor, { readOnly: true, logger: log });
    const rep = await w.check();
    expect(rep.damaged).toEqual([]);
    expect(log.records.filter((x) => x.msg === 'integrity violation')).toEqual([]);
    expect(new Set(await store.list())).toEqual(await w.reachable());
  });
});
