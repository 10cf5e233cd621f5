/**
 * The storage backend seam. A provider stores named blobs; the filesystem
 * never asks it for anything but these few calls, so a local directory, a
 * kernel-mounted NFS directory and (later) a userspace NFSv3 client are
 * interchangeable. Names are 32 hex digits (objects) or `volume` /
 * `superblock`.
 */
import { mkdir, open, readdir, readFile, rename, rm, statfs, unlink } from 'node:fs/promises';
import * as fsc from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { getSystemErrorName } from 'node:util';
import { aeadAddon } from './native/aead.js';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

/** Capacity numbers of the provider, as statfs(2) reports them. */
export interface StoreStat {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
}

export interface ObjectStore {
  /** The blob `name`, or null when it does not exist. */
  get(name: string): Promise<Buffer | null>;
  /**
   * Optional, for stores that can read without allocating: reads the blob
   * `name` into `buf` and returns how many bytes it has read (at most
   * `buf.length`: a longer blob fills `buf`, so callers pass one byte more
   * than the largest blob they accept), or null when it does not exist.
   * Without it, the engine calls {@link get}.
   */
  getInto?(name: string, buf: Buffer): Promise<number | null>;
  /**
   * Optional, for stores that keep each object in a local file: that file.
   * The engine then reads or writes it itself, folding the object's AEAD
   * into the same threadpool job (fs/objects.ts), with {@link put}'s
   * semantics for objects: created in place with O_EXCL, mode 0600, not
   * durable until {@link sync}.
   */
  objectPath?(name: string): string;
  /**
   * Stores `data` under `name` so that readers see either nothing (or the
   * previous blob) or all of it, never a part. With `durable`, it is on
   * stable storage when the promise resolves; otherwise only after {@link sync}.
   * `data` is lent only until the promise settles: the engine reuses the
   * buffer afterwards, so a store that needs the bytes later copies them.
   */
  put(name: string, data: Buffer, durable?: boolean): Promise<void>;
  /** Makes earlier non-durable puts of `names` durable. */
  sync(names: string[]): Promise<void>;
  /** Removes `name`; removing a missing blob is not an error. */
  delete(name: string): Promise<void>;
  /** All object names (32 hex digits), not `volume`/`superblock`. */
  list(): Promise<string[]>;
  /** Removes leftovers of interrupted puts. */
  sweepTemp(): Promise<number>;
  statfs(): Promise<StoreStat>;
  /**
   * Optional: the store's live counters (an NFS client's calls, retransmits,
   * reconnects, stale-handle retries…), shown by `supernet fs status`.
   */
  stats?(): Record<string, number>;
  /** Optional: releases what the store holds open (an NFS client's connections). */
  close?(): void;
}

const OBJ_NAME = /^[0-9a-f]{32}$/;
/** Above this many objects per commit, {@link DirStore.sync} uses one syncfs. */
const SYNCFS_ABOVE = 16;
const SPECIAL = new Set(['volume', 'superblock', 'lease']);

