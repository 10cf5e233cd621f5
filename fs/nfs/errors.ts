/**
 * NFSv3 status codes (RFC 1813 §2.6, nfsstat3) and MOUNT v3 status codes
 * (RFC 1813 §5.1.5, mountstat3), each mapped to the errno a local
 * filesystem would give. {@link NfsError} carries both, with `code` set like
 * a Node.js system error (`err.code === 'ENOENT'`), so callers that already
 * handle fs errors handle NFS errors the same way.
 */

/** nfsstat3. */
export const NFS3 = {
  OK: 0,
  ERR_PERM: 1,
  ERR_NOENT: 2,
  ERR_IO: 5,
  ERR_NXIO: 6,
  ERR_ACCES: 13,
  ERR_EXIST: 17,
  ERR_XDEV: 18,
  ERR_NODEV: 19,
  ERR_NOTDIR: 20,
  ERR_ISDIR: 21,
  ERR_INVAL: 22,
  ERR_FBIG: 27,
  ERR_NOSPC: 28,
  ERR_ROFS: 30,
  ERR_MLINK: 31,
  ERR_NAMETOOLONG: 63,
  ERR_NOTEMPTY: 66,
  ERR_DQUOT: 69,
  ERR_STALE: 70,
  ERR_REMOTE: 71,
  ERR_BADHANDLE: 10001,
  ERR_NOT_SYNC: 10002,
  ERR_BAD_COOKIE: 10003,
  ERR_NOTSUPP: 10004,
  ERR_TOOSMALL: 10005,
  ERR_SERVERFAULT: 10006,
  ERR_BADTYPE: 10007,
  ERR_JUKEBOX: 10008,
} as const;

/** The name and errno of each nfsstat3 (RFC 1813 §2.6 gives the meanings). */
const NFS3_TABLE: Record<number, [name: string, errno: string]> = {
  [NFS3.ERR_PERM]: ['NFS3ERR_PERM', 'EPERM'],
  [NFS3.ERR_NOENT]: ['NFS3ERR_NOENT', 'ENOENT'],
  [NFS3.ERR_IO]: ['NFS3ERR_IO', 'EIO'],
  [NFS3.ERR_NXIO]: ['NFS3ERR_NXIO', 'ENXIO'],
  [NFS3.ERR_ACCES]: ['NFS3ERR_ACCES', 'EACCES'],
  [NFS3.ERR_EXIST]: ['NFS3ERR_EXIST', 'EEXIST'],
  [NFS3.ERR_XDEV]: ['NFS3ERR_XDEV', 'EXDEV'],
  [NFS3.ERR_NODEV]: ['NFS3ERR_NODEV', 'ENODEV'],
  [NFS3.ERR_NOTDIR]: ['NFS3ERR_NOTDIR', 'ENOTDIR'],
  [NFS3.ERR_ISDIR]: ['NFS3ERR_ISDIR', 'EISDIR'],
  [NFS3.ERR_INVAL]: ['NFS3ERR_INVAL', 'EINVAL'],
  [NFS3.ERR_FBIG]: ['NFS3ERR_FBIG', 'EFBIG'],
  [NFS3.ERR_NOSPC]: ['NFS3ERR_NOSPC', 'ENOSPC'],
  [NFS3.ERR_ROFS]: ['NFS3ERR_ROFS', 'EROFS'],
  [NFS3.ERR_MLINK]: ['NFS3ERR_MLINK', 'EMLINK'],
  [NFS3.ERR_NAMETOOLONG]: ['NFS3ERR_NAMETOOLONG', 'ENAMETOOLONG'],
  [NFS3.ERR_NOTEMPTY]: ['NFS3ERR_NOTEMPTY', 'ENOTEMPTY'],
  [NFS3.ERR_DQUOT]: ['NFS3ERR_DQUOT', 'EDQUOT'],
  [NFS3.ERR_STALE]: ['NFS3ERR_STALE', 'ESTALE'],
  [NFS3.ERR_REMOTE]: ['NFS3ERR_REMOTE', 'EREMOTE'],
  // A handle the server cannot parse: for the caller as good as stale.
  [NFS3.ERR_BADHANDLE]: ['NFS3ERR_BADHANDLE', 'ESTALE'],
  // SETATTR guard mismatch: the object changed under us.
  [NFS3.ERR_NOT_SYNC]: ['NFS3ERR_NOT_SYNC', 'EAGAIN'],
  // The directory changed during a READDIR: the reader restarts it.
  [NFS3.ERR_BAD_COOKIE]: ['NFS3ERR_BAD_COOKIE', 'EAGAIN'],
  [NFS3.ERR_NOTSUPP]: ['NFS3ERR_NOTSUPP', 'EOPNOTSUPP'],
  // Our buffer was too small for one entry: a client bug, not the caller's.
  [NFS3.ERR_TOOSMALL]: ['NFS3ERR_TOOSMALL', 'EIO'],
  [NFS3.ERR_SERVERFAULT]: ['NFS3ERR_SERVERFAULT', 'EREMOTEIO'],
  [NFS3.ERR_BADTYPE]: ['NFS3ERR_BADTYPE', 'EINVAL'],
  // Retried with backoff first; after that the resource is busy.
  [NFS3.ERR_JUKEBOX]: ['NFS3ERR_JUKEBOX', 'EAGAIN'],
};

