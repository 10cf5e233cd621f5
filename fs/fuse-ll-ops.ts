/**
 * Serves a mounted {@link Volume} on the low-level FUSE binding
 * (fs/fuse-ll.ts): one dispatcher turns each kernel request into a call of
 * the volume's inode-number API and answers when it settles. Integrity
 * failures were already logged by the volume and become EIO: the filesystem
 * never hands out data it could not verify.
 *
 * What the kernel is told, and why (docs/storage.md, "FUSE binding"):
 * - Inode numbers are the volume's own, which are never reused, so the
 *   kernel's numbers need no translation table and no lookup counts.
 * - create, mkdir, mknod, symlink and setattr answer with the attributes
 *   they produced, so the kernel has no reason to ask again.
 * - A folder listing is taken when a readdir starts at offset 0 and served
 *   from that snapshot until the folder handle is released, so entries added
 *   or removed meanwhile neither repeat nor shift the offsets.
 *
 * Arguments per request (a–d, s1, s2 of {@link Dispatch}):
 *   lookup s1=name · getattr a=fh|−1 · setattr (the IN array) · readlink
 *   mknod a=mode b=uid c=gid d=rdev s1=name · mkdir a=mode b=uid c=gid s1=name
 *   unlink/rmdir s1=name · symlink b=uid c=gid s1=name s2=target
 *   rename a=newparent s1=name s2=newname · open a=flags
 *   read a=fh b=size c=offset · write a=fh b=size c=offset s2=data
 *   release/releasedir a=fh · fsync/fsyncdir a=fh b=datasync
 *   readdir a=fh b=size c=offset · create a=mode b=uid c=gid d=flags s1=name
 */
import { constants } from 'node:os';
import type { AttrChange, Stat, Volume } from './volume.js';
import { FsErrno, IntegrityError } from './errors.js';
import { BufferPool } from './bufpool.js';
import { type Dispatch, type FuseLL, In, Op, SetAttr, Sf, St } from './fuse-ll.js';
import type { Logger } from '../admin/logger.js';

const ERRNO = constants.errno as Record<string, number>;
const EIO = ERRNO.EIO!;
/** Read buffers kept for reuse (a read's buffer is free again once its reply is sent). */
const READ_POOL_BYTES = 8 << 20;

/** A folder listing as a readdir snapshot: ".", "..", then the entries. */
interface Listing {
  names: string[];
  inos: number[];
}

/** What the mount needs from the dispatcher besides the requests. */
export interface ServeHooks {
  /** The kernel answered FUSE_INIT: the mount is usable. */
  onInit(): void;
  /** The kernel ended the session (the mount is gone). */
  onGone(): void;
}

/**
 * The dispatcher for {@link FuseLL.mount}, and the two arrays it shares with
 * the binding (pass them to mount as `st` and `input`).
 */
