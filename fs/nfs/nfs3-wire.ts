/**
 * NFSv3 (RFC 1813) and MOUNT v3 (RFC 1813 §5) wire types: program numbers,
 * procedure numbers, and an encoder/decoder for the arguments and results
 * of every procedure the storage backend uses. Decoders read a whole reply
 * body and check that nothing is left over; a status other than NFS3_OK
 * decodes the failure arm (post-op attributes, wcc data) and returns it as
 * `{ status }` so the caller can raise an error with the right errno.
 */
import { XDR_UNIT, XdrError, XdrReader, XdrWriter } from './xdr.js';
import { MAX_AUTH_BYTES, type Program } from './rpc.js';

export const NFS_PROGRAM: Program = { prog: 100003, vers: 3, name: 'NFSv3' };
export const MOUNT_PROGRAM: Program = { prog: 100005, vers: 3, name: 'MOUNTv3' };

/** NFSv3 procedures (RFC 1813 §3.3). */
export const PROC = {
  NULL: 0,
  GETATTR: 1,
  SETATTR: 2,
  LOOKUP: 3,
  ACCESS: 4,
  READLINK: 5,
  READ: 6,
  WRITE: 7,
  CREATE: 8,
  MKDIR: 9,
  SYMLINK: 10,
  MKNOD: 11,
  REMOVE: 12,
  RMDIR: 13,
  RENAME: 14,
  LINK: 15,
  READDIR: 16,
  READDIRPLUS: 17,
  FSSTAT: 18,
  FSINFO: 19,
  PATHCONF: 20,
  COMMIT: 21,
} as const;

/** MOUNT v3 procedures (RFC 1813 §5.2). */
export const MOUNTPROC = { NULL: 0, MNT: 1, DUMP: 2, UMNT: 3, UMNTALL: 4, EXPORT: 5 } as const;

/** Procedure names, for messages. */
export const PROC_NAME: Record<number, string> = Object.fromEntries(
  Object.entries(PROC).map(([k, v]) => [v, k]),
);

/** RFC 1813 limits. */
export const NFS3_FHSIZE = 64;
export const NFS3_COOKIEVERFSIZE = 8;
export const NFS3_CREATEVERFSIZE = 8;
export const NFS3_WRITEVERFSIZE = 8;
export const MNTPATHLEN = 1024;
/** Names longer than this are refused before they reach the wire (filename3 is unbounded, but no server takes more). */
export const MAX_NAME = 255;

/** ftype3. */
export const FTYPE = { REG: 1, DIR: 2, BLK: 3, CHR: 4, LNK: 5, SOCK: 6, FIFO: 7 } as const;

/** stable_how (RFC 1813 §3.3.7). */
export const STABLE = { UNSTABLE: 0, DATA_SYNC: 1, FILE_SYNC: 2 } as const;

/** createmode3 (RFC 1813 §3.3.8). */
export const CREATE_MODE = { UNCHECKED: 0, GUARDED: 1, EXCLUSIVE: 2 } as const;

/** ACCESS3 bits (RFC 1813 §3.3.4). */
export const ACCESS = {
  READ: 0x01,
  LOOKUP: 0x02,
  MODIFY: 0x04,
  EXTEND: 0x08,
  DELETE: 0x10,
  EXECUTE: 0x20,
} as const;

/** time_how. */
const TIME = { DONT_CHANGE: 0, SERVER: 1, CLIENT: 2 } as const;

/** FSINFO properties bits. */
export const FSF = { LINK: 0x1, SYMLINK: 0x2, HOMOGENEOUS: 0x8, CANSETTIME: 0x10 } as const;

export interface NfsTime {
  sec: number;
  nsec: number;
}

/** Bytes of an encoded fattr3 (RFC 1813 §2.6: 13 words of 4 and 8 bytes, 84 in all). */
export const FATTR3_LEN = 84;
/**
 * Most bytes a READ reply record adds to its data: the RPC reply header with
 * the largest verifier (xid, msg_type, reply_stat, verifier flavor + length
 * + body, accept_stat; RFC 5531 §9), then READ3resok (status, post_op_attr,
 * count, eof, opaque length; RFC 1813 §3.3.6) and the data's XDR padding.
 */
export const READ_REPLY_OVERHEAD =
  5 * XDR_UNIT +
  MAX_AUTH_BYTES +
  XDR_UNIT +
  (XDR_UNIT + FATTR3_LEN) +
  3 * XDR_UNIT +
  (XDR_UNIT - 1);
