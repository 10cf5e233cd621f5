/**
 * One test per fix in fs/patches/fuse-native+2.2.6.patch (design brief §4),
 * on a real FUSE mount served by a tiny in-memory filesystem in this process.
 * Only child processes touch the mount (this process's event loop serves it).
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadFuse, type FuseHandle } from '../../fs/fuse.js';

const execp = promisify(execFile);
const Fuse = loadFuse();
let dir: string;
let mnt: string;
let fuse: FuseHandle;
const writes: number[] = [];
const utimes: Array<[number | null, number | null]> = [];
const fgetattrFds: number[] = [];
const callers: Array<{ pid: number; uid: number; gid: number }> = [];
/** JS getattr/fgetattr calls per path (attribute carry test). */
const asked = new Map<string, number>();
// Times the carry test tells apart: what getattr says vs what a change hands back.
const GETATTR_MTIME = new Date(1_000_000_000);
const CARRIED_MTIME = new Date(1_777_000_000);
let carryMode = 0o100600;
// The parent-carry test's folder: what getattr says vs what a create hands back.
const DIR_GETATTR_MTIME = new Date(1_100_000_000);
const DIR_CARRIED_MTIME = new Date(1_888_000_000);
let dirChild = false;
let data = Buffer.alloc(0);
const FH = 42;

const st = (mode: number, size: number): Record<string, unknown> => ({
  mode,
  size,
  uid: 0,
  gid: 0,
  mtime: new Date(),
  atime: new Date(),
  ctime: new Date(),
  nlink: 1,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snfs-patch-'));
  mnt = join(dir, 'mnt');
  await execp('mkdir', [mnt]);
  await execp('chmod', ['755', dir]);
  const ops = {
    getattr: (path: string, cb: (e: number, s?: unknown) => void) => {
      asked.set(path, (asked.get(path) ?? 0) + 1);
      if (path === '/c' || path === '/nc') {
        return cb(0, { ...st(carryMode, 7), mtime: GETATTR_MTIME });
      }
      if (path === '/probe') {
        const c = fuse.context();
        if (c) callers.push(c);
      }
      if (path === '/') return cb(0, st(0o40777, 0));
      if (path === '/d') return cb(0, { ...st(0o40755, 0), mtime: DIR_GETATTR_MTIME });
      if (path === '/d/x' && dirChild) return cb(0, st(0o100644, 0));
      if (path === '/f' || path === '/probe') return cb(0, st(0o100666, data.length));
      cb(Fuse.ENOENT as number);
    },
    fgetattr: (_path: string, fd: number, cb: (e: number, s?: unknown) => void) => {
      fgetattrFds.push(fd);
      cb(0, st(0o100666, data.length));
    },
    readdir: (_p: string, cb: (e: number, n?: string[]) => void) => cb(0, ['f', 'probe']),
    open: (_p: string, _f: number, cb: (e: number, fd?: number) => void) => cb(0, FH),
    create: (p: string, _m: number, cb: (e: number, fd?: number, ...s: unknown[]) => void) => {
      if (p !== '/d/x') return cb(0, FH);
      dirChild = true;
      // The new file's attributes, then the folder's after the create.
      cb(0, FH, st(0o100644, 0), { ...st(0o40700, 0), mtime: DIR_CARRIED_MTIME });
    },
    unlink: (p: string, cb: (e: number) => void) => {
      if (p === '/d/x') dirChild = false;
      cb(0);
    },
    release: (_p: string, _fd: number, cb: (e: number) => void) => cb(0),
    truncate: (_p: string, size: number, cb: (e: number) => void) => {
      data = data.subarray(0, size);
      cb(0);
    },
    ftruncate: (_p: string, _fd: number, size: number, cb: (e: number) => void) => {
      data = Buffer.from(data.subarray(0, size));
      cb(0);
    },
    write: (
      _p: string,
      _fd: number,
      buf: Buffer,
      len: number,
      pos: number,
      cb: (n: number) => void,
    ) => {
      writes.push(len);
      const next = Buffer.alloc(Math.max(data.length, pos + len));
      data.copy(next);
      buf.copy(next, pos, 0, len);
      data = next;
      cb(len);
    },
    read: (
      _p: string,
      _fd: number,
      buf: Buffer,
      len: number,
      pos: number,
      cb: (n: number) => void,
    ) => {
      const n = Math.max(0, Math.min(len, data.length - pos));
      data.copy(buf, 0, pos, pos + n);
      cb(n);
    },
    // Hands back attributes for /c only: /nc shows the unpatched behaviour.
    chmod: (path: string, mode: number, cb: (e: number, s?: unknown) => void) => {
      carryMode = 0o100000 | mode;
      if (path === '/c') return cb(0, { ...st(carryMode, 7), mtime: CARRIED_MTIME });
      cb(0);
    },
    utimens: (_p: string, atime: number | null, mtime: number | null, cb: (e: number) => void) => {
      utimes.push([atime, mtime]);
      cb(0);
    },
  };
  fuse = new Fuse(mnt, ops, {
    bigWrites: true,
    maxWrite: 131072,
    allowOther: true,
    autoUnmount: true,
    timeout: 0,
    // Long enough that the kernel answers stat() from what the last
    // operation returned (the attribute-carry test reads that).
    entryTimeout: 30,
    attrTimeout: 30,
  });
  await new Promise<void>((res, rej) => fuse.mount((e) => (e ? rej(e) : res())));
});

