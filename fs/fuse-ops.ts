/**
 * The FUSE operations of a mounted {@link Volume}: fuse-native's callbacks
 * call the engine and turn its errors into errno. Integrity failures were
 * already logged by the engine and become EIO: the filesystem never hands out
 * data it could not verify.
 *
 * Operations that would do nothing here (flush, opendir, releasedir) are
 * left out on purpose: libfuse then answers them itself (and the kernel
 * stops sending FLUSH), which saves a round trip through the event loop per
 * close and per directory listing (docs/storage.md, "Speed"). For the same
 * reason create, mkdir, chmod, chown, utimens and (f)truncate hand back the
 * attributes they produced: libfuse asks (f)getattr right after each of
 * them, and the patched fuse-native answers that from those attributes
 * instead of calling in here again (fs/patches, "attribute carry"). create
 * also hands back the parent folder's attributes, which the kernel asks for
 * before the next lookup in that folder ("parent carry").
 */
import type { Volume } from './volume.js';
import { FsErrno, IntegrityError } from './errors.js';
import { type FuseHandle, errno } from './fuse.js';
import type { Logger } from '../admin/logger.js';

type AnyCb = (...a: unknown[]) => void;

export function fuseOps(
  v: Volume,
  fuse: () => FuseHandle | null,
  log: Logger,
): Record<string, unknown> {
  const fail = (op: string, e: unknown): number => {
    if (e instanceof FsErrno) return errno(e.errno);
    if (e instanceof IntegrityError) return errno('EIO');
    // A full provider (local ENOSPC/EDQUOT, NFS3ERR_NOSPC/DQUOT mapped by
    // fs/nfs/errors.ts) is the user's to act on, not an I/O fault.
    const code = (e as { code?: unknown } | null)?.code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      log.warn('storage full', { op, code });
      return errno(code);
    }
    log.error('operation failed', { op, error: String((e as Error)?.stack ?? e) });
    return errno('EIO');
  };
  /** Runs `p`, answering `cb(0, value)` or `cb(-errno)`. */
  const run = <T>(op: string, cb: AnyCb, p: () => Promise<T>): void => {
    p().then(
      (val) => cb(0, val),
      (e) => cb(fail(op, e)),
    );
  };
  /** For read/write: the result itself is the byte count. */
  const runN = (op: string, cb: AnyCb, p: () => Promise<number>): void => {
    p().then(
      (n) => cb(n),
      (e) => cb(fail(op, e)),
    );
  };
  const caller = (): { uid: number; gid: number } => {
    const c = fuse()?.context();
    return { uid: c?.uid ?? process.getuid?.() ?? 0, gid: c?.gid ?? process.getgid?.() ?? 0 };
  };
  return {
    init: (cb: AnyCb) => cb(0),
    getattr: (path: string, cb: AnyCb) => run('getattr', cb, () => v.getattr(path)),
    fgetattr: (_path: string, fd: number, cb: AnyCb) => run('fgetattr', cb, () => v.fgetattr(fd)),
    readdir: (path: string, cb: AnyCb) =>
      run('readdir', cb, async () => ['.', '..', ...(await v.readdir(path))]),
    readlink: (path: string, cb: AnyCb) => run('readlink', cb, () => v.readlink(path)),
    open: (path: string, _flags: number, cb: AnyCb) => run('open', cb, () => v.open(path)),
    create: (path: string, mode: number, cb: AnyCb) => {
      const c = caller();
      v.createIn(path, mode, c.uid, c.gid).then(
        ({ fh, parent }) => cb(0, fh, v.handleStat(fh), parent),
        (e) => cb(fail('create', e)),
      );
    },
    mknod: (path: string, mode: number, dev: number, cb: AnyCb) => {
      const c = caller();
      run('mknod', cb, () => v.mknod(path, mode, dev, c.uid, c.gid));
    },
    release: (_path: string, fd: number, cb: AnyCb) => run('release', cb, () => v.release(fd)),
    read: (_path: string, fd: number, buf: Buffer, len: number, pos: number, cb: AnyCb) =>
      runN('read', cb, () => v.read(fd, buf, len, pos)),
    write: (_path: string, fd: number, buf: Buffer, len: number, pos: number, cb: AnyCb) =>
      runN('write', cb, () => v.write(fd, buf, len, pos)),
    truncate: (path: string, size: number, cb: AnyCb) =>
      run('truncate', cb, () => v.truncate(path, size)),
    ftruncate: (_path: string, fd: number, size: number, cb: AnyCb) =>
      run('ftruncate', cb, () => v.ftruncate(fd, size)),
    unlink: (path: string, cb: AnyCb) => run('unlink', cb, () => v.unlink(path)),
    rename: (from: string, to: string, cb: AnyCb) => run('rename', cb, () => v.rename(from, to)),
    link: (_from: string, _to: string, cb: AnyCb) => cb(errno('EPERM')),
    mkdir: (path: string, mode: number, cb: AnyCb) => {
      const c = caller();
      run('mkdir', cb, () => v.mkdir(path, mode, c.uid, c.gid));
    },
    rmdir: (path: string, cb: AnyCb) => run('rmdir', cb, () => v.rmdir(path)),
    symlink: (target: string, path: string, cb: AnyCb) => {
      const c = caller();
      run('symlink', cb, () => v.symlink(target, path, c.uid, c.gid));
    },
    chmod: (path: string, mode: number, cb: AnyCb) => run('chmod', cb, () => v.chmod(path, mode)),
    chown: (path: string, uid: number, gid: number, cb: AnyCb) =>
      run('chown', cb, () => v.chown(path, uid, gid)),
    utimens: (path: string, atime: number | null, mtime: number | null, cb: AnyCb) =>
      run('utimens', cb, () => v.utimens(path, atime, mtime)),
    statfs: (_path: string, cb: AnyCb) => run('statfs', cb, () => v.statfs()),
    fsync: (_path: string, _datasync: number, _fd: number, cb: AnyCb) =>
      run('fsync', cb, () => v.commit()),
    fsyncdir: (_path: string, _datasync: number, _fd: number, cb: AnyCb) =>
      run('fsyncdir', cb, () => v.commit()),
  };
}
