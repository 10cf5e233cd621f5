/**
 * The low-level FUSE dispatcher (fs/fuse-ll-ops.ts) against an in-memory
 * binding: each request is dispatched as fuse-ll.c would (op, slot id, inode,
 * a–d, s1, s2) and its one reply is captured with what the shared arrays held
 * at that moment. The real binding is exercised by the e2e fs tests.
 */
import { describe, it, expect } from '@jest/globals';
import { constants } from 'node:os';
import { Volume } from '../../fs/volume.js';
import { MemStore } from '../../fs/store.js';
import { MemoryAnchor } from '../../fs/anchor.js';
import { Keyring } from '../../fs/keys.js';
import { newId, CHUNK_SIZE } from '../../fs/format.js';
import { MemoryLogger } from '../../admin/logger.js';
import { ROOT_INO } from '../../fs/inode.js';
import { fuseDispatch } from '../../fs/fuse-ll-ops.js';
import { type FuseLL, type MountHandle, In, Op, SetAttr, Sf, St } from '../../fs/fuse-ll.js';

const E = constants.errno;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** One captured reply. */
interface Reply {
  kind: string;
  errno?: number;
  fh?: number;
  count?: number;
  data?: Buffer;
  target?: string;
  /** A copy of the attribute (or statfs) array when the reply was sent. */
  st?: number[];
  /** Directory entries sent: [name, ino, offset]. */
  dir?: Array<[string, number, number]>;
}

/** struct fuse_dirent: 24 bytes of header and the name, padded to 8. */
const direntLen = (name: string): number => (24 + Buffer.byteLength(name) + 7) & ~7;

/** The binding's reply side, in memory: one reply per slot, a second refused. */
class MemFuse implements FuseLL {
  st: Float64Array<ArrayBufferLike> = new Float64Array(0);
  private next = 1;
  private waiting = new Map<number, (r: Reply) => void>();
  readonly late: number[] = [];

  mount(): MountHandle {
    throw new Error('not used');
  }
  close(): void {}

  /** A new slot id and the promise of its reply. */
  request(): { req: number; reply: Promise<Reply> } {
    const req = this.next++;
    return { req, reply: new Promise<Reply>((res) => this.waiting.set(req, res)) };
  }
  private answer(req: number, r: Reply): boolean {
    const res = this.waiting.get(req);
    if (!res) {
      this.late.push(req);
      return false;
    }
    this.waiting.delete(req);
    res(r);
    return true;
  }
  private withSt(kind: string, req: number, extra: Partial<Reply> = {}): boolean {
    return this.answer(req, { kind, st: [...this.st], ...extra });
  }
  replyErr(req: number, errno: number): boolean {
    return this.answer(req, { kind: 'err', errno });
  }
  replyEntry(req: number): boolean {
    return this.withSt('entry', req);
  }
  replyCreate(req: number, fh: number): boolean {
    return this.withSt('create', req, { fh });
  }
  replyAttr(req: number): boolean {
    return this.withSt('attr', req);
  }
  replyOpen(req: number, fh: number): boolean {
    return this.answer(req, { kind: 'open', fh });
  }
  replyWrite(req: number, count: number): boolean {
    return this.answer(req, { kind: 'write', count });
  }
  replyData(req: number, buf: Buffer, length: number): boolean {
    // The binding copies to the kernel before returning; so does this.
    return this.answer(req, { kind: 'data', data: Buffer.from(buf.subarray(0, length)) });
  }
  replyReadlink(req: number, target: string): boolean {
    return this.answer(req, { kind: 'readlink', target });
  }
  replyStatfs(req: number): boolean {
    return this.withSt('statfs', req);
  }
  replyDir(req: number, size: number, names: string[], inos: number[], start: number): boolean {
    const dir: Array<[string, number, number]> = [];
    let used = 0;
    for (let i = start; i < names.length; i++) {
      const len = direntLen(names[i]!);
      if (used + len > size) break;
      used += len;
      dir.push([names[i]!, inos[i]!, i + 1]);
    }
    return this.answer(req, { kind: 'dir', dir });
  }
}

/** A provider that can be made to fail every put. */
class FlakyStore extends MemStore {
  failWith: Error | null = null;
  override async put(name: string, data: Buffer): Promise<void> {
    if (this.failWith) throw this.failWith;
    return super.put(name, data);
  }
}

