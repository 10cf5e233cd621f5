/**
 * The NFS object store over the in-memory NFS server: the same contract as
 * the directory store, puts that survive a server restart between WRITE and
 * COMMIT (verifier check, rewrite), stale handles, a RENAME whose reply was
 * lost, and no temporaries left behind by a failed put.
 */
import { describe, it, expect, beforeEach, afterEach } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { FakeNfsServer } from './nfs-fake-server.js';
import { NfsStore, storeFor } from '../../fs/store-nfs.js';
import { PROC } from '../../fs/nfs/nfs3-wire.js';
import { MemoryLogger } from '../../admin/logger.js';
import { DirStore } from '../../fs/store.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let fake: FakeNfsServer;
let store: NfsStore;
let log: MemoryLogger;
const id = (): string => randomBytes(16).toString('hex');

beforeEach(async () => {
  fake = new FakeNfsServer();
  const port = await fake.start();
  log = new MemoryLogger();
  store = await NfsStore.open(`nfs://127.0.0.1:${port}/export?mountport=${port}`, {
    logger: log,
    deadlineMs: 10_000,
  });
  await store.init();
});
afterEach(async () => {
  store.close();
  await fake.stop();
});

describe('NfsStore', () => {
  it('stores, lists, reads and deletes objects like the directory store', async () => {
    expect(await store.isEmpty()).toBe(false); // objects/ exists now
    const a = id();
    const b = id();
    await store.put(a, Buffer.from('alpha'));
    await store.put(b, Buffer.alloc(0));
    await store.put('superblock', Buffer.from('sb'), true);
    await store.put('volume', Buffer.from('vol'), true);
    expect((await store.get(a))!.toString()).toBe('alpha');
    expect((await store.get(b))!.length).toBe(0);
    expect((await store.get('superblock'))!.toString()).toBe('sb');
    expect(await store.get(id())).toBeNull();
    expect((await store.list()).sort()).toEqual([a, b].sort());
    expect(fake.names('')).toEqual(['objects', 'superblock', 'volume']);
    await store.put(a, Buffer.from('replaced'));
    expect((await store.get(a))!.toString()).toBe('replaced');
    await store.delete(a);
    await store.delete(a); // missing is fine
    expect(await store.list()).toEqual([b]);
    await expect(store.get('../etc/passwd')).rejects.toThrow(/invalid object name/);
    await expect(store.put('Objects', Buffer.alloc(1))).rejects.toThrow(/invalid object name/);
    const st = await store.statfs();
    expect(st.bsize).toBe(4096);
    expect(st.blocks).toBe((1 << 30) / 4096);
    expect(st.bavail).toBe((1 << 29) / 4096);
  });

  it('moves objects larger than the transfer size in pipelined pieces', async () => {
    const name = id();
    const data = randomBytes(300_000); // the fake allows 64 KiB per READ/WRITE
    await store.put(name, data);
    expect(fake.file(`objects/${name}`)!.equals(data)).toBe(true);
    expect((await store.get(name))!.equals(data)).toBe(true);
    expect(fake.counts.get(PROC.WRITE)).toBe(Math.ceil(300_000 / 65536));
  });

  it("getInto reads what get reads into the caller's buffer, one READ per object that fits one", async () => {
    const sizes = [0, 5, 4096, 65536, 300_000];
    const names = sizes.map(() => id());
    const blobs = sizes.map((n) => randomBytes(n));
    for (let i = 0; i < sizes.length; i++) await store.put(names[i]!, blobs[i]!);
    for (let round = 0; round < 2; round++) {
      // Round 0 looks the names up, round 1 reads by the cached handles.
      for (let i = 0; i < sizes.length; i++) {
        const buf = Buffer.alloc(sizes[i]! + 1, 0xee);
        const reads = fake.counts.get(PROC.READ) ?? 0;
        expect(await store.getInto(names[i]!, buf)).toBe(sizes[i]);
        expect(buf.subarray(0, sizes[i]).equals(blobs[i]!)).toBe(true);
        expect(buf[sizes[i]!]).toBe(0xee);
        const used = (fake.counts.get(PROC.READ) ?? 0) - reads;
        expect(used).toBe(Math.max(1, Math.ceil(sizes[i]! / 65536)));
      }
    }
    // A blob longer than the buffer fills it; a missing one is null.
    const short = Buffer.alloc(1000);
    expect(await store.getInto(names[4]!, short)).toBe(1000);
    expect(short.equals(blobs[4]!.subarray(0, 1000))).toBe(true);
    expect(await store.getInto(id(), Buffer.alloc(10))).toBeNull();
    await expect(store.getInto('nope', Buffer.alloc(1))).rejects.toThrow(/invalid object name/);
  });

  it('writes an object that fits one WRITE with FILE_SYNC and no COMMIT', async () => {
    const name = id();
    await store.put(name, randomBytes(60_000));
    expect(fake.counts.get(PROC.WRITE)).toBe(1);
    expect(fake.counts.get(PROC.COMMIT) ?? 0).toBe(0);
    fake.restart(); // FILE_SYNC data is stable: nothing is lost
    expect((await store.get(name))!.length).toBe(60_000);
    const s2 = await NfsStore.open(store.url, { syncSmall: false });
    await s2.put(id(), randomBytes(1000));
    expect(fake.counts.get(PROC.COMMIT)).toBe(1);
    s2.close();
  });

  it('rewrites when the server restarted between WRITE and COMMIT (verifier changed)', async () => {
    const name = id();
    const data = randomBytes(200_000);
    let crashed = false;
    fake.before = (proc) => {
      if (proc === PROC.COMMIT && !crashed) {
        crashed = true;
        fake.restart(); // unstable data is gone, the verifier is new
      }
    };
    await store.put(name, data);
    expect(crashed).toBe(true);
    expect(store.counters.rewrites).toBe(1);
    expect(fake.file(`objects/${name}`)!.equals(data)).toBe(true);
    expect(log.records.some((r) => r.msg.includes('verifier changed'))).toBe(true);
  });

  it('also when the restart dropped the connection during the WRITEs', async () => {
    const name = id();
    const data = randomBytes(200_000);
    fake.before = (proc, n) => {
      if (proc === PROC.WRITE && n === 2) {
        fake.restart(true);
        return 'drop';
      }
    };
    await store.put(name, data);
    expect(fake.file(`objects/${name}`)!.equals(data)).toBe(true);
    expect(store.client.counters.reconnects).toBeGreaterThanOrEqual(1);
  });

  it('gives up with EIO when the verifier never stays the same', async () => {
    fake.before = (proc) => {
      if (proc === PROC.COMMIT) fake.restart();
    };
    const name = id();
    await expect(store.put(name, randomBytes(200_000))).rejects.toThrow(/verifier changed 5 times/);
    fake.before = null;
    expect(fake.names('objects').filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    expect(await store.get(name)).toBeNull();
  });

  it('looks names up again after the server made every handle stale', async () => {
    const name = id();
    await store.put(name, Buffer.from('x'));
    fake.staleAll();
    expect((await store.get(name))!.toString()).toBe('x');
    expect(store.counters.staleRetries).toBeGreaterThanOrEqual(1);
    fake.staleAll();
    await store.put(id(), Buffer.from('y'));
    fake.staleAll();
    expect((await store.list()).length).toBe(2);
  });

  it('reads known objects by their handle alone, and notices when another client deleted one', async () => {
    const a = id();
    const b = id();
    await store.put(a, Buffer.from('alpha'));
    await store.put(b, Buffer.from('beta'));
    const lookups = fake.counts.get(PROC.LOOKUP) ?? 0;
    expect((await store.get(a))!.toString()).toBe('alpha');
    expect(fake.counts.get(PROC.LOOKUP) ?? 0).toBe(lookups);
    expect(store.counters.cachedHandles).toBe(1);
    const other = await NfsStore.open(store.url);
    await other.delete(b);
    other.close();
    expect(await store.get(b)).toBeNull();
    // list() learns the handles of objects written by someone else.
    const c = id();
    const third = await NfsStore.open(store.url);
    await third.put(c, Buffer.from('gamma'));
    third.close();
    expect((await store.list()).sort()).toEqual([a, c].sort());
    const before = fake.counts.get(PROC.LOOKUP) ?? 0;
    expect((await store.get(c))!.toString()).toBe('gamma');
    expect(fake.counts.get(PROC.LOOKUP) ?? 0).toBe(before);
  });

  it('a RENAME whose reply was lost and that then finds no source counts as done', async () => {
    // Only the names replaced atomically go through a temporary and RENAME.
    const name = 'superblock';
    fake.before = (proc, n) => (proc === PROC.RENAME && n === 1 ? 'drop-after' : undefined);
    await store.put(name, Buffer.from('renamed once'));
    expect(fake.counts.get(PROC.RENAME)).toBe(2); // retransmitted, ran again, NOENT
    expect((await store.get(name))!.toString()).toBe('renamed once');
  });

  it('a failed put leaves no temporary file and reports the errno', async () => {
    fake.before = (proc) => (proc === PROC.WRITE ? 28 : undefined);
    const err = await store.put(id(), Buffer.from('x')).catch((e) => e);
    expect(err.code).toBe('ENOSPC');
    fake.before = null;
    expect(fake.names('objects')).toEqual([]);
  });

  it('sweeps temporaries left by an interrupted put', async () => {
    fake.before = (proc) => (proc === PROC.RENAME ? 'drop' : undefined);
    const s2 = await NfsStore.open(store.url, { deadlineMs: 800 });
    await expect(s2.put('superblock', Buffer.from('x'))).rejects.toThrow(/no reply/);
    s2.close();
    fake.before = null;
    const left = fake.names('').filter((n) => n.startsWith('.tmp-'));
    // The cleanup REMOVE could not get through either; the sweep finds it.
    expect(left.length).toBeLessThanOrEqual(1);
    expect(await store.sweepTemp()).toBe(left.length);
    expect(fake.names('').filter((n) => n.startsWith('.tmp-'))).toEqual([]);
  });

  it('writes objects in place: CREATE at the final name and one FILE_SYNC WRITE, no RENAME', async () => {
    const name = id();
    fake.counts.clear();
    await store.put(name, Buffer.from('in place'));
    expect(fake.counts.get(PROC.RENAME) ?? 0).toBe(0);
    expect(fake.counts.get(PROC.CREATE)).toBe(1);
    expect(fake.counts.get(PROC.WRITE)).toBe(1);
    expect(fake.names('objects')).toContain(name);
    expect((await store.get(name))!.toString()).toBe('in place');
  });
});

describe('storeFor', () => {
  it('picks the NFS store for nfs:// URLs and the directory store otherwise', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'h7-storefor-'));
    try {
      const d = await storeFor(join(dir, 'v'));
      expect(d).toBeInstanceOf(DirStore);
      expect(await d.isEmpty()).toBe(true);
      await d.init();
      expect(await d.isEmpty()).toBe(false);
      const n = await storeFor(store.url);
      expect(n).toBeInstanceOf(NfsStore);
      n.close();
      await expect(storeFor('nfs://127.0.0.1/')).rejects.toThrow(/export path is missing/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
