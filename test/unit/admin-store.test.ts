import { describe, it, expect, afterAll } from '@jest/globals';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  MemoryStore,
  MapStore,
  StoreError,
  type PersistBatch,
  type StoreSnapshot,
} from '../../admin/store.js';
import { LowdbStore } from '../../admin/store-lowdb.js';
import { tempDir, removeDir } from './admin-fixture.js';

/** A store whose persists wait until released, to observe what readers see meanwhile. */
class GatedStore extends MapStore {
  gates: Array<() => void> = [];
  snapshots: StoreSnapshot[] = [];
  failNext = false;
  protected persist(batch: PersistBatch): Promise<void> {
    this.snapshots.push(JSON.parse(batch.serialize()) as StoreSnapshot);
    return new Promise((resolve, reject) =>
      this.gates.push(() => (this.failNext ? reject(new Error('disk full')) : resolve())),
    );
  }
  release(): void {
    this.gates.shift()?.();
  }
}
const tick = () => new Promise((r) => setImmediate(r));

describe('Store engine', () => {
  it('readers see only durable state; writers see their predecessors', async () => {
    const s = new GatedStore();
    const w1 = s.write((tx) => tx.put('nodes', 'a', { v: 1 }));
    await tick();
    expect(await s.read((tx) => tx.get('nodes', 'a'))).toBeUndefined();
    const w2 = s.write((tx) => {
      expect(tx.get('nodes', 'a')).toEqual({ v: 1 });
      tx.put('nodes', 'a', { v: 2 });
      tx.put('nodes', 'b', { v: 1 });
      tx.delete('nodes', 'a');
    });
    expect(await s.read((tx) => tx.list('nodes'))).toEqual([]);
    s.release();
    await w1;
    expect(await s.read((tx) => tx.list('nodes'))).toEqual([['a', { v: 1 }]]);
    expect(await s.read((tx) => tx.count('nodes'))).toBe(1);
    await tick();
    s.release();
    await w2;
    expect(await s.read((tx) => tx.list('nodes'))).toEqual([['b', { v: 1 }]]);
  });

  it('batches concurrent writes into one persist (group commit)', async () => {
    const s = new MemoryStore();
    await Promise.all(
      Array.from({ length: 50 }, (_, i) => s.write((tx) => tx.put('audit', String(i), i))),
    );
    expect(s.persists).toBeLessThanOrEqual(2);
    expect(await s.read((tx) => tx.count('audit'))).toBe(50);
  });

  it('undoes a transaction that throws, and a savepoint rollback', async () => {
    const s = new MemoryStore();
    await s.write((tx) => tx.put('meta', 'x', 1));
    await expect(
      s.write((tx) => {
        tx.put('meta', 'x', 2);
        tx.put('meta', 'y', 3);
        throw new Error('no');
      }),
    ).rejects.toThrow('no');
    await s.write((tx) => {
      const sp = tx.savepoint();
      tx.put('meta', 'z', 1);
      tx.delete('meta', 'x');
      tx.rollbackTo(sp);
      tx.put('meta', 'w', 1);
    });
    expect(await s.read((tx) => Object.fromEntries(tx.list('meta')))).toEqual({ x: 1, w: 1 });
  });

  it('freezes stored values and refuses async write functions', async () => {
    const s = new MemoryStore();
    const v = { a: { b: 1 } };
    await s.write((tx) => tx.put('meta', 'v', v));
    expect(() => {
      (v.a as { b: number }).b = 2;
    }).toThrow(TypeError);
    await expect(s.write((async () => undefined) as never)).rejects.toThrow(/synchronous/);
  });

  it('after a failed persist refuses further writes but keeps serving durable reads', async () => {
    const s = new GatedStore();
    const w = s.write((tx) => tx.put('meta', 'k', 1));
    await tick();
    s.failNext = true;
    s.release();
    await expect(w).rejects.toBeInstanceOf(StoreError);
    await expect(s.write((tx) => tx.put('meta', 'k', 2))).rejects.toThrow(/unavailable: disk full/);
    expect(await s.read((tx) => tx.get('meta', 'k'))).toBeUndefined();
  });
});