async function setup(store: MemStore = new MemStore()): Promise<{
  v: Volume;
  ll: MemFuse;
  log: MemoryLogger;
  input: Float64Array;
  events: string[];
  call: (
    op: Op,
    ino: number,
    args?: Partial<{ a: number; b: number; c: number; d: number }>,
    s1?: string | null,
    s2?: string | Buffer | null,
  ) => Promise<Reply>;
}> {
  const log = new MemoryLogger();
  const v = await Volume.create(
    store,
    Keyring.generate(newId()),
    new MemoryAnchor(),
    { uid: 0, gid: 0 },
    { commitIntervalMs: 0, logger: log },
  );
  const ll = new MemFuse();
  const events: string[] = [];
  const { dispatch, st, input } = fuseDispatch(v, ll, log, {
    onInit: () => events.push('init'),
    onGone: () => events.push('gone'),
  });
  ll.st = st;
  const call = (
    op: Op,
    ino: number,
    { a = 0, b = 0, c = 0, d = 0 } = {},
    s1: string | null = null,
    s2: string | Buffer | null = null,
  ): Promise<Reply> => {
    const { req, reply } = ll.request();
    dispatch(op, req, ino, a, b, c, d, s1, s2);
    return reply;
  };
  return { v, ll, log, input, events, call };
}