/** mountstat3. */
export const MNT3 = {
  OK: 0,
  ERR_PERM: 1,
  ERR_NOENT: 2,
  ERR_IO: 5,
  ERR_ACCES: 13,
  ERR_NOTDIR: 20,
  ERR_INVAL: 22,
  ERR_NAMETOOLONG: 63,
  ERR_NOTSUPP: 10004,
  ERR_SERVERFAULT: 10006,
} as const;

const MNT3_TABLE: Record<number, [name: string, errno: string]> = {
  [MNT3.ERR_PERM]: ['MNT3ERR_PERM', 'EPERM'],
  [MNT3.ERR_NOENT]: ['MNT3ERR_NOENT', 'ENOENT'],
  [MNT3.ERR_IO]: ['MNT3ERR_IO', 'EIO'],
  [MNT3.ERR_ACCES]: ['MNT3ERR_ACCES', 'EACCES'],
  [MNT3.ERR_NOTDIR]: ['MNT3ERR_NOTDIR', 'ENOTDIR'],
  [MNT3.ERR_INVAL]: ['MNT3ERR_INVAL', 'EINVAL'],
  [MNT3.ERR_NAMETOOLONG]: ['MNT3ERR_NAMETOOLONG', 'ENAMETOOLONG'],
  [MNT3.ERR_NOTSUPP]: ['MNT3ERR_NOTSUPP', 'EOPNOTSUPP'],
  [MNT3.ERR_SERVERFAULT]: ['MNT3ERR_SERVERFAULT', 'EREMOTEIO'],
};

/** Name of an nfsstat3 value (`NFS3ERR_NOENT`), or `nfsstat3 N` when unknown. */
export function nfsStatName(status: number): string {
  return status === NFS3.OK ? 'NFS3_OK' : (NFS3_TABLE[status]?.[0] ?? `nfsstat3 ${status}`);
}

/** errno for an nfsstat3 value; unknown codes are EIO (RFC 1813: treat as an I/O error). */
export function nfsErrno(status: number): string {
  return NFS3_TABLE[status]?.[1] ?? 'EIO';
}

/** A procedure the server ran and answered with an error status. */
export class NfsError extends Error {
  /** errno name, like a Node.js system error. */
  readonly code: string;
  constructor(
    /** nfsstat3 (or mountstat3 when `mount` is set) */
    readonly status: number,
    /** what was being done, e.g. `LOOKUP objects/ab12…` */
    readonly op: string,
    /** true: `status` is a MOUNT v3 status */
    readonly mount = false,
  ) {
    const [name, errno] = (mount ? MNT3_TABLE : NFS3_TABLE)[status] ?? [
      `${mount ? 'mountstat3' : 'nfsstat3'} ${status}`,
      'EIO',
    ];
    super(`${op}: ${name} (${errno})`);
    this.name = 'NfsError';
    this.code = errno;
  }
}

/** True for an {@link NfsError} with this nfsstat3. */
export const isNfsStatus = (e: unknown, status: number): boolean =>
  e instanceof NfsError && !e.mount && e.status === status;
