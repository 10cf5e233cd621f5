/**
 * Errors of the filesystem. Inside the volume engine, POSIX failures are
 * {@link FsErrno} (the FUSE layer turns them into -errno); anything the
 * provider did to the stored objects is an {@link IntegrityError}, which the
 * FUSE layer answers with EIO after logging it (never with wrong data).
 * Opening a volume fails with a {@link VolumeError} whose `kind` the CLI maps
 * to an exit code.
 */

/** POSIX error names the engine uses. */
export type Errno =
  | 'ENOENT'
  | 'EEXIST'
  | 'ENOTDIR'
  | 'EISDIR'
  | 'ENOTEMPTY'
  | 'EINVAL'
  | 'EIO'
  | 'EBADF'
  | 'EPERM'
  | 'ENAMETOOLONG'
  | 'EFBIG'
  | 'EROFS'
  | 'ENOSPC';

/** A POSIX failure of one operation. */
export class FsErrno extends Error {
  constructor(
    readonly errno: Errno,
    message?: string,
  ) {
    // An answer to the caller (ENOENT for every lookup of a new name), not a
    // bug: no stack trace, whose capture costs more than the lookup.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message ?? errno);
    Error.stackTraceLimit = limit;
    this.name = 'FsErrno';
  }
}

/** A stored object failed verification: modified, swapped, truncated, missing or rolled back. */
export class IntegrityError extends Error {
  constructor(
    /** The object name (hex id, `superblock` or `volume`). */
    readonly object: string,
    message: string,
  ) {
    super(`object ${object}: ${message}`);
    this.name = 'IntegrityError';
  }
}

/** Why a volume could not be opened. */
export type VolumeErrorKind =
  'not-a-volume' | 'wrong-key' | 'damaged' | 'rollback' | 'busy' | 'unsupported' | 'exists';

/** A volume could not be created or opened. */
export class VolumeError extends Error {
  constructor(
    readonly kind: VolumeErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'VolumeError';
  }
}