/** Size of a buffer that holds any READ reply of up to `count` data bytes. */
export function readReplyLen(count: number): number {
  return count + READ_REPLY_OVERHEAD;
}

/** fattr3. */
export interface Fattr {
  type: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  used: number;
  rdev: [number, number];
  fsid: bigint;
  fileid: bigint;
  atime: NfsTime;
  mtime: NfsTime;
  ctime: NfsTime;
}

/** wcc_attr (pre-operation attributes). */
export interface WccAttr {
  size: number;
  mtime: NfsTime;
  ctime: NfsTime;
}

export interface Wcc {
  before: WccAttr | null;
  after: Fattr | null;
}

/** sattr3: fields left undefined are not changed. */
export interface Sattr {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** 'server' = the server's clock */
  atime?: NfsTime | 'server';
  mtime?: NfsTime | 'server';
}

/** A failure arm: the status and whatever attributes came with it. */
export interface Failed {
  status: number;
}

export type Res<T> = ({ status: 0 } & T) | Failed;

// ---- building blocks --------------------------------------------------------

export function writeFh(w: XdrWriter, fh: Buffer): void {
  w.opaque(fh, NFS3_FHSIZE);
}

function readFh(r: XdrReader): Buffer {
  const fh = r.opaque(NFS3_FHSIZE);
  if (fh.length === 0) throw new XdrError('empty file handle');
  return Buffer.from(fh); // handles outlive the reply record
}

function readTime(r: XdrReader): NfsTime {
  const sec = r.u32();
  const nsec = r.u32();
  if (nsec >= 1e9) throw new XdrError(`nfstime3 nseconds out of range: ${nsec}`);
  return { sec, nsec };
}

function writeTime(w: XdrWriter, t: NfsTime): void {
  w.u32(t.sec).u32(t.nsec);
}

export function readFattr(r: XdrReader): Fattr {
  const type = r.u32();
  if (type < FTYPE.REG || type > FTYPE.FIFO) throw new XdrError(`unknown ftype3 ${type}`);
  return {
    type,
    mode: r.u32(),
    nlink: r.u32(),
    uid: r.u32(),
    gid: r.u32(),
    size: r.u64n('size3'),
    used: r.u64n('size3'),
    rdev: [r.u32(), r.u32()],
    fsid: r.u64(),
    fileid: r.u64(),
    atime: readTime(r),
    mtime: readTime(r),
    ctime: readTime(r),
  };
}

export function readPostOpAttr(r: XdrReader): Fattr | null {
  return r.bool() ? readFattr(r) : null;
}

function readWcc(r: XdrReader): Wcc {
  const before = r.bool()
    ? { size: r.u64n('size3'), mtime: readTime(r), ctime: readTime(r) }
    : null;
  return { before, after: readPostOpAttr(r) };
}

function readPostOpFh(r: XdrReader): Buffer | null {
  return r.bool() ? readFh(r) : null;
}

export function writeSattr(w: XdrWriter, s: Sattr): void {
  const opt = (v: number | undefined): void => {
    if (v === undefined) w.bool(false);
    else w.bool(true).u32(v);
  };
  opt(s.mode);
  opt(s.uid);
  opt(s.gid);
  if (s.size === undefined) w.bool(false);
  else w.bool(true).u64(s.size);
  for (const t of [s.atime, s.mtime]) {
    if (t === undefined) w.u32(TIME.DONT_CHANGE);
    else if (t === 'server') w.u32(TIME.SERVER);
    else {
      w.u32(TIME.CLIENT);
      writeTime(w, t);
    }
  }
}

function checkName(name: string): void {
  if (
    name.length === 0 ||
    name === '.' ||
    name === '..' ||
    name.includes('/') ||
    name.includes('\0')
  )
    throw new XdrError(`invalid file name ${JSON.stringify(name)}`);
  if (Buffer.byteLength(name) > MAX_NAME)
    throw new XdrError(`file name longer than ${MAX_NAME} bytes`);
}

function writeDirop(w: XdrWriter, dir: Buffer, name: string): void {
  checkName(name);
  writeFh(w, dir);
  w.string(name);
}

/** Decodes a result: status, then the ok or the failure arm; checks the exact length. */
function result<T>(
  r: XdrReader,
  what: string,
  ok: (r: XdrReader) => T,
  fail: (r: XdrReader) => void,
): Res<T> {
  const status = r.u32();
  if (status === 0) {
    const v = ok(r);
    r.end(what);
    return { status: 0, ...v };
  }
  fail(r);
  r.end(what);
  return { status };
}

const skipPostOp = (r: XdrReader): void => void readPostOpAttr(r);
const skipWcc = (r: XdrReader): void => void readWcc(r);