export function fuseDispatch(
  v: Volume,
  ll: FuseLL,
  log: Logger,
  hooks: ServeHooks,
): { dispatch: Dispatch; st: Float64Array; input: Float64Array } {
  const st = new Float64Array(St.Len);
  const input = new Float64Array(In.Len);
  const reads = new BufferPool(READ_POOL_BYTES);
  const listings = new Map<number, Listing>();
  let nextDirFh = 1;

  const errnoOf = (op: Op, e: unknown): number => {
    if (e instanceof FsErrno) return ERRNO[e.errno] ?? EIO;
    if (e instanceof IntegrityError) return EIO;
    // A full provider (local ENOSPC/EDQUOT, NFS3ERR_NOSPC/DQUOT mapped by
    // fs/nfs/errors.ts) is the user's to act on, not an I/O fault.
    const code = (e as { code?: unknown } | null)?.code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      log.warn('storage full', { op, code });
      return ERRNO[code]!;
    }
    log.error('operation failed', { op, error: String((e as Error)?.stack ?? e) });
    return EIO;
  };
  const fail =
    (op: Op, req: number) =>
    (e: unknown): void => {
      ll.replyErr(req, errnoOf(op, e));
    };
  const putStat = (s: Stat): void => {
    st[St.Ino] = s.ino;
    st[St.Mode] = s.mode;
    st[St.Nlink] = s.nlink;
    st[St.Uid] = s.uid;
    st[St.Gid] = s.gid;
    st[St.Rdev] = s.rdev;
    st[St.Size] = s.size;
    st[St.Blocks] = s.blocks;
    st[St.Blksize] = s.blksize;
    st[St.Atime] = s.atime;
    st[St.Mtime] = s.mtime;
    st[St.Ctime] = s.ctime;
  };
  const entry = (req: number) => (s: Stat) => {
    putStat(s);
    ll.replyEntry(req);
  };
  const attr = (req: number) => (s: Stat) => {
    putStat(s);
    ll.replyAttr(req);
  };
  const ok = (req: number) => () => {
    ll.replyErr(req, 0);
  };

  const setattr = (req: number, ino: number): void => {
    const to = input[In.ToSet]!;
    const ch: AttrChange = {};
    if (to & SetAttr.Mode) ch.mode = input[In.Mode]!;
    if (to & SetAttr.Uid) ch.uid = input[In.Uid]!;
    if (to & SetAttr.Gid) ch.gid = input[In.Gid]!;
    if (to & SetAttr.Size) ch.size = input[In.Size]!;
    const now = Date.now();
    if (to & SetAttr.AtimeNow) ch.atime = now;
    else if (to & SetAttr.Atime) ch.atime = input[In.Atime]!;
    if (to & SetAttr.MtimeNow) ch.mtime = now;
    else if (to & SetAttr.Mtime) ch.mtime = input[In.Mtime]!;
    v.setattr(ino, input[In.Fh]!, ch).then(attr(req), fail(Op.Setattr, req));
  };

  const read = (req: number, fh: number, size: number, pos: number): void => {
    const buf = reads.take(size);
    v.read(fh, buf, size, pos).then(
      (n) => {
        ll.replyData(req, buf, n);
        reads.give(buf);
      },
      (e) => {
        reads.give(buf);
        fail(Op.Read, req)(e);
      },
    );
  };

  const readdir = (req: number, ino: number, fh: number, size: number, off: number): void => {
    const have = listings.get(fh);
    if (off > 0 && have) {
      ll.replyDir(req, size, have.names, have.inos, off);
      return;
    }
    v.listIno(ino).then(
      (l) => {
        const snap: Listing = {
          names: ['.', '..', ...l.names],
          // glibc skips entries whose d_ino is 0; ".." has no cheap number here.
          inos: [ino, ino, ...l.inos],
        };
        listings.set(fh, snap);
        ll.replyDir(req, size, snap.names, snap.inos, off);
      },
      fail(Op.Readdir, req),
    );
  };

  const dispatch: Dispatch = (op, req, ino, a, b, c, d, s1, s2) => {
    try {
      switch (op) {
        case Op.Lookup:
          v.lookup(ino, s1!).then(entry(req), fail(op, req));
          return;
        case Op.Getattr:
          v.getattrIno(ino, a).then(attr(req), fail(op, req));
          return;
        case Op.Setattr:
          setattr(req, ino);
          return;
        case Op.Readlink:
          v.readlinkIno(ino).then((t) => ll.replyReadlink(req, t), fail(op, req));
          return;
        case Op.Mknod:
          v.mknodAt(ino, s1!, a, d, b, c).then(entry(req), fail(op, req));
          return;
        case Op.Mkdir:
          v.mkdirAt(ino, s1!, a, b, c).then(entry(req), fail(op, req));
          return;
        case Op.Unlink:
          v.unlinkAt(ino, s1!).then(ok(req), fail(op, req));
          return;
        case Op.Rmdir:
          v.rmdirAt(ino, s1!).then(ok(req), fail(op, req));
          return;
        case Op.Symlink:
          v.symlinkAt(s2 as string, ino, s1!, b, c).then(entry(req), fail(op, req));
          return;
        case Op.Rename:
          v.renameAt(ino, s1!, a, s2 as string).then(ok(req), fail(op, req));
          return;
        case Op.Open:
          v.openIno(ino).then((fh) => ll.replyOpen(req, fh), fail(op, req));
          return;
        case Op.Read:
          read(req, a, b, c);
          return;
        case Op.Write:
          v.write(a, s2 as Buffer, b, c).then((n) => ll.replyWrite(req, n), fail(op, req));
          return;
        case Op.Release:
          v.release(a).then(ok(req), fail(op, req));
          return;
        case Op.Fsync:
        case Op.Fsyncdir:
          v.commit().then(ok(req), fail(op, req));
          return;
        case Op.Opendir:
          ll.replyOpen(req, nextDirFh++);
          return;
        case Op.Readdir:
          readdir(req, ino, a, b, c);
          return;
        case Op.Releasedir:
          listings.delete(a);
          ll.replyErr(req, 0);
          return;
        case Op.Statfs:
          v.statfs().then(
            (s) => {
              st[Sf.Bsize] = s.bsize;
              st[Sf.Frsize] = s.frsize;
              st[Sf.Blocks] = s.blocks;
              st[Sf.Bfree] = s.bfree;
              st[Sf.Bavail] = s.bavail;
              st[Sf.Files] = s.files;
              st[Sf.Ffree] = s.ffree;
              st[Sf.Favail] = s.favail;
              st[Sf.Namemax] = s.namemax;
              ll.replyStatfs(req);
            },
            fail(op, req),
          );
          return;
        case Op.Create:
          v.createAt(ino, s1!, a, b, c).then(
            ({ fh, stat }) => {
              putStat(stat);
              ll.replyCreate(req, fh);
            },
            fail(op, req),
          );
          return;
        case Op.Init:
          hooks.onInit();
          return;
        case Op.Gone:
          hooks.onGone();
          return;
        default:
          if (req >= 0) ll.replyErr(req, ERRNO.ENOSYS!);
      }
    } catch (e) {
      // A throw before the promise (a bad name, say): answer it like a rejection.
      if (req >= 0) fail(op, req)(e);
    }
  };
  return { dispatch, st, input };
}