describe('low-level FUSE dispatcher (in-memory binding)', () => {
  it('answers lookup with the entry attributes, and ENOENT for a missing name', async () => {
    const { call } = await setup();
    const made = await call(Op.Mkdir, ROOT_INO, { a: 0o750, b: 1000, c: 100 }, 'd');
    expect(made.kind).toBe('entry');
    expect(made.st![St.Mode]).toBe(S_IFDIR | 0o750);
    expect(made.st![St.Uid]).toBe(1000);
    expect(made.st![St.Gid]).toBe(100);
    const found = await call(Op.Lookup, ROOT_INO, {}, 'd');
    expect(found.kind).toBe('entry');
    expect(found.st![St.Ino]).toBe(made.st![St.Ino]);
    expect(await call(Op.Lookup, ROOT_INO, {}, 'nope')).toEqual({ kind: 'err', errno: E.ENOENT });
  });

  it('creates, writes, reads back and reports the size through getattr on the handle', async () => {
    const { call } = await setup();
    const c = await call(Op.Create, ROOT_INO, { a: 0o644, b: 0, c: 0 }, 'f');
    expect(c.kind).toBe('create');
    expect(c.st![St.Mode]).toBe(S_IFREG | 0o644);
    const ino = c.st![St.Ino]!;
    const fh = c.fh!;
    const data = Buffer.alloc(CHUNK_SIZE + 5000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    const w = await call(Op.Write, ino, { a: fh, b: data.length, c: 100 }, null, data);
    expect(w).toEqual({ kind: 'write', count: data.length });
    const st = await call(Op.Getattr, ino, { a: fh });
    expect(st.st![St.Size]).toBe(100 + data.length);
    const r = await call(Op.Read, ino, { a: fh, b: 131072, c: 100 });
    expect(r.kind).toBe('data');
    expect(r.data!.equals(data.subarray(0, 131072))).toBe(true);
    // The hole before the write reads as zeros; a read past the end is short.
    const head = await call(Op.Read, ino, { a: fh, b: 100, c: 0 });
    expect(head.data!.equals(Buffer.alloc(100))).toBe(true);
    const tail = await call(Op.Read, ino, { a: fh, b: 131072, c: 100 + data.length - 10 });
    expect(tail.data!.equals(data.subarray(data.length - 10))).toBe(true);
    expect(await call(Op.Release, ino, { a: fh })).toEqual({ kind: 'err', errno: 0 });
  });

  it('applies setattr from the input array: size, mode, owner and both kinds of times', async () => {
    const { call, input } = await setup();
    const c = await call(Op.Create, ROOT_INO, { a: 0o600 }, 'f');
    const ino = c.st![St.Ino]!;
    await call(Op.Write, ino, { a: c.fh!, b: 4096, c: 0 }, null, Buffer.alloc(4096, 1));
    input[In.ToSet] = SetAttr.Size | SetAttr.Mode | SetAttr.Uid | SetAttr.Gid | SetAttr.Mtime;
    input[In.Size] = 10;
    input[In.Mode] = 0o640;
    input[In.Uid] = 7;
    input[In.Gid] = 8;
    input[In.Mtime] = 1_600_000_000_123;
    input[In.Fh] = -1;
    const s = await call(Op.Setattr, ino);
    expect(s.kind).toBe('attr');
    expect(s.st![St.Size]).toBe(10);
    expect(s.st![St.Mode]).toBe(S_IFREG | 0o640);
    expect([s.st![St.Uid], s.st![St.Gid]]).toEqual([7, 8]);
    expect(s.st![St.Mtime]).toBe(1_600_000_000_123);
    const before = Date.now();
    input[In.ToSet] = SetAttr.Atime | SetAttr.AtimeNow;
    input[In.Atime] = 5; // ignored: "now" wins
    const t = await call(Op.Setattr, ino);
    expect(t.st![St.Atime]).toBeGreaterThanOrEqual(before);
    expect(t.st![St.Mtime]).toBe(1_600_000_000_123);
    const r = await call(Op.Read, ino, { a: c.fh!, b: 4096, c: 0 });
    expect(r.data!.equals(Buffer.alloc(10, 1))).toBe(true);
  });

  it('serves a listing from its snapshot across calls, so removals meanwhile neither shift nor repeat', async () => {
    const { call } = await setup();
    const names = Array.from({ length: 40 }, (_, i) => `file-${String(i).padStart(3, '0')}`);
    for (const n of names) await call(Op.Mknod, ROOT_INO, { a: S_IFREG | 0o644 }, n);
    const dh = (await call(Op.Opendir, ROOT_INO)).fh!;
    const seen: Array<[string, number, number]> = [];
    let off = 0;
    let first = true;
    for (;;) {
      const r = await call(Op.Readdir, ROOT_INO, { a: dh, b: 256, c: off });
      expect(r.kind).toBe('dir');
      if (r.dir!.length === 0) break;
      seen.push(...r.dir!);
      off = r.dir![r.dir!.length - 1]![2];
      if (first) {
        // Another process removes files the listing has not reached yet.
        first = false;
        for (const n of names.slice(30)) await call(Op.Unlink, ROOT_INO, {}, n);
      }
    }
    expect(seen.map((e) => e[0])).toEqual(['.', '..', ...names]);
    expect(seen.map((e) => e[2])).toEqual(seen.map((_, i) => i + 1));
    expect(await call(Op.Releasedir, ROOT_INO, { a: dh })).toEqual({ kind: 'err', errno: 0 });
    // A new listing sees the removals.
    const dh2 = (await call(Op.Opendir, ROOT_INO)).fh!;
    expect(dh2).not.toBe(dh);
    const all = await call(Op.Readdir, ROOT_INO, { a: dh2, b: 1 << 16, c: 0 });
    expect(all.dir!.map((e) => e[0])).toEqual(['.', '..', ...names.slice(0, 30)]);
    // Every entry carries a non-zero inode number (glibc skips d_ino 0).
    expect(all.dir!.every((e) => e[1] > 0)).toBe(true);
  });

  it('renames over a target, removes folders only when empty, and reads symlinks', async () => {
    const { call } = await setup();
    const d = (await call(Op.Mkdir, ROOT_INO, { a: 0o755 }, 'd')).st![St.Ino]!;
    const a = await call(Op.Create, d, { a: 0o644 }, 'a');
    await call(Op.Write, a.st![St.Ino]!, { a: a.fh!, b: 3, c: 0 }, null, Buffer.from('AAA'));
    await call(Op.Release, a.st![St.Ino]!, { a: a.fh! });
    await call(Op.Mknod, ROOT_INO, { a: S_IFREG | 0o644 }, 'b');
    expect(await call(Op.Rename, d, { a: ROOT_INO }, 'a', 'b')).toEqual({ kind: 'err', errno: 0 });
    const b = await call(Op.Lookup, ROOT_INO, {}, 'b');
    expect(b.st![St.Ino]).toBe(a.st![St.Ino]);
    expect(b.st![St.Size]).toBe(3);
    expect((await call(Op.Lookup, d, {}, 'a')).errno).toBe(E.ENOENT);

    await call(Op.Mknod, d, { a: S_IFREG | 0o600 }, 'x');
    expect(await call(Op.Rmdir, ROOT_INO, {}, 'd')).toEqual({ kind: 'err', errno: E.ENOTEMPTY });
    await call(Op.Unlink, d, {}, 'x');
    expect(await call(Op.Rmdir, ROOT_INO, {}, 'd')).toEqual({ kind: 'err', errno: 0 });
    // The kernel may still hold the folder's number: once the removal is
    // committed it is gone (ENOENT), never another file.
    await call(Op.Fsyncdir, ROOT_INO, { a: 0 });
    expect((await call(Op.Getattr, d, { a: -1 })).errno).toBe(E.ENOENT);

    const l = await call(Op.Symlink, ROOT_INO, { b: 5, c: 6 }, 'l', '../some/where');
    expect(l.st![St.Mode]! & 0o170000).toBe(S_IFLNK);
    expect(await call(Op.Readlink, l.st![St.Ino]!)).toEqual({
      kind: 'readlink',
      target: '../some/where',
    });
    expect((await call(Op.Readlink, ROOT_INO)).errno).toBe(E.EINVAL);
  });

  it('maps bad names and unknown operations to errno, and reports statfs fields', async () => {
    const { call, events, log } = await setup();
    expect((await call(Op.Create, ROOT_INO, { a: 0o644 }, 'x'.repeat(256))).errno).toBe(
      E.ENAMETOOLONG,
    );
    expect((await call(Op.Mkdir, ROOT_INO, { a: 0o755 }, 'a/b')).errno).toBe(E.EINVAL);
    expect((await call(99 as Op, ROOT_INO)).errno).toBe(E.ENOSYS);
    expect((await call(Op.Lookup, 123456, {}, 'x')).errno).toBe(E.ENOENT);
    const s = await call(Op.Statfs, ROOT_INO);
    expect(s.kind).toBe('statfs');
    expect(s.st![Sf.Bsize]).toBeGreaterThan(0);
    expect(s.st![Sf.Namemax]).toBe(255);
    // Init and Gone carry no slot and get no reply.
    const { dispatch } = fuseDispatch(
      await Volume.create(new MemStore(), Keyring.generate(newId()), new MemoryAnchor(), {
        uid: 0,
        gid: 0,
      }),
      new MemFuse(),
      log,
      { onInit: () => events.push('init'), onGone: () => events.push('gone') },
    );
    dispatch(Op.Init, -1, 0, 0, 0, 0, 0, null, null);
    dispatch(Op.Gone, -1, 0, 0, 0, 0, 0, null, null);
    expect(events).toEqual(['init', 'gone']);
    expect(log.records.filter((r) => r.level === 'error')).toEqual([]);
  });

  it('turns a failed verification into EIO, never data', async () => {
    const { v, call } = await setup();
    const c = await call(Op.Create, ROOT_INO, { a: 0o644 }, 'f');
    const ino = c.st![St.Ino]!;
    await call(Op.Write, ino, { a: c.fh!, b: 8192, c: 0 }, null, Buffer.alloc(8192, 9));
    await call(Op.Fsync, ino, { a: c.fh! });
    await call(Op.Release, ino, { a: c.fh! });
    const fh = (await call(Op.Open, ino)).fh!;
    await v.dropCaches();
    // Flip one byte of every data-sized object the provider holds.
    const store = v.store as MemStore;
    let flipped = 0;
    for (const [, blob] of store.blobs) {
      if (blob.length >= 8192) {
        blob[blob.length >> 1]! ^= 1;
        flipped++;
      }
    }
    expect(flipped).toBeGreaterThan(0);
    const r = await call(Op.Read, ino, { a: fh, b: 8192, c: 0 });
    expect(r).toEqual({ kind: 'err', errno: E.EIO });
  });

  it('reports a full provider as ENOSPC, any other provider fault as EIO, and then refuses changes', async () => {
    for (const [fault, errno] of [
      [Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }), E.ENOSPC],
      [new Error('provider exploded'), E.EIO],
    ] as const) {
      const store = new FlakyStore();
      const { call, log } = await setup(store);
      const c = await call(Op.Create, ROOT_INO, { a: 0o644 }, 'f');
      const ino = c.st![St.Ino]!;
      await call(Op.Write, ino, { a: c.fh!, b: 4096, c: 0 }, null, Buffer.alloc(4096, 2));
      store.failWith = fault;
      expect(await call(Op.Fsync, ino, { a: c.fh! })).toEqual({ kind: 'err', errno });
      expect(
        log.records.some(
          (r) => r.level === 'error' && String(r.fields?.error).includes(fault.message),
        ),
      ).toBe(true);
      // A commit that failed leaves the volume refusing changes (remount to
      // go on), with the same errno, even once the provider is back.
      store.failWith = null;
      expect(await call(Op.Mkdir, ROOT_INO, { a: 0o755 }, 'after')).toEqual({ kind: 'err', errno });
      expect(await call(Op.Fsync, ino, { a: c.fh! })).toEqual({ kind: 'err', errno });
    }
  });
});