// ---- procedures ---------------------------------------------------------------

export const enc = {
  fh: (fh: Buffer) => (w: XdrWriter) => writeFh(w, fh),
  setattr: (fh: Buffer, s: Sattr, guardCtime?: NfsTime) => (w: XdrWriter) => {
    writeFh(w, fh);
    writeSattr(w, s);
    if (guardCtime) {
      w.bool(true);
      writeTime(w, guardCtime);
    } else w.bool(false);
  },
  dirop: (dir: Buffer, name: string) => (w: XdrWriter) => writeDirop(w, dir, name),
  access: (fh: Buffer, mask: number) => (w: XdrWriter) => {
    writeFh(w, fh);
    w.u32(mask);
  },
  read: (fh: Buffer, offset: number, count: number) => (w: XdrWriter) => {
    writeFh(w, fh);
    w.u64(offset).u32(count);
  },
  /** `data` is sent from the caller's buffer (no copy). */
  write: (fh: Buffer, offset: number, data: Buffer, stable: number) => (w: XdrWriter) => {
    writeFh(w, fh);
    w.u64(offset).u32(data.length).u32(stable).opaqueTail(data);
  },
  create:
    (dir: Buffer, name: string, how: number, attrOrVerf: Sattr | Buffer) => (w: XdrWriter) => {
      writeDirop(w, dir, name);
      w.u32(how);
      if (how === CREATE_MODE.EXCLUSIVE) w.fixed(attrOrVerf as Buffer, NFS3_CREATEVERFSIZE);
      else writeSattr(w, attrOrVerf as Sattr);
    },
  mkdir: (dir: Buffer, name: string, s: Sattr) => (w: XdrWriter) => {
    writeDirop(w, dir, name);
    writeSattr(w, s);
  },
  rename: (fromDir: Buffer, from: string, toDir: Buffer, to: string) => (w: XdrWriter) => {
    writeDirop(w, fromDir, from);
    writeDirop(w, toDir, to);
  },
  readdirplus:
    (dir: Buffer, cookie: bigint, verf: Buffer, dircount: number, maxcount: number) =>
    (w: XdrWriter) => {
      writeFh(w, dir);
      w.u64(cookie).fixed(verf, NFS3_COOKIEVERFSIZE).u32(dircount).u32(maxcount);
    },
  commit: (fh: Buffer, offset: number, count: number) => (w: XdrWriter) => {
    writeFh(w, fh);
    w.u64(offset).u32(count);
  },
  mnt: (path: string) => (w: XdrWriter) => w.string(path, MNTPATHLEN),
};

export interface LookupOk {
  fh: Buffer;
  attr: Fattr | null;
}
export interface ReadOk {
  attr: Fattr | null;
  count: number;
  eof: boolean;
  /** a view into the reply record */
  data: Buffer;
}
export interface WriteOk {
  wcc: Wcc;
  count: number;
  committed: number;
  verf: Buffer;
}
export interface CreateOk {
  fh: Buffer | null;
  attr: Fattr | null;
}
export interface DirEntry {
  fileid: bigint;
  name: string;
  cookie: bigint;
  attr: Fattr | null;
  fh: Buffer | null;
}
export interface ReaddirOk {
  verf: Buffer;
  entries: DirEntry[];
  eof: boolean;
}
export interface FsstatOk {
  tbytes: number;
  fbytes: number;
  abytes: number;
  tfiles: number;
  ffiles: number;
  afiles: number;
  invarsec: number;
}
export interface FsinfoOk {
  rtmax: number;
  rtpref: number;
  rtmult: number;
  wtmax: number;
  wtpref: number;
  wtmult: number;
  dtpref: number;
  maxfilesize: bigint;
  timeDelta: NfsTime;
  properties: number;
}
export interface MntOk {
  fh: Buffer;
  flavors: number[];
}

