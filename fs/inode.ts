/**
 * Inode records, inode pages and directory listings: the sealed metadata.
 * Owners, permissions, timestamps, sizes, names and the tree shape all live
 * only inside sealed objects (docs/storage.md §Inode page, §Directory).
 */
import { REF_LEN, type Ref, readRef, writeRef } from './format.js';

/** Inodes per inode page: page p holds inode numbers [p*64, p*64+64). */
export const INODES_PER_PAGE = 64;
/** Longest symlink target (PATH_MAX - 1). */
export const MAX_LINK = 4095;
/** Longest name of one directory entry (NAME_MAX). */
export const MAX_NAME = 255;
export const ROOT_INO = 1;

export const IOFF_INO = 0;
export const IOFF_MODE = IOFF_INO + 8;
export const IOFF_UID = IOFF_MODE + 4;
export const IOFF_GID = IOFF_UID + 4;
export const IOFF_NLINK = IOFF_GID + 4;
export const IOFF_RDEV = IOFF_NLINK + 4;
export const IOFF_SIZE = IOFF_RDEV + 4;
export const IOFF_ATIME = IOFF_SIZE + 8;
export const IOFF_MTIME = IOFF_ATIME + 8;
export const IOFF_CTIME = IOFF_MTIME + 8;
export const IOFF_DEPTH = IOFF_CTIME + 8;
export const IOFF_LINKLEN = IOFF_DEPTH + 2;
export const IOFF_ROOT = IOFF_LINKLEN + 2;
/** Fixed part of an inode record; the symlink target follows. */
export const INODE_FIXED = IOFF_ROOT + REF_LEN;
const PAGE_COUNT_LEN = 4;

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

/** The stored attributes of one inode. */
export interface InodeRecord {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  rdev: number;
  size: number;
  /** Milliseconds since the epoch. */
  atime: number;
  mtime: number;
  ctime: number;
  /** Data tree (file contents, directory listing). */
  depth: number;
  root: Ref | null;
  /** Symlink target. */
  link: Buffer | null;
}

export function encodePage(records: InodeRecord[]): Buffer {
  let len = PAGE_COUNT_LEN;
  for (const r of records) len += INODE_FIXED + (r.link ? r.link.length : 0);
  const b = Buffer.alloc(len);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  dv.setUint32(0, records.length);
  let o = PAGE_COUNT_LEN;
  for (const r of records) {
    dv.setBigUint64(o + IOFF_INO, BigInt(r.ino));
    dv.setUint32(o + IOFF_MODE, r.mode);
    dv.setUint32(o + IOFF_UID, r.uid);
    dv.setUint32(o + IOFF_GID, r.gid);
    dv.setUint32(o + IOFF_NLINK, r.nlink);
    dv.setUint32(o + IOFF_RDEV, r.rdev);
    dv.setBigUint64(o + IOFF_SIZE, BigInt(r.size));
    dv.setFloat64(o + IOFF_ATIME, r.atime);
    dv.setFloat64(o + IOFF_MTIME, r.mtime);
    dv.setFloat64(o + IOFF_CTIME, r.ctime);
    dv.setUint16(o + IOFF_DEPTH, r.depth);
    const ll = r.link ? r.link.length : 0;
    dv.setUint16(o + IOFF_LINKLEN, ll);
    writeRef(b, o + IOFF_ROOT, r.root);
    if (r.link) r.link.copy(b, o + INODE_FIXED);
    o += INODE_FIXED + ll;
  }
  return b;
}

/** Decodes a page; `page` is the page number every inode must belong to. */
export function decodePage(b: Buffer, page: number): InodeRecord[] {
  if (b.length < PAGE_COUNT_LEN) throw new Error('inode page too short');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = dv.getUint32(0);
  if (n > INODES_PER_PAGE) throw new Error(`inode page holds ${n} inodes`);
  const out: InodeRecord[] = [];
  let o = PAGE_COUNT_LEN;
  for (let i = 0; i < n; i++) {
    if (o + INODE_FIXED > b.length) throw new Error('inode page truncated');
    const ino = Number(dv.getBigUint64(o + IOFF_INO));
    if (Math.floor(ino / INODES_PER_PAGE) !== page || ino === 0)
      throw new Error(`inode ${ino} in page ${page}`);
    const ll = dv.getUint16(o + IOFF_LINKLEN);
    if (ll > MAX_LINK || o + INODE_FIXED + ll > b.length) throw new Error('bad symlink length');
    out.push({
      ino,
      mode: dv.getUint32(o + IOFF_MODE),
      uid: dv.getUint32(o + IOFF_UID),
      gid: dv.getUint32(o + IOFF_GID),
      nlink: dv.getUint32(o + IOFF_NLINK),
      rdev: dv.getUint32(o + IOFF_RDEV),
      size: Number(dv.getBigUint64(o + IOFF_SIZE)),
      atime: dv.getFloat64(o + IOFF_ATIME),
      mtime: dv.getFloat64(o + IOFF_MTIME),
      ctime: dv.getFloat64(o + IOFF_CTIME),
      depth: dv.getUint16(o + IOFF_DEPTH),
      root: readRef(b, o + IOFF_ROOT),
      link:
        (mode(dv, o) & S_IFMT) === S_IFLNK
          ? Buffer.from(b.subarray(o + INODE_FIXED, o + INODE_FIXED + ll))
          : null,
    });
    o += INODE_FIXED + ll;
  }
  if (o !== b.length) throw new Error('trailing bytes in inode page');
  return out;
}

function mode(dv: DataView, o: number): number {
  return dv.getUint32(o + IOFF_MODE);
}

// ---- directory listing: count u32 | (ino u64 | nameLen u16 | name)* ---------

export function encodeDir(entries: Map<string, number>): Buffer {
  const names = [...entries.keys()].map((n) => Buffer.from(n, 'utf8'));
  let len = 4;
  for (const n of names) len += 10 + n.length;
  const b = Buffer.alloc(len);
  b.writeUInt32BE(names.length, 0);
  let o = 4;
  let i = 0;
  for (const ino of entries.values()) {
    const n = names[i++]!;
    b.writeBigUInt64BE(BigInt(ino), o);
    b.writeUInt16BE(n.length, o + 8);
    n.copy(b, o + 10);
    o += 10 + n.length;
  }
  return b;
}

export function decodeDir(b: Buffer): Map<string, number> {
  const m = new Map<string, number>();
  if (b.length === 0) return m;
  if (b.length < 4) throw new Error('directory listing too short');
  const n = b.readUInt32BE(0);
  let o = 4;
  for (let i = 0; i < n; i++) {
    if (o + 10 > b.length) throw new Error('directory listing truncated');
    const ino = Number(b.readBigUInt64BE(o));
    const nl = b.readUInt16BE(o + 8);
    if (nl === 0 || nl > MAX_NAME || o + 10 + nl > b.length || ino === 0)
      throw new Error('bad directory entry');
    const name = b.toString('utf8', o + 10, o + 10 + nl);
    if (name === '.' || name === '..' || name.includes('/') || m.has(name))
      throw new Error('bad directory entry name');
    m.set(name, ino);
    o += 10 + nl;
  }
  if (o !== b.length) throw new Error('trailing bytes in directory listing');
  return m;
}