afterAll(async () => {
  await new Promise<void>((res) => fuse.unmount(() => res()));
  await execp('fusermount', ['-uz', mnt]).catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

describe('fuse-native patch', () => {
  it('is the patched build', () => {
    expect(Fuse.SUPERNET_PATCH).toBe(1);
  });

  it('big_writes: a 1 MiB write arrives in 128 KiB pieces, not 4 KiB', async () => {
    writes.length = 0;
    await execp('dd', [
      'if=/dev/zero',
      `of=${join(mnt, 'f')}`,
      'bs=1M',
      'count=1',
      'conv=notrunc',
      'status=none',
    ]);
    expect(Math.max(...writes)).toBe(131072);
  });

  it('utimens passes mtime as mtime, and UTIME_OMIT as null', async () => {
    utimes.length = 0;
    await execp('touch', ['-m', '-d', '@2000000', join(mnt, 'f')]);
    await execp('touch', ['-a', '-d', '@1000000', join(mnt, 'f')]);
    await execp('touch', ['-d', '@3000000', join(mnt, 'f')]);
    expect(utimes).toEqual([
      [null, 2_000_000_000],
      [1_000_000_000, null],
      [3_000_000_000, 3_000_000_000],
    ]);
  });

  it('fgetattr receives the file handle (it used to call getattr)', async () => {
    fgetattrFds.length = 0;
    // fstat() on an open file; ftruncate makes the kernel ask with the handle too
    await execp(process.execPath, [
      '-e',
      `const fs=require('fs');const fd=fs.openSync(${JSON.stringify(join(mnt, 'f'))},'r+');fs.ftruncateSync(fd,10);fs.fstatSync(fd);fs.closeSync(fd)`,
    ]);
    expect(fgetattrFds).toContain(FH);
  });

  it('attribute carry: the getattr libfuse asks after a change is answered from the attributes the change handed back', async () => {
    const statOut = async (p: string): Promise<string> =>
      (await execp('stat', ['-c', '%a %Y', join(mnt, p)])).stdout.trim();
    // Look both names up first, so the chmods below are one SETATTR each.
    await statOut('c');
    await statOut('nc');
    asked.clear();
    await execp('chmod', ['640', join(mnt, 'c')]);
    await execp('chmod', ['604', join(mnt, 'nc')]);
    // Unpatched (and for /nc, whose chmod hands nothing back) libfuse calls
    // getattr after chmod; with the carry, /c's answer never left C.
    expect(asked.get('/c') ?? 0).toBe(0);
    expect(asked.get('/nc')).toBe(1);
    // The kernel cached what the SETATTR reply carried.
    expect(await statOut('c')).toBe(`640 ${CARRIED_MTIME.getTime() / 1000}`);
    expect(await statOut('nc')).toBe(`604 ${GETATTR_MTIME.getTime() / 1000}`);
    // A carry answers only the getattr of its own request: a later lookup
    // of /c (the kernel's caches dropped) reaches JS again.
    await execp('sh', ['-c', 'echo 2 > /proc/sys/vm/drop_caches']);
    asked.clear();
    expect(await statOut('c')).toBe(`604 ${GETATTR_MTIME.getTime() / 1000}`);
    expect(asked.get('/c')).toBe(1);
  });

  it('parent carry: the getattr of a folder after a create in it is answered from what the create handed back, until anything changes', async () => {
    const statOut = async (p: string): Promise<string> =>
      (await execp('stat', ['-c', '%a %Y', join(mnt, p)])).stdout.trim();
    const x = JSON.stringify(join(mnt, 'd', 'x'));
    expect(await statOut('d')).toBe(`755 ${DIR_GETATTR_MTIME.getTime() / 1000}`);
    asked.clear();
    await execp(process.execPath, [
      '-e',
      `require('fs').closeSync(require('fs').openSync(${x},'w'))`,
    ]);
    // The create made the kernel drop /d's attributes; they came from C.
    expect(await statOut('d')).toBe(`700 ${DIR_CARRIED_MTIME.getTime() / 1000}`);
    expect(asked.get('/d') ?? 0).toBe(0);
    // Any change afterwards (here an unlink in the folder) ends the carry:
    // the folder's attributes come from JS again.
    await execp(process.execPath, ['-e', `require('fs').unlinkSync(${x})`]);
    expect(await statOut('d')).toBe(`755 ${DIR_GETATTR_MTIME.getTime() / 1000}`);
    expect(asked.get('/d')).toBe(1);
  });

  it("exposes the calling process's pid, uid and gid (fuse_get_context)", async () => {
    callers.length = 0;
    const child = execFile('setpriv', [
      '--reuid=1234',
      '--regid=5678',
      '--clear-groups',
      'stat',
      join(mnt, 'probe'),
    ]);
    const pid = child.pid!;
    let out = '';
    child.stderr!.on('data', (d) => (out += d));
    child.stdout!.on('data', (d) => (out += d));
    await new Promise((res) => child.once('exit', res));
    const mine = callers.filter((c) => c.pid === pid);
    if (!mine.length) throw new Error(JSON.stringify({ pid, callers, out }));
    expect(mine.length).toBeGreaterThan(0);
    expect(mine[0]).toMatchObject({ uid: 1234, gid: 5678 });
  });
});