export const dec = {
  getattr: (r: XdrReader): Res<{ attr: Fattr }> =>
    result(
      r,
      'GETATTR3res',
      (r) => ({ attr: readFattr(r) }),
      () => {},
    ),
  setattr: (r: XdrReader): Res<{ wcc: Wcc }> =>
    result(r, 'SETATTR3res', (r) => ({ wcc: readWcc(r) }), skipWcc),
  lookup: (r: XdrReader): Res<LookupOk> =>
    result(
      r,
      'LOOKUP3res',
      (r) => {
        const fh = readFh(r);
        const attr = readPostOpAttr(r);
        readPostOpAttr(r); // directory
        return { fh, attr };
      },
      skipPostOp,
    ),
  access: (r: XdrReader): Res<{ access: number }> =>
    result(
      r,
      'ACCESS3res',
      (r) => {
        readPostOpAttr(r);
        return { access: r.u32() };
      },
      skipPostOp,
    ),
  read: (r: XdrReader): Res<ReadOk> =>
    result(
      r,
      'READ3res',
      (r) => {
        const attr = readPostOpAttr(r);
        const count = r.u32();
        const eof = r.bool();
        const data = r.opaque();
        if (data.length !== count)
          throw new XdrError(`READ3res count ${count} but ${data.length} data bytes`);
        return { attr, count, eof, data };
      },
      skipPostOp,
    ),
  write: (r: XdrReader): Res<WriteOk> =>
    result(
      r,
      'WRITE3res',
      (r) => {
        const wcc = readWcc(r);
        const count = r.u32();
        const committed = r.u32();
        if (committed > STABLE.FILE_SYNC) throw new XdrError(`unknown stable_how ${committed}`);
        return { wcc, count, committed, verf: Buffer.from(r.fixed(NFS3_WRITEVERFSIZE)) };
      },
      skipWcc,
    ),
  /** CREATE, MKDIR (and SYMLINK/MKNOD) share one result shape. */
  create: (r: XdrReader): Res<CreateOk> =>
    result(
      r,
      'CREATE3res',
      (r) => {
        const fh = readPostOpFh(r);
        const attr = readPostOpAttr(r);
        readWcc(r);
        return { fh, attr };
      },
      skipWcc,
    ),
  /** REMOVE and RMDIR. */
  remove: (r: XdrReader): Res<{ wcc: Wcc }> =>
    result(r, 'REMOVE3res', (r) => ({ wcc: readWcc(r) }), skipWcc),
  rename: (r: XdrReader): Res<{ from: Wcc; to: Wcc }> =>
    result(
      r,
      'RENAME3res',
      (r) => ({ from: readWcc(r), to: readWcc(r) }),
      (r) => {
        readWcc(r);
        readWcc(r);
      },
    ),
  readdirplus: (r: XdrReader): Res<ReaddirOk> =>
    result(
      r,
      'READDIRPLUS3res',
      (r) => {
        readPostOpAttr(r);
        const verf = Buffer.from(r.fixed(NFS3_COOKIEVERFSIZE));
        const entries: DirEntry[] = [];
        while (r.bool()) {
          const fileid = r.u64();
          const name = r.string();
          const cookie = r.u64();
          const attr = readPostOpAttr(r);
          const fh = readPostOpFh(r);
          entries.push({ fileid, name, cookie, attr, fh });
        }
        return { verf, entries, eof: r.bool() };
      },
      skipPostOp,
    ),
  fsstat: (r: XdrReader): Res<FsstatOk> =>
    result(
      r,
      'FSSTAT3res',
      (r) => {
        readPostOpAttr(r);
        return {
          tbytes: r.u64n(),
          fbytes: r.u64n(),
          abytes: r.u64n(),
          tfiles: r.u64n(),
          ffiles: r.u64n(),
          afiles: r.u64n(),
          invarsec: r.u32(),
        };
      },
      skipPostOp,
    ),
  fsinfo: (r: XdrReader): Res<FsinfoOk> =>
    result(
      r,
      'FSINFO3res',
      (r) => {
        readPostOpAttr(r);
        return {
          rtmax: r.u32(),
          rtpref: r.u32(),
          rtmult: r.u32(),
          wtmax: r.u32(),
          wtpref: r.u32(),
          wtmult: r.u32(),
          dtpref: r.u32(),
          maxfilesize: r.u64(),
          timeDelta: readTime(r),
          properties: r.u32(),
        };
      },
      skipPostOp,
    ),
  commit: (r: XdrReader): Res<{ wcc: Wcc; verf: Buffer }> =>
    result(
      r,
      'COMMIT3res',
      (r) => ({ wcc: readWcc(r), verf: Buffer.from(r.fixed(NFS3_WRITEVERFSIZE)) }),
      skipWcc,
    ),
  mnt: (r: XdrReader): Res<MntOk> =>
    result(
      r,
      'mountres3',
      (r) => {
        const fh = readFh(r);
        const n = r.u32();
        if (n > 64) throw new XdrError(`mountres3 with ${n} auth flavors`);
        const flavors: number[] = [];
        for (let i = 0; i < n; i++) flavors.push(r.u32());
        return { fh, flavors };
      },
      () => {},
    ),
  void: (r: XdrReader): void => r.end('void result'),
};