describe('LowdbStore', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach(removeDir));

  it('persists atomically with mode 0600 and reloads', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir, 'db.json');
    const s = await LowdbStore.open(path);
    await s.write((tx) => tx.put('supernets', '0x4711', { id: '0x4711' }));
    expect(statSync(path).mode & 0o777).toBe(0o600);
    // The change went to the journal; the snapshot is the (empty) one written at creation.
    expect(readFileSync(`${path}.journal`, 'utf8')).toBe(
      '[["supernets","0x4711",{"id":"0x4711"}]]\n',
    );
    await s.close();
    const again = await LowdbStore.open(path);
    expect(await again.read((tx) => tx.get('supernets', '0x4711'))).toEqual({ id: '0x4711' });
    await again.close();
    const onDisk = JSON.parse(readFileSync(path, 'utf8')) as StoreSnapshot;
    expect(onDisk).toMatchObject({
      kind: 'supernet-admin-db',
      v: 1,
      data: { supernets: { '0x4711': { id: '0x4711' } } },
    });
  });

  it('names the problem in a database of another version or with unknown collections', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir, 'db.json');
    writeFileSync(path, JSON.stringify({ kind: 'supernet-admin-db', v: 2, data: {} }));
    await expect(LowdbStore.open(path)).rejects.toThrow(/database version 2/);
    writeFileSync(path, JSON.stringify({ kind: 'supernet-admin-db', v: 1, data: { bogus: {} } }));
    await expect(LowdbStore.open(path)).rejects.toThrow(/unknown collection "bogus"/);
    // A failed open releases the lock.
    writeFileSync(path, JSON.stringify({ kind: 'supernet-admin-db', v: 1, data: {} }));
    const ok = await LowdbStore.open(path);
    await ok.close();
  });

  it('journals each flush, replays the journal on open, drops a torn tail and refuses damage', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir, 'db.json');
    const s = await LowdbStore.open(path, { lock: false });
    await s.write((tx) => tx.put('nodes', 'a', { v: 1 }));
    await s.write((tx) => {
      tx.put('nodes', 'b', { v: 2 });
      tx.delete('nodes', 'a');
    });
    // A "crash": the process dies without closing; the snapshot is still the empty one.
    const journal = readFileSync(`${path}.journal`, 'utf8');
    expect(journal.split('\n')).toHaveLength(3);
    expect(statSync(`${path}.journal`).mode & 0o777).toBe(0o600);
    writeFileSync(`${path}.journal`, journal + '[["nodes","c",{"v":'); // an append that never completed
    const again = await LowdbStore.open(path, { lock: false });
    expect(await again.read((tx) => tx.list('nodes'))).toEqual([['b', { v: 2 }]]);
    // Opening folded the journal into the snapshot.
    expect(readFileSync(`${path}.journal`, 'utf8')).toBe('');
    expect(JSON.parse(readFileSync(path, 'utf8')).data.nodes).toEqual({ b: { v: 2 } });
    await again.close();
    writeFileSync(`${path}.journal`, 'garbage\n[["nodes","d",{"v":4}]]\n');
    await expect(LowdbStore.open(path, { lock: false })).rejects.toThrow(
      /journal: line 1 is not valid JSON/,
    );
    writeFileSync(`${path}.journal`, '[["bogus","d",1]]\n');
    await expect(LowdbStore.open(path, { lock: false })).rejects.toThrow(
      /line 1 holds a malformed change/,
    );
    await s.close();
  });

  it('compacts the journal into a new snapshot once it outgrows the snapshot', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir, 'db.json');
    const s = await LowdbStore.open(path, { compactMinBytes: 2000 });
    const before = s.snapshots;
    for (let i = 0; i < 60; i++)
      await s.write((tx) => tx.put('audit', String(i), { i, pad: 'x'.repeat(50) }));
    expect(s.snapshots).toBeGreaterThan(before);
    expect(statSync(`${path}.journal`).size).toBeLessThan(2200);
    await s.close();
    const again = await LowdbStore.open(path);
    expect(await again.read((tx) => tx.count('audit'))).toBe(60);
    await again.close();
  });

  it('takes over the lock of a process that is gone', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir, 'db.json');
    writeFileSync(`${path}.lock`, '999999999\n');
    const s = await LowdbStore.open(path);
    expect(readFileSync(`${path}.lock`, 'utf8').trim()).toBe(String(process.pid));
    await s.close();
  });
});
