/**
 * The filesystem's FUSE binding (fs/native/fuse-ll.c): libfuse 2's low-level
 * API, with /dev/fuse polled by libuv and every request handled and answered
 * on the event loop (docs/storage.md, "FUSE binding"). This module loads it
 * and gives it types; fs/fuse-ll-ops.ts serves a volume with it.
 */
import { createRequire } from 'node:module';
import { locateAddon } from './native/aead.js';

/** Request codes the dispatcher receives (fuse-ll.c, OP_*). */
export const enum Op {
  Init = 0,
  Lookup = 1,
  Getattr = 2,
  Setattr = 3,
  Readlink = 4,
  Mknod = 5,
  Mkdir = 6,
  Unlink = 7,
  Rmdir = 8,
  Symlink = 9,
  Rename = 10,
  Open = 11,
  Read = 12,
  Write = 13,
  Release = 14,
  Fsync = 15,
  Opendir = 16,
  Readdir = 17,
  Releasedir = 18,
  Fsyncdir = 19,
  Statfs = 20,
  Create = 21,
  /** The kernel ended the session (unmounted): no request, no reply. */
  Gone = 22,
}

/** Fields of the shared attribute array (fuse-ll.c, ST_*); times in ms. */
export const enum St {
  Ino,
  Mode,
  Nlink,
  Uid,
  Gid,
  Rdev,
  Size,
  Blocks,
  Blksize,
  Atime,
  Mtime,
  Ctime,
  Len,
}

/** The same array's fields when answering statfs (fuse-ll.c, SF_*). */
export const enum Sf {
  Bsize,
  Frsize,
  Blocks,
  Bfree,
  Bavail,
  Files,
  Ffree,
  Favail,
  Namemax,
}

/** Fields of the setattr input array (fuse-ll.c, IN_*); fh −1 when none. */
export const enum In {
  ToSet,
  Mode,
  Uid,
  Gid,
  Size,
  Atime,
  Mtime,
  Fh,
  Len,
}

/** setattr's `to_set` bits (fuse_lowlevel.h, FUSE_SET_ATTR_*). */
export const enum SetAttr {
  Mode = 1 << 0,
  Uid = 1 << 1,
  Gid = 1 << 2,
  Size = 1 << 3,
  Atime = 1 << 4,
  Mtime = 1 << 5,
  AtimeNow = 1 << 7,
  MtimeNow = 1 << 8,
}

/**
 * Receives every request: `req` is the slot id to answer with (−1 for Init
 * and Gone), `ino` the inode it is about (the parent folder for name
 * operations); a–d, s1 and s2 depend on `op` (fs/fuse-ll-ops.ts lists them).
 * For Write, s2 is a Buffer holding a copy of the data.
 */
export type Dispatch = (
  op: Op,
  req: number,
  ino: number,
  a: number,
  b: number,
  c: number,
  d: number,
  s1: string | null,
  s2: string | Buffer | null,
) => void;

/** An opaque mount (fuse-ll.c's mount_t). */
export type MountHandle = { readonly __mount: unique symbol };

/**
 * What fuse-ll.c exports. Every reply answers one request and returns true,
 * or returns false (sending nothing) when that request was already answered
 * or its mount closed.
 */
export interface FuseLL {
  mount(
    mountpoint: string,
    options: string,
    dispatch: Dispatch,
    st: Float64Array,
    input: Float64Array,
    entryTimeoutS: number,
    attrTimeoutS: number,
  ): MountHandle;
  /** Ends the session (outstanding requests get EIO) and detaches the mount if it is still there. */
  close(m: MountHandle): void;
  /** `errno` positive, or 0 for success without data. */
  replyErr(req: number, errno: number): boolean;
  /** The entry whose attributes are in `st`. */
  replyEntry(req: number): boolean;
  /** A created file (attributes in `st`), open as `fh`. */
  replyCreate(req: number, fh: number): boolean;
  replyAttr(req: number): boolean;
  replyOpen(req: number, fh: number): boolean;
  replyWrite(req: number, count: number): boolean;
  /** The first `length` bytes of `buf`, copied to the kernel before it returns. */
  replyData(req: number, buf: Buffer, length: number): boolean;
  replyReadlink(req: number, target: string): boolean;
  /** The statfs fields in `st` ({@link Sf}). */
  replyStatfs(req: number): boolean;
  /** Entries `start`… of a listing, as many as fit in `size` bytes; entry i has offset i + 1. */
  replyDir(req: number, size: number, names: string[], inos: number[], start: number): boolean;
}

let cached: FuseLL | undefined;

/** The binding; throws naming the build step when it is not built. */
export function loadFuseLL(): FuseLL {
  if (cached) return cached;
  const path = locateAddon('supernet_fuse.node');
  if (!path)
    throw new Error(
      'the FUSE binding fs/native/build/Release/supernet_fuse.node is not built (run `bin/dev setup`, or `npx node-gyp rebuild -C fs/native`)',
    );
  cached = createRequire(import.meta.url)(path) as FuseLL;
  return cached;
}