function checkName(name: string): void {
  if (!OBJ_NAME.test(name) && !SPECIAL.has(name))
    throw new Error(`invalid object name ${JSON.stringify(name)}`);
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function inParallel<T>(
  items: T[],
  limit: number,
  fn: (x: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

// Callback fs calls as promises: cheaper per call than FileHandle objects,
// which matters at one open/read/close per 256 KiB object.
const fopen = (path: string, flags: number, mode?: number): Promise<number> =>
  new Promise((res, rej) => fsc.open(path, flags, mode, (e, fd) => (e ? rej(e) : res(fd))));
const fclose = (fd: number): Promise<void> =>
  new Promise((res, rej) => fsc.close(fd, (e) => (e ? rej(e) : res())));
const fread = (fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> =>
  new Promise((res, rej) => fsc.read(fd, buf, off, len, pos, (e, n) => (e ? rej(e) : res(n))));
const fwrite = (fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> =>
  new Promise((res, rej) => fsc.write(fd, buf, off, len, pos, (e, n) => (e ? rej(e) : res(n))));
const fdatasync = (fd: number): Promise<void> =>
  new Promise((res, rej) => fsc.fdatasync(fd, (e) => (e ? rej(e) : res())));
const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL } = fsc.constants;

/** A Node-style error for an errno from the addon (code, errno, syscall, path). */
export function sysError(e: number, syscall: string, path: string): NodeJS.ErrnoException {
  const code = getSystemErrorName(-e);
  const err: NodeJS.ErrnoException = new Error(`${code}: ${syscall} '${path}'`);
  err.code = code;
  err.errno = -e;
  err.syscall = syscall;
  err.path = path;
  return err;
}

// The addon's whole-object I/O: one threadpool job per object instead of an
// open, a write or read, and a close (fs/native/aead.c). null: plain fs calls.
const fileIO = aeadAddon();
const nativePut = (path: string, data: Buffer, durable: boolean): Promise<void> =>
  new Promise((res, rej) =>
    fileIO!.putFile(path, data, durable, (e) => (e ? rej(sysError(e, 'write', path)) : res())),
  );
const nativeGet = (path: string, buf: Buffer): Promise<number> =>
  new Promise((res, rej) =>
    fileIO!.getFile(path, buf, (e, n) => (e ? rej(sysError(e, 'read', path)) : res(n))),
  );

/**
 * syncfs(2) of a folder's filesystem, which Node does not offer: `sync -f`.
 * Spawning it from the mount daemon would fork a process of hundreds of MiB
 * per commit (page tables copied, every page copy-on-write afterwards), so
 * one small long-lived shell forks it instead, on request, one at a time.
 */
class SyncFs {
  private sh: ChildProcessWithoutNullStreams | null = null;
  private waiting: Array<{ ok: () => void; fail: (e: Error) => void }> = [];
  private out = '';

  private start(): ChildProcessWithoutNullStreams {
    const sh = spawn(
      'sh',
      ['-c', 'while IFS= read -r d; do if sync -f -- "$d"; then echo ok; else echo fail; fi; done'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    sh.stdout.setEncoding('utf8');
    sh.stdout.on('data', (d: string) => {
      this.out += d;
      for (let nl; (nl = this.out.indexOf('\n')) >= 0;) {
        const line = this.out.slice(0, nl);
        this.out = this.out.slice(nl + 1);
        const w = this.waiting.shift();
        if (line === 'ok') w?.ok();
        else w?.fail(new Error('sync -f failed'));
      }
      this.idle();
    });
    sh.stderr.resume();
    const gone = (why: string): void => {
      if (this.sh !== sh) return;
      this.sh = null;
      for (const w of this.waiting.splice(0)) w.fail(new Error(`sync helper ${why}`));
    };
    sh.on('error', (e) => gone(`failed: ${e.message}`));
    sh.on('exit', (code) => gone(`exited ${code}`));
    sh.stdin.on('error', () => gone('lost its input'));
    return sh;
  }

  /** Keeps the process alive only while a sync is pending. */
  private idle(): void {
    const sh = this.sh;
    if (!sh) return;
    const busy = this.waiting.length > 0;
    for (const h of [sh, sh.stdin, sh.stdout, sh.stderr] as Array<{ ref(): void; unref(): void }>)
      if (busy) h.ref();
      else h.unref();
  }

  run(dir: string): Promise<void> {
    if (dir.includes('\n')) return Promise.reject(new Error('folder name with a newline'));
    this.sh ??= this.start();
    const sh = this.sh;
    const p = new Promise<void>((ok, fail) => this.waiting.push({ ok, fail }));
    this.idle();
    sh.stdin.write(dir + '\n');
    return p;
  }
}

/**
 * A directory on a local or kernel-mounted filesystem:
 * `DIR/volume`, `DIR/superblock`, `DIR/objects/<id>`. Puts write a temporary
 * file and rename it into place (atomic on POSIX filesystems and NFS).
 */
export class DirStore implements ObjectStore {
  readonly objects: string;
  private syncfs = new SyncFs();
  constructor(readonly root: string) {
    this.objects = join(root, 'objects');
  }

  /** Creates the folders of a new store. */
  async init(): Promise<void> {
    await mkdir(this.objects, { recursive: true, mode: 0o700 });
  }

  private path(name: string): string {
    return SPECIAL.has(name) ? join(this.root, name) : join(this.objects, name);
  }

  objectPath(name: string): string {
    if (!OBJ_NAME.test(name)) throw new Error(`not an object name: ${JSON.stringify(name)}`);
    return join(this.objects, name);
  }

  async get(name: string): Promise<Buffer | null> {
    checkName(name);
    try {
      return await readFile(this.path(name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async getInto(name: string, buf: Buffer): Promise<number | null> {
    checkName(name);
    if (fileIO) {
      try {
        return await nativeGet(this.path(name), buf);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw e;
      }
    }
    let fd: number;
    try {
      fd = await fopen(this.path(name), O_RDONLY);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    try {
      // A read of a regular file returns less than asked only at its end, so
      // a short read needs no second one to see EOF. (Were it ever short
      // elsewhere, the object would fail verification: EIO, not wrong data.)
      let got = 0;
      while (got < buf.length) {
        const want = buf.length - got;
        const n = await fread(fd, buf, got, want, got);
        got += n;
        if (n < want) break;
      }
      return got;
    } finally {
      await fclose(fd);
    }
  }

  async put(name: string, data: Buffer, durable = false): Promise<void> {
    checkName(name);
    if (!SPECIAL.has(name)) return this.putObject(name, data, durable);
    const final = this.path(name);
    const dir = SPECIAL.has(name) ? this.root : this.objects;
    const tmp = join(dir, `.tmp-${name}-${randomBytes(6).toString('hex')}`);
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.write(data, 0, data.length, 0);
      if (durable) await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, final);
    if (durable) await this.syncDir(dir);
  }

  /**
   * Objects are written in place, without a temporary name: their ids are
   * fresh and never reused, and no superblock references one before the
   * commit has synced it, so a put torn by a crash leaves an unreferenced
   * object that the next mount sweeps (docs/storage.md, "Commit protocol").
   * Engine readers never see a put in flight (fs/objects.ts serves it from
   * memory). O_EXCL: an id is never written twice.
   */
  private async putObject(name: string, data: Buffer, durable: boolean): Promise<void> {
    if (fileIO) {
      await nativePut(this.path(name), data, durable);
      if (durable) await this.syncDir(this.objects);
      return;
    }
    const fd = await fopen(this.path(name), O_WRONLY | O_CREAT | O_EXCL, 0o600);
    try {
      for (let off = 0; off < data.length;)
        off += await fwrite(fd, data, off, data.length - off, off);
      if (durable) await fdatasync(fd);
    } finally {
      await fclose(fd);
    }
    if (durable) await this.syncDir(this.objects);
  }

  private async syncDir(dir: string): Promise<void> {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  async sync(names: string[]): Promise<void> {
    if (names.length > SYNCFS_ABOVE) {
      // Many objects: one syncfs(2) of the backing filesystem (sync -f) costs
      // far less than an fdatasync per object.
      await this.syncfs.run(this.objects);
      await this.syncDir(this.objects);
      return;
    }
    await inParallel(names, 16, async (name) => {
      let fh;
      try {
        fh = await open(this.path(name), 'r');
      } catch (e) {
        // Superseded and deleted before the commit: nothing to make durable.
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw e;
      }
      try {
        await fh.datasync();
      } finally {
        await fh.close();
      }
    });
    if (names.length) await this.syncDir(this.objects);
  }

  async delete(name: string): Promise<void> {
    checkName(name);
    try {
      await unlink(this.path(name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  async list(): Promise<string[]> {
    return (await readdir(this.objects)).filter((n) => OBJ_NAME.test(n));
  }

  async sweepTemp(): Promise<number> {
    let n = 0;
    for (const dir of [this.root, this.objects]) {
      for (const f of await readdir(dir)) {
        if (f.startsWith('.tmp-')) {
          await rm(join(dir, f), { force: true });
          n++;
        }
      }
    }
    return n;
  }

  async statfs(): Promise<StoreStat> {
    const s = await statfs(this.root);
    return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail };
  }
}

/** In-memory store for unit tests of one module. */
export class MemStore implements ObjectStore {
  readonly blobs = new Map<string, Buffer>();
  async get(name: string): Promise<Buffer | null> {
    checkName(name);
    const b = this.blobs.get(name);
    return b ? Buffer.from(b) : null;
  }
  async getInto(name: string, buf: Buffer): Promise<number | null> {
    checkName(name);
    const b = this.blobs.get(name);
    return b ? b.copy(buf, 0, 0, Math.min(b.length, buf.length)) : null;
  }
  async put(name: string, data: Buffer): Promise<void> {
    checkName(name);
    this.blobs.set(name, Buffer.from(data));
  }
  async sync(): Promise<void> {}
  async delete(name: string): Promise<void> {
    this.blobs.delete(name);
  }
  async list(): Promise<string[]> {
    return [...this.blobs.keys()].filter((n) => OBJ_NAME.test(n));
  }
  async sweepTemp(): Promise<number> {
    return 0;
  }
  async statfs(): Promise<StoreStat> {
    return { bsize: 4096, blocks: 1 << 20, bfree: 1 << 19, bavail: 1 << 19 };
  }
}
