/**
 * The volume engine: an encrypted copy-on-write object tree with POSIX
 * operations on top (paper §3.1 "Secure storage", design brief §6).
 *
 *   superblock ──▶ inode-table tree ──▶ inode pages ──▶ per-inode data tree ──▶ chunks
 *
 * Every arrow is a {@link Ref} that pins the child's id, epoch and GCM tag, so
 * the whole volume is a Merkle tree rooted in the superblock, whose version
 * and hash the {@link RootAnchor} holds outside the provider's reach.
 * Changes live in memory until a commit writes new objects under fresh ids,
 * makes them durable, replaces the superblock atomically, advances the anchor
 * and only then deletes what the old tree used: a crash at any point leaves
 * the previous or the new tree, never a mix.
 */
import { createHash } from 'node:crypto';
import {
  CHUNK_SIZE,
  MAX_PAYLOAD,
  Kind,
  type Binding,
  type Ref,
  SB_BINDING,
  SB_CLEAN,
  type Superblock,
  decodeSuperblock,
  decodeVolumeHeader,
  encodeSuperblock,
  encodeVolumeHeader,
  idName,
  keyCheck,
  bucketFor,
  objectSize,
  openObject,
  sealObject,
  TAG_LEN,
  OFF_EPOCH,
  HEADER_LEN,
} from './format.js';
import { FsErrno, IntegrityError, VolumeError } from './errors.js';
import type { ObjectStore } from './store.js';
import { inParallel } from './store.js';
import type { RootAnchor } from './anchor.js';
import type { Keyring } from './keys.js';
import { RefTree, type TreeHost } from './reftree.js';
import {
  INODES_PER_PAGE,
  type InodeRecord,
  MAX_LINK,
  MAX_NAME,
  ROOT_INO,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  decodeDir,
  decodePage,
  encodeDir,
  encodePage,
} from './inode.js';
import { RwLock } from './lock.js';
import { BufferPool } from './bufpool.js';
import { ObjectIO, type PutBatch } from './objects.js';
import { VolumeLease, type LeaseOptions } from './lease.js';
import { type Logger, nullLogger } from '../admin/logger.js';
import { timingSafeEqual } from 'node:crypto';

export interface VolumeOptions {
  logger?: Logger;
  readOnly?: boolean;
  /** Clean chunk cache, bytes. */
  cacheBytes?: number;
  /** Dirty data kept in memory before it is written out (not yet committed). */
  dirtyBytes?: number;
  /** Commit at most this long after the first change (0 = only on fsync/close). */
  commitIntervalMs?: number;
  /** Sealed objects whose put is still running, bytes, before writers wait. */
  inflightBytes?: number;
  /** Stored bytes after which puts are made durable early, in the background (0 = only at commits). */
  earlySyncBytes?: number;
  /** Chunks loaded ahead of a sequential reader. */
  readAheadChunks?: number;
  now?: () => number;
  /**
   * The writer lease a read-write open takes before it reads anything
   * (fs/lease.ts); `false` only for stores nobody else can reach.
   */
  lease?: LeaseOptions | false;
}

/** What one setattr changes (times in ms); fields left out stay as they are. */
export interface AttrChange {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atime?: number;
  mtime?: number;
}

/** Attributes as FUSE wants them (times in ms). */
export interface Stat {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  rdev: number;
  size: number;
  blocks: number;
  blksize: number;
  atime: number;
  mtime: number;
  ctime: number;
}

interface Chunk {
  /** Bytes [0, len) are data; [len, buf.length) are zero. */
  buf: Buffer;
  len: number;
  dirty: boolean;
}

/** A chunk object read ahead, outside the lock, not yet in the cache. */
interface Prefetched {
  ref: Ref;
  buf: Buffer;
  len: number;
  /** Adopted into the cache: the buffer is the chunk's now. */
  taken: boolean;
}

/**
 * A chunk load in progress. Loads by operations (under the volume lock) put
 * the chunk into the cache themselves; read-ahead loads run outside the lock
 * and only hand over what they fetched, which whoever holds the lock may
 * adopt after checking it is still what the file holds.
 */
type Load =
  | { quiet: false; promise: Promise<Chunk | null> }
  | { quiet: true; gen: number; promise: Promise<Prefetched | null> };

class Inode {
  dirty = false;
  dir: Map<string, number> | null = null;
  dirDirty = false;
  chunks = new Map<number, Chunk>();
  loading = new Map<number, Load>();
  open = 0;
  /** End of the furthest read so far (read-ahead follows it). */
  readEnd = 0;
  constructor(
    public rec: InodeRecord,
    public tree: RefTree,
  ) {}
  get isDir(): boolean {
    return (this.rec.mode & S_IFMT) === S_IFDIR;
  }
}

/**
 * Commit at most this long after the first unsynced change, like ext4's
 * default journal commit interval: fsync makes anything durable at once;
 * the timer only bounds what a crash may lose.
 */
const DEFAULT_COMMIT_MS = 5000;

/** The buffer of a chunk that holds nothing yet. */
const EMPTY = Buffer.alloc(0);
/** Smallest buffer a written chunk gets (tiny files take a slice of Node's shared pool). */
const MIN_CHUNK_BUF = 256;
/** Chunk loads a rekey keeps in flight ahead of the one it re-seals. */
const REKEY_WINDOW = 8;
/** Chunks a rekey re-seals per hold of the write lock. */
const REKEY_SLICE = 64;
/**
 * Small files (at most REKEY_WINDOW chunks) a rekey fetches ahead of the one
 * it re-seals: each is one object, so without this every small file cost a
 * full round trip to the provider with nothing else in flight (2000 small
 * files were ~2 s of a 1 GiB revocation over NFS).
 */
const REKEY_AHEAD_FILES = 16;
/**
 * Least time between two rekey checkpoints at inode-page ends (ms); a
 * crash resumes from the last one, and what follows it is redone.
 */
const REKEY_CHECKPOINT_MS = 1000;

const pageOf = (ino: number): number => Math.floor(ino / INODES_PER_PAGE);
const superHash = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

/** What `check` found. */
export interface CheckReport {
  objects: number;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  damaged: Array<{ path: string; object: string; reason: string }>;
  /** Stored objects nothing references (garbage of a crash; not damage). */
  orphans: number;
  /** Inodes no directory reaches. */
  lost: number;
}

/** Counts of what the engine has seen, for logs and tests. */
export interface VolumeCounters {
  integrityErrors: number;
  commits: number;
  objectsWritten: number;
  objectsDeleted: number;
}

export class Volume {
  readonly lock = new RwLock();
  readonly counters: VolumeCounters = {
    integrityErrors: 0,
    commits: 0,
    objectsWritten: 0,
    objectsDeleted: 0,
  };
  private log: Logger;
  private readOnly: boolean;
  private cacheLimit: number;
  private dirtyLimit: number;
  private interval: number;
  private now: () => number;
  private itable!: RefTree;
  private inodes = new Map<number, Inode>();
  private pages = new Map<number, Set<number>>();
  private pageLoads = new Map<number, Promise<Set<number>>>();
  private dirtyPages = new Set<number>();
  private deleted = new Set<Inode>();
  /** Full chunks whose write-behind seal is scheduled ({@link sealSoon}). */
  private sealQueued = new Set<Chunk>();
  private garbage: Ref[] = [];
  private lru = new Map<string, [Inode, number]>();
  private cleanBytes = 0;
  /** Buffer bytes of dirty chunks (what they really hold in memory, not CHUNK_SIZE each). */
  private dirtyBytesNow = 0;
  /** Every dirty chunk and where it belongs, so flushes need not walk all inodes. */
  private dirtyChunks = new Map<Chunk, [Inode, number]>();
  private handles = new Map<number, Inode>();
  private nextFh = 1;
  private timer: NodeJS.Timeout | null = null;
  private failed: Error | null = null;
  /** The writer lease of a read-write open (null: read-only, or released). */
  private lease: VolumeLease | null = null;
  private treeHost: TreeHost;
  private pool: BufferPool;
  /** Full-size chunk buffers, reused (see fs/bufpool.ts). */
  private chunkPool: BufferPool;
  private io: ObjectIO;
  private readAhead: number;
  /** Bumped by dropCaches: read-ahead started before it is not adopted. */
  private cacheGen = 0;
  /** commit() calls, one after another. */
  private commitQueue: Promise<void> = Promise.resolve();
  /** The durable part of the newest commit (rejects if it failed), and a never-rejecting copy to chain on. */
  private lastDurable: Promise<void> = Promise.resolve();
  private persisting: Promise<void> = Promise.resolve();

  private constructor(
    readonly store: ObjectStore,
    public keyring: Keyring,
    readonly anchor: RootAnchor,
    readonly volumeId: Buffer,
    private sb: Superblock,
    opts: VolumeOptions,
  ) {
    this.log = opts.logger ?? nullLogger;
    this.readOnly = !!opts.readOnly;
    this.cacheLimit = opts.cacheBytes ?? 64 * 1024 * 1024;
    this.dirtyLimit = opts.dirtyBytes ?? 32 * 1024 * 1024;
    this.interval = opts.commitIntervalMs ?? DEFAULT_COMMIT_MS;
    this.now = opts.now ?? Date.now;
    this.readAhead = opts.readAheadChunks ?? 8;
    const inflight = opts.inflightBytes ?? 32 * 1024 * 1024;
    this.pool = new BufferPool(inflight + 16 * objectSize(CHUNK_SIZE));
    this.io = new ObjectIO(
      store,
      this.pool,
      inflight,
      opts.earlySyncBytes ?? 64 * 1024 * 1024,
      this.log,
    );
    this.chunkPool = new BufferPool(16 * CHUNK_SIZE);
    this.treeHost = {
      loadNode: (ref, b) => this.loadObject(Kind.Node, ref, b),
      writeNode: (payload, b) => this.writeObject(Kind.Node, b, payload),
      garbage: (ref) => this.garbage.push(ref),
    };
    this.itable = new RefTree(0, this.treeHost, sb.itableDepth, sb.itableRoot);
  }

  // ---- creating and opening ------------------------------------------------

  /** Creates an empty volume (root directory owned by `uid`/`gid`) in an empty store. */
  static async create(
    store: ObjectStore,
    keyring: Keyring,
    anchor: RootAnchor,
    owner: { uid: number; gid: number; mode?: number } = { uid: 0, gid: 0 },
    opts: VolumeOptions = {},
  ): Promise<Volume> {
    if (await store.get('volume'))
      throw new VolumeError('exists', 'the backing store already holds a volume');
    const epoch = keyring.current;
    const key = keyring.key(epoch)!;
    const header = encodeVolumeHeader({
      volumeId: keyring.volumeId,
      epoch,
      check: keyCheck(key, keyring.volumeId, epoch),
    });
    const sb: Superblock = {
      flags: 0,
      version: 0n,
      nextIno: ROOT_INO + 1,
      epoch,
      itableDepth: 0,
      itableRoot: null,
    };
    const v = new Volume(store, keyring, anchor, keyring.volumeId, sb, opts);
    const t = v.now();
    const root = v.newInode(ROOT_INO, S_IFDIR | (owner.mode ?? 0o755), owner.uid, owner.gid, t);
    root.rec.nlink = 2;
    root.dir = new Map();
    root.dirDirty = true;
    v.pages.set(0, new Set([ROOT_INO]));
    v.dirtyPages.add(0);
    await v.commitLocked(false);
    // The header goes last: a store without it is no volume, so a crash
    // during init leaves nothing that looks like one.
    await store.put('volume', header, true);
    return v;
  }

  /** Opens a volume: checks the key, the superblock and the anchor; sweeps after a crash. */
  static async open(
    store: ObjectStore,
    keyring: Keyring,
    anchor: RootAnchor,
    opts: VolumeOptions = {},
  ): Promise<Volume> {
    const log = opts.logger ?? nullLogger;
    // One writer at a time, and the lease before anything is read: a second
    // writer would sweep the first one's uncommitted objects (fs/lease.ts).
    const lease =
      opts.readOnly || opts.lease === false
        ? null
        : await VolumeLease.acquire(store, { logger: log, ...opts.lease });
    try {
      const v = await Volume.openLeased(store, keyring, anchor, opts, log);
      if (lease) {
        v.lease = lease;
        lease.onLost((why) => v.fail(new Error(why)));
        if (lease.lost) v.fail(new Error('the writer lease was lost while the volume opened'));
      }
      return v;
    } catch (e) {
      await lease?.release().catch(() => {});
      throw e;
    }
  }

  private static async openLeased(
    store: ObjectStore,
    keyring: Keyring,
    anchor: RootAnchor,
    opts: VolumeOptions,
    log: Logger,
  ): Promise<Volume> {
    const header = decodeVolumeHeader(await store.get('volume'));
    if (!header.volumeId.equals(keyring.volumeId))
      throw new VolumeError(
        'wrong-key',
        `the key is for volume ${keyring.volumeId.toString('hex')}, the store holds volume ${header.volumeId.toString('hex')}`,
      );
    const hk = keyring.key(header.epoch);
    if (!hk || !timingSafeEqual(keyCheck(hk, header.volumeId, header.epoch), header.check))
      throw new VolumeError(
        'wrong-key',
        `the key file has no valid key for epoch ${header.epoch} of this volume`,
      );
    const data = await store.get('superblock');
    if (!data) throw new VolumeError('damaged', 'the superblock is missing');
    let sb: Superblock;
    try {
      const epoch = data.length >= HEADER_LEN ? data.readUInt32BE(OFF_EPOCH) : 0;
      const ref: Ref = { id: header.volumeId, tag: data.subarray(data.length - TAG_LEN), epoch };
      sb = decodeSuperblock(
        openObject((e) => keyring.key(e), Kind.Superblock, ref, SB_BINDING, data),
      );
    } catch (e) {
      if (e instanceof IntegrityError) {
        log.error('integrity violation', { object: 'superblock', reason: e.message });
        throw new VolumeError('damaged', `the superblock does not verify: ${e.message}`);
      }
      throw e;
    }
    const anchored = await anchor.read();
    if (anchored) {
      if (sb.version < anchored.version) {
        log.error('rollback detected', {
          superblock: sb.version.toString(),
          anchor: anchored.version.toString(),
        });
        throw new VolumeError(
          'rollback',
          `the store holds superblock version ${sb.version}, but version ${anchored.version} was committed: the provider rolled the volume back`,
        );
      }
      if (sb.version === anchored.version && !timingSafeEqual(superHash(data), anchored.hash)) {
        log.error('superblock replaced', { version: sb.version.toString() });
        throw new VolumeError(
          'rollback',
          `superblock version ${sb.version} differs from the one committed`,
        );
      }
    }
    const v = new Volume(store, keyring, anchor, header.volumeId, sb, opts);
    if (!v.readOnly) {
      if (!anchored || sb.version > anchored.version)
        await anchor.write({ version: sb.version, hash: superHash(data) });
      if (!(sb.flags & SB_CLEAN)) await v.sweep();
      // Mark the volume in use before any object of this session is written,
      // so a crash from here on makes the next mount sweep orphans.
      v.sb.epoch = Math.max(v.sb.epoch, keyring.current);
      await v.commitLocked(false);
    }
    return v;
  }

  // ---- objects -------------------------------------------------------------

  private keyLookup = (e: number): Buffer | null => this.keyring.key(e);

  private integrity(e: IntegrityError, fields: Record<string, unknown> = {}): IntegrityError {
    this.counters.integrityErrors++;
    this.log.error('integrity violation', { object: e.object, reason: e.message, ...fields });
    return e;
  }

  /** Fetches and verifies an object; missing or bad objects are logged IntegrityErrors. */
  private loadObject(kind: Kind, ref: Ref, b: Binding): Promise<Buffer> {
    const name = idName(ref.id);
    return this.io.fetch(name, objectSize(MAX_PAYLOAD), (data) => {
      try {
        if (!data) throw new IntegrityError(name, 'missing (deleted by the provider?)');
        return openObject(this.keyLookup, kind, ref, b, data);
      } catch (e) {
        if (e instanceof IntegrityError) throw this.integrity(e, { ...b });
        throw e;
      }
    });
  }

  /**
   * Fetches and verifies chunk `index` of inode `owner` straight into a
   * buffer of its bucket. `quiet` (read-ahead) neither logs nor counts a
   * failure: the read that needs the chunk loads it again and reports.
   */
  private async loadChunkObject(
    owner: number,
    index: number,
    ref: Ref,
    quiet: boolean,
  ): Promise<{ buf: Buffer; len: number }> {
    const name = idName(ref.id);
    const b: Binding = { owner, level: 0, index };
    const dst = this.chunkBuf(CHUNK_SIZE);
    let len: number | null;
    try {
      len = await this.io.fetchOpen(name, this.keyLookup, Kind.Chunk, ref, b, dst);
      if (len === null) throw new IntegrityError(name, 'missing (deleted by the provider?)');
    } catch (e) {
      this.freeChunkBuf(dst);
      if (e instanceof IntegrityError && !quiet) throw this.integrity(e, { ...b });
      throw e;
    }
    // A short chunk keeps a buffer of its bucket (zero beyond its length,
    // as the cache requires), not a whole chunk's.
    const bucket = bucketFor(Math.max(len, 1));
    if (bucket >= CHUNK_SIZE) return { buf: dst, len };
    const buf = this.chunkBuf(bucket);
    dst.copy(buf, 0, 0, bucket);
    this.freeChunkBuf(dst);
    return { buf, len };
  }

  /** Seals `payload` as a new object; its put runs in the background (fs/objects.ts). */
  private writeObject(kind: Kind, b: Binding, payload: Buffer): Ref {
    if (this.readOnly) throw new FsErrno('EROFS');
    const epoch = this.sb.epoch;
    const ref = this.io.write(epoch, this.keyring.key(epoch)!, kind, b, payload);
    this.counters.objectsWritten++;
    return ref;
  }

  /** {@link writeObject} sealing on the threadpool: see ObjectIO.writeAsync for what waits on `sealed`. */
  private writeObjectAsync(
    kind: Kind,
    b: Binding,
    payload: Buffer,
  ): { ref: Ref; sealed: Promise<void> } {
    if (this.readOnly) throw new FsErrno('EROFS');
    const epoch = this.sb.epoch;
    const r = this.io.writeAsync(epoch, this.keyring.key(epoch)!, kind, b, payload);
    this.counters.objectsWritten++;
    return r;
  }

  // ---- inodes --------------------------------------------------------------

  private newInode(ino: number, mode: number, uid: number, gid: number, t: number): Inode {
    const rec: InodeRecord = {
      ino,
      mode,
      uid,
      gid,
      nlink: 1,
      rdev: 0,
      size: 0,
      atime: t,
      mtime: t,
      ctime: t,
      depth: 0,
      root: null,
      link: null,
    };
    const n = new Inode(rec, new RefTree(ino, this.treeHost, 0, null));
    n.dirty = true;
    this.inodes.set(ino, n);
    return n;
  }

  private loadPage(p: number): Promise<Set<number>> {
    const have = this.pages.get(p);
    if (have) return Promise.resolve(have);
    let pending = this.pageLoads.get(p);
    if (!pending) {
      pending = (async () => {
        const ref = await this.itable.get(p);
        const set = new Set<number>();
        if (ref) {
          const payload = await this.loadObject(Kind.InodePage, ref, {
            owner: 0,
            level: 0,
            index: p,
          });
          let recs: InodeRecord[];
          try {
            recs = decodePage(payload, p);
          } catch (e) {
            throw this.integrity(
              new IntegrityError(idName(ref.id), `inode page: ${(e as Error).message}`),
            );
          }
          for (const r of recs) {
            if (!this.inodes.has(r.ino))
              this.inodes.set(
                r.ino,
                new Inode(r, new RefTree(r.ino, this.treeHost, r.depth, r.root)),
              );
            set.add(r.ino);
          }
        }
        if (!this.pages.has(p)) this.pages.set(p, set);
        return this.pages.get(p)!;
      })().finally(() => this.pageLoads.delete(p));
      this.pageLoads.set(p, pending);
    }
    return pending;
  }

  private async inode(ino: number): Promise<Inode> {
    const have = this.inodes.get(ino);
    if (have) return have;
    const set = await this.loadPage(pageOf(ino));
    const n = this.inodes.get(ino);
    if (!n || !set.has(ino)) {
      throw this.integrity(
        new IntegrityError(
          `inode ${ino}`,
          'referenced by a directory but missing from its inode page',
        ),
      );
    }
    return n;
  }

  private async allocInode(mode: number, uid: number, gid: number): Promise<Inode> {
    const ino = this.sb.nextIno++;
    const set = await this.loadPage(pageOf(ino));
    const n = this.newInode(ino, mode, uid, gid, this.now());
    set.add(ino);
    this.dirtyPages.add(pageOf(ino));
    return n;
  }

  private touch(n: Inode, what: 'm' | 'c' | 'a' = 'm'): void {
    const t = this.now();
    if (what === 'm') n.rec.mtime = t;
    if (what !== 'a') n.rec.ctime = t;
    else n.rec.atime = t;
    this.markDirty(n);
  }

  private markDirty(n: Inode): void {
    n.dirty = true;
    this.dirtyPages.add(pageOf(n.rec.ino));
    this.scheduleCommit();
  }

  private async dirOf(n: Inode): Promise<Map<string, number>> {
    if (!n.isDir) throw new FsErrno('ENOTDIR');
    if (n.dir) return n.dir;
    const buf = Buffer.alloc(n.rec.size);
    await this.readData(n, buf, n.rec.size, 0);
    try {
      if (!n.dir) n.dir = decodeDir(buf);
    } catch (e) {
      throw this.integrity(
        new IntegrityError(`inode ${n.rec.ino}`, `directory listing: ${(e as Error).message}`),
      );
    }
    // The listing lives in n.dir from now on; its chunks need no cache.
    this.dropChunks(n, 0);
    return n.dir!;
  }

  private splitPath(path: string): string[] {
    if (!path.startsWith('/')) throw new FsErrno('EINVAL', `relative path ${path}`);
    const parts = path.split('/').filter((p) => p.length > 0);
    for (const p of parts) if (Buffer.byteLength(p) > MAX_NAME) throw new FsErrno('ENAMETOOLONG');
    return parts;
  }

  private async resolve(path: string): Promise<Inode> {
    let n = await this.inode(ROOT_INO);
    for (const part of this.splitPath(path)) {
      const dir = await this.dirOf(n);
      const ino = dir.get(part);
      if (ino === undefined) throw new FsErrno('ENOENT');
      n = await this.inode(ino);
    }
    return n;
  }

  private async resolveParent(path: string): Promise<{ parent: Inode; name: string }> {
    const parts = this.splitPath(path);
    const name = parts.pop();
    if (name === undefined) throw new FsErrno('EINVAL', 'the root has no parent');
    let n = await this.inode(ROOT_INO);
    for (const part of parts) {
      const ino = (await this.dirOf(n)).get(part);
      if (ino === undefined) throw new FsErrno('ENOENT');
      n = await this.inode(ino);
    }
    if (!n.isDir) throw new FsErrno('ENOTDIR');
    return { parent: n, name };
  }

  private handle(fh: number): Inode {
    const n = this.handles.get(fh);
    if (!n) throw new FsErrno('EBADF');
    return n;
  }

  private stat(n: Inode): Stat {
    const r = n.rec;
    return {
      ino: r.ino,
      mode: r.mode,
      uid: r.uid,
      gid: r.gid,
      nlink: r.nlink,
      rdev: r.rdev,
      size: (r.mode & S_IFMT) === S_IFLNK ? (r.link?.length ?? 0) : r.size,
      blocks: Math.ceil(r.size / 512),
      blksize: 4096,
      atime: r.atime,
      mtime: r.mtime,
      ctime: r.ctime,
    };
  }

  // ---- file data -----------------------------------------------------------

  private lruKey(n: Inode, i: number): string {
    return `${n.rec.ino}/${i}`;
  }

  /**
   * Chunk `i` of `n` from the cache, loading it if needed; null for a hole
   * (unless `forWrite`, which gets an empty chunk to fill). Call with the
   * volume lock held. `whole`: the caller overwrites all of it, so the
   * stored one need not be read.
   */
  private async chunk(
    n: Inode,
    i: number,
    forWrite: boolean,
    whole = false,
    use?: (c: Chunk | null) => void,
  ): Promise<Chunk | null> {
    // `use` runs synchronously when the chunk is in hand: between an await
    // and the caller's continuation another reader may evict it and its
    // buffer serve another chunk.
    const give = (c: Chunk | null): Chunk | null => {
      use?.(c);
      return c;
    };
    for (;;) {
      const c = n.chunks.get(i);
      if (c) {
        if (!c.dirty) {
          const k = this.lruKey(n, i);
          this.lru.delete(k);
          this.lru.set(k, [n, i]);
        }
        return give(c);
      }
      const load = n.loading.get(i);
      if (whole && forWrite && (!load || load.quiet)) return give(this.freshChunk(n, i));
      if (!load || !load.quiet) {
        const got = await (load ?? this.startLoad(n, i)).promise;
        // Loaded (and cached): serve it from the cache, or load again if a
        // reader evicted it in the meantime.
        if (got) continue;
        if (!forWrite) return give(null);
        return give(n.chunks.get(i) ?? this.freshChunk(n, i));
      }
      // Read-ahead is fetching it: take what it fetched if that is still
      // the file's chunk; otherwise (stale, failed) look again, and load it
      // ourselves, reporting any failure.
      const got = await load.promise;
      if (n.loading.get(i) === load) n.loading.delete(i);
      if (got && (await this.adopt(n, i, got, load.gen))) continue;
      if (!n.chunks.has(i) && !n.loading.has(i)) {
        const mine = await this.startLoad(n, i).promise;
        if (mine) continue;
        if (!forWrite) return give(null);
        return give(n.chunks.get(i) ?? this.freshChunk(n, i));
      }
    }
  }

  /** Loads chunk `i` into the cache (call with the lock held). */
  private startLoad(n: Inode, i: number): Load & { quiet: false } {
    const load: Load & { quiet: false } = { quiet: false, promise: Promise.resolve(null) };
    load.promise = (async (): Promise<Chunk | null> => {
      const ref = await n.tree.get(i);
      const again = n.chunks.get(i);
      if (again) return again;
      if (!ref) return null;
      const { buf, len } = await this.loadChunkObject(n.rec.ino, i, ref, false);
      const raced = n.chunks.get(i);
      if (!raced) return this.cacheChunk(n, i, buf, len);
      this.freeChunkBuf(buf);
      return raced;
    })().finally(() => {
      if (n.loading.get(i) === load) n.loading.delete(i);
    });
    n.loading.set(i, load);
    return load;
  }

  private freshChunk(n: Inode, i: number): Chunk {
    const fresh: Chunk = { buf: EMPTY, len: 0, dirty: false };
    n.chunks.set(i, fresh);
    return fresh;
  }

  /** A buffer for a chunk of `size` bytes (full-size ones come from the pool). */
  private chunkBuf(size: number): Buffer {
    return size === CHUNK_SIZE ? this.chunkPool.take(CHUNK_SIZE) : Buffer.allocUnsafe(size);
  }

  /** Gives back a chunk buffer nothing references any more. */
  private freeChunkBuf(buf: Buffer): void {
    if (buf.length === CHUNK_SIZE) this.chunkPool.give(buf);
  }

  private cacheChunk(n: Inode, i: number, buf: Buffer, len: number): Chunk {
    const c: Chunk = { buf, len, dirty: false };
    n.chunks.set(i, c);
    this.cleanBytes += buf.length;
    this.lru.set(this.lruKey(n, i), [n, i]);
    return c;
  }

  /**
   * Caches what read-ahead fetched, if it still is chunk `i`'s current object
   * (ids are never reused, so the same id is the same bytes) and no cache
   * drop came in between. Call with the lock held: the tree is then not in
   * the middle of a change.
   */
  private async adopt(n: Inode, i: number, got: Prefetched, gen: number): Promise<boolean> {
    if (n.chunks.has(i)) return true;
    if (got.taken || gen !== this.cacheGen || this.inodes.get(n.rec.ino) !== n) return false;
    const cur = await n.tree.get(i);
    if (n.chunks.has(i)) return true;
    if (got.taken || !cur || !cur.id.equals(got.ref.id) || gen !== this.cacheGen) return false;
    got.taken = true;
    this.cacheChunk(n, i, got.buf, got.len);
    return true;
  }

  /** After a read: a sequential reader gets the next chunks loaded in the background. */
  private scheduleReadAhead(n: Inode, pos: number, got: number): void {
    if (this.readAhead <= 0 || got <= 0) return;
    const end = pos + got;
    // Requests of one sequential reader arrive a little out of order (the
    // kernel sends its read-ahead in parallel), hence the slack.
    const sequential = Math.abs(pos - n.readEnd) <= 2 * CHUNK_SIZE;
    n.readEnd = sequential ? Math.max(n.readEnd, end) : end;
    if (!sequential) return;
    // Drop-behind: what a sequential reader left two chunks behind goes,
    // so a long stream recycles a few buffers instead of flushing the cache.
    const behind = Math.floor(pos / CHUNK_SIZE) - 2;
    const old = behind >= 0 ? n.chunks.get(behind) : undefined;
    if (old && !old.dirty && this.lru.delete(this.lruKey(n, behind))) {
      n.chunks.delete(behind);
      this.cleanBytes -= old.buf.length;
      this.freeChunkBuf(old.buf);
    }
    const first = Math.floor((end - 1) / CHUNK_SIZE) + 1;
    const last = Math.min(Math.floor((n.rec.size - 1) / CHUNK_SIZE), first + this.readAhead - 1);
    for (let j = first; j <= last; j++) {
      if (n.chunks.has(j) || n.loading.has(j)) continue;
      void this.lock.read(() => this.prefetch(n, j, last)).catch(() => {});
      return;
    }
  }

  /** Starts background loads of chunks first..last that are neither cached nor loading. */
  private async prefetch(n: Inode, first: number, last: number): Promise<void> {
    const gen = this.cacheGen;
    for (let j = first; j <= last; j++) {
      if (n.chunks.has(j) || n.loading.has(j)) continue;
      const ref = await n.tree.get(j);
      if (!ref || n.chunks.has(j) || n.loading.has(j)) continue;
      const load: Load & { quiet: true } = {
        quiet: true,
        gen,
        promise: this.loadChunkObject(n.rec.ino, j, ref, true).then(
          (r): Prefetched => ({ ref, buf: r.buf, len: r.len, taken: false }),
          () => null,
        ),
      };
      n.loading.set(j, load);
      void load.promise.then((fetched) => {
        if (n.loading.get(j) === load) n.loading.delete(j);
        if (!fetched) return;
        void this.lock
          .read(async () => {
            if (await this.adopt(n, j, fetched, gen)) this.evict();
            // Not wanted (stale, or a load by an operation won): only this
            // completion hands the buffer back, once nothing can adopt it.
            else if (!fetched.taken) {
              fetched.taken = true;
              this.freeChunkBuf(fetched.buf);
            }
          })
          .catch(() => {});
      });
    }
  }

  private makeDirty(n: Inode, i: number, c: Chunk): void {
    if (c.dirty) return;
    c.dirty = true;
    if (this.lru.delete(this.lruKey(n, i))) this.cleanBytes -= c.buf.length;
    this.dirtyBytesNow += c.buf.length;
    this.dirtyChunks.set(c, [n, i]);
  }

  private makeClean(c: Chunk): void {
    if (!c.dirty) return;
    c.dirty = false;
    this.dirtyBytesNow -= c.buf.length;
    this.dirtyChunks.delete(c);
  }

  private evict(): void {
    for (const [k, [n, i]] of this.lru) {
      if (this.cleanBytes <= this.cacheLimit) break;
      const c = n.chunks.get(i);
      this.lru.delete(k);
      if (c && !c.dirty) {
        n.chunks.delete(i);
        this.cleanBytes -= c.buf.length;
        this.freeChunkBuf(c.buf);
      }
    }
  }

  private dropChunks(n: Inode, from: number): void {
    for (const [i, c] of n.chunks) {
      if (i < from) continue;
      n.chunks.delete(i);
      if (c.dirty) this.makeClean(c);
      else if (this.lru.delete(this.lruKey(n, i))) this.cleanBytes -= c.buf.length;
      this.freeChunkBuf(c.buf);
    }
  }

  private async readData(n: Inode, buf: Buffer, len: number, pos: number): Promise<number> {
    const size = n.rec.size;
    if (pos >= size) return 0;
    const total = Math.min(len, size - pos);
    let done = 0;
    while (done < total) {
      const at = pos + done;
      const i = Math.floor(at / CHUNK_SIZE);
      const off = at % CHUNK_SIZE;
      const k = Math.min(CHUNK_SIZE - off, total - done);
      await this.chunk(n, i, false, false, (c) => {
        if (!c) buf.fill(0, done, done + k);
        else {
          const avail = Math.max(0, Math.min(k, c.buf.length - off));
          if (avail > 0) c.buf.copy(buf, done, off, off + avail);
          if (avail < k) buf.fill(0, done + avail, done + k);
        }
      });
      done += k;
    }
    this.evict();
    return total;
  }

  /**
   * Gives chunk `c` room up to `end` for a write of [off, end), keeping the
   * invariant that bytes beyond `len` are zero ([off, end) is about to be
   * overwritten, so it is left as it is).
   */
  private growChunk(n: Inode, i: number, c: Chunk, off: number, end: number): void {
    // A chunk written from half way up is on its way to full: give it its
    // full size at once rather than copying it again on every doubling.
    const size =
      end >= CHUNK_SIZE / 2
        ? CHUNK_SIZE
        : Math.min(CHUNK_SIZE, Math.max(end, 2 * c.buf.length, MIN_CHUNK_BUF));
    const grown = this.chunkBuf(size);
    c.buf.copy(grown, 0, 0, c.len);
    if (off > c.len) grown.fill(0, c.len, off);
    grown.fill(0, Math.max(end, c.len));
    if (c.dirty) this.dirtyBytesNow += size - c.buf.length;
    else if (this.lru.has(this.lruKey(n, i))) this.cleanBytes += size - c.buf.length;
    c.buf = grown;
  }

  private async writeData(n: Inode, data: Buffer, len: number, pos: number): Promise<number> {
    if (pos + len > Number.MAX_SAFE_INTEGER) throw new FsErrno('EFBIG');
    let done = 0;
    while (done < len) {
      const at = pos + done;
      const i = Math.floor(at / CHUNK_SIZE);
      const off = at % CHUNK_SIZE;
      const k = Math.min(CHUNK_SIZE - off, len - done);
      const c = (await this.chunk(n, i, true, off === 0 && k === CHUNK_SIZE))!;
      const end = off + k;
      if (c.buf.length < end) this.growChunk(n, i, c, off, end);
      data.copy(c.buf, off, done, done + k);
      if (end > c.len) c.len = end;
      this.makeDirty(n, i, c);
      done += k;
      // Write-behind: a chunk written up to its end is sealed and stored soon
      // (in the background) instead of piling up until the commit.
      // The chunk then leaves the cache: a sequential writer rarely reads
      // back at once, and recycling its buffer keeps the working set small.
      if (end === CHUNK_SIZE) this.sealSoon(n, i, c);
    }
    if (pos + len > n.rec.size) n.rec.size = pos + len;
    this.touch(n);
    if (this.dirtyBytesNow > this.dirtyLimit) await this.flushLocked();
    else this.evict();
    return len;
  }

  private async truncateData(n: Inode, size: number): Promise<void> {
    if (size > Number.MAX_SAFE_INTEGER) throw new FsErrno('EFBIG');
    const old = n.rec.size;
    if (size < old) {
      const keep = Math.ceil(size / CHUNK_SIZE);
      this.dropChunks(n, keep);
      await n.tree.truncate(keep, (r) => this.garbage.push(r));
      const off = size % CHUNK_SIZE;
      if (off !== 0) {
        const i = keep - 1;
        const c = await this.chunk(n, i, false);
        if (c && c.len > off) {
          c.buf.fill(0, off, c.len);
          c.len = off;
          this.makeDirty(n, i, c);
        }
      }
    }
    n.rec.size = size;
    this.touch(n);
  }

  /**
   * Seals dirty chunk `i` of `n` as a new object (put in the background) and
   * points the tree at it; `keep`: the chunk stays cached (clean), else it is
   * dropped (it reloads, verified, if it is read). A dropped chunk's buffer
   * belongs to the seal, so that one runs on the threadpool
   * (ObjectIO.writeAsync) and the buffer is recycled when it is done; a
   * kept one stays writable, so it is sealed here and now.
   */
  private async sealChunk(n: Inode, i: number, c: Chunk, keep = true): Promise<void> {
    let ref: Ref | null = null;
    let sealing: Promise<void> | null = null;
    if (c.len > 0) {
      const b: Binding = { owner: n.rec.ino, level: 0, index: i };
      const payload = c.buf.subarray(0, c.len);
      if (keep) ref = this.writeObject(Kind.Chunk, b, payload);
      else ({ ref, sealed: sealing } = this.writeObjectAsync(Kind.Chunk, b, payload));
    }
    const old = await n.tree.get(i);
    if (old) this.garbage.push(old);
    await n.tree.set(i, ref);
    this.makeClean(c);
    if (c.len === 0 || !keep) {
      // Only the cache's own chunk hands its buffer back (a chunk dropped
      // meanwhile had it freed already); with a seal running, once it is done.
      if (n.chunks.get(i) !== c) return;
      n.chunks.delete(i);
      const buf = c.buf;
      if (sealing)
        sealing.then(
          () => this.freeChunkBuf(buf),
          () => {},
        );
      else this.freeChunkBuf(buf);
      return;
    }
    this.cleanBytes += c.buf.length;
    this.lru.set(this.lruKey(n, i), [n, i]);
  }

  /**
   * Seals a full chunk right after the current operation has answered: the
   * kernel hands over a writer's next request meanwhile, so the sealing
   * overlaps with that hand-off instead of delaying this reply (a
   * sequential writer waits for each reply, libfuse 2 has no writeback
   * cache). Under the lock, and only if the chunk is still this one and
   * still dirty: a flush or commit in between sealed it already, a later
   * write only changed what gets sealed.
   */
  private sealSoon(n: Inode, i: number, c: Chunk): void {
    if (this.sealQueued.has(c)) return;
    this.sealQueued.add(c);
    setImmediate(() => {
      void this.lock
        .write(async () => {
          this.sealQueued.delete(c);
          if (this.deleted.has(n) || n.chunks.get(i) !== c || !c.dirty || this.failed) return;
          await this.sealChunk(n, i, c, false);
        })
        .catch((e: unknown) => this.log.warn('write-behind seal failed', { error: String(e) }));
    });
  }

  /** Seals every dirty chunk (bounding memory; the puts run in the background). */
  private async flushLocked(): Promise<void> {
    for (const [c, [n, i]] of [...this.dirtyChunks]) {
      // Deleted inodes' chunks are dropped by the commit, not stored.
      if (this.deleted.has(n)) continue;
      if (c.dirty && n.chunks.get(i) === c) await this.sealChunk(n, i, c);
    }
    this.evict();
  }

  // ---- commit --------------------------------------------------------------

  private scheduleCommit(): void {
    if (this.timer || this.interval <= 0 || this.readOnly) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.commit().catch((e) => this.log.error('background commit failed', { error: String(e) }));
    }, this.interval);
    this.timer.unref();
  }

  /**
   * Makes every change so far durable (fsync semantics for the whole volume).
   * The new tree is sealed under the write lock; storing and syncing it, the
   * superblock, the anchor and the deletions then run while operations
   * continue (docs/storage.md, "Commit protocol").
   */
  commit(clean = false): Promise<void> {
    const run = (): Promise<void> =>
      this.lock.write(() => this.snapshotLocked(clean)).then((s) => s.durable);
    const p = this.commitQueue.then(run, run);
    this.commitQueue = p.catch(() => {});
    return p;
  }

  /** Waits for every commit in progress (their durable part too). */
  private async settled(): Promise<void> {
    await this.commitQueue;
    await this.persisting;
  }

  private get dirtyState(): boolean {
    return (
      this.dirtyPages.size > 0 ||
      this.deleted.size > 0 ||
      this.dirtyChunks.size > 0 ||
      this.itable.changed
    );
  }

  /** A whole commit, for callers that hold the write lock already. */
  private async commitLocked(clean: boolean): Promise<void> {
    const { durable } = await this.snapshotLocked(clean);
    await durable;
  }

  /**
   * Commit steps 1 (seal every dirty object, bottom-up, under fresh ids) and
   * the sealing of the next superblock; call with the write lock held. The
   * returned `durable` settles when {@link persist} has finished steps 2–5.
   */
  private async snapshotLocked(clean: boolean): Promise<{ durable: Promise<void> }> {
    if (this.failed) throw this.failedError();
    if (this.readOnly) return { durable: Promise.resolve() };
    if (!this.dirtyState && !clean && this.counters.commits > 0 && !(this.sb.flags & SB_CLEAN))
      return { durable: this.lastDurable };
    try {
      await this.flushLocked();
      // Tree nodes pin their children's tags: every threadpool seal must be
      // done before the first node is encoded.
      await this.io.sealed();
      for (const n of this.inodes.values()) {
        if (n.dirDirty && n.dir) {
          await n.tree.clear((r) => this.garbage.push(r));
          const data = encodeDir(n.dir);
          for (let i = 0, off = 0; off < data.length; i++, off += CHUNK_SIZE) {
            const part = data.subarray(off, Math.min(data.length, off + CHUNK_SIZE));
            await n.tree.set(
              i,
              this.writeObject(Kind.Chunk, { owner: n.rec.ino, level: 0, index: i }, part),
            );
          }
          n.rec.size = data.length;
          n.dirDirty = false;
          this.markDirty(n);
        }
      }
      for (const n of this.deleted) {
        this.dropChunks(n, 0);
        await n.tree.clear((r) => this.garbage.push(r));
        this.pages.get(pageOf(n.rec.ino))?.delete(n.rec.ino);
        this.dirtyPages.add(pageOf(n.rec.ino));
        this.inodes.delete(n.rec.ino);
      }
      this.deleted.clear();
      for (const n of this.inodes.values()) {
        if (n.tree.changed) {
          await n.tree.commit();
          n.rec.depth = n.tree.depth;
          n.rec.root = n.tree.root;
          this.markDirty(n);
        }
      }
      for (const p of [...this.dirtyPages].sort((a, b) => a - b)) {
        const set = await this.loadPage(p);
        const recs = [...set].sort((a, b) => a - b).map((ino) => this.inodes.get(ino)!.rec);
        const old = await this.itable.get(p);
        if (old) this.garbage.push(old);
        const ref = recs.length
          ? this.writeObject(Kind.InodePage, { owner: 0, level: 0, index: p }, encodePage(recs))
          : null;
        await this.itable.set(p, ref);
        for (const ino of set) this.inodes.get(ino)!.dirty = false;
      }
      this.dirtyPages.clear();
      await this.itable.commit();
      const next: Superblock = {
        ...this.sb,
        flags: clean ? SB_CLEAN : 0,
        version: this.sb.version + 1n,
        itableDepth: this.itable.depth,
        itableRoot: this.itable.root,
      };
      const epoch = next.epoch;
      const { data } = sealObject(
        epoch,
        this.keyring.key(epoch)!,
        Kind.Superblock,
        this.volumeId,
        SB_BINDING,
        encodeSuperblock(next),
      );
      // Everything sealed so far belongs to this commit; what operations do
      // from here on belongs to the next one.
      const batch = this.io.takeBatch();
      const garbage = this.garbage;
      this.garbage = [];
      this.sb = next;
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = null;
      }
      // Commits become durable in the order they were sealed. The deletions
      // of step 5 follow in the background: the commit is durable before
      // them, and close() waits for them.
      const durable = this.persisting.then(() => this.persist(batch, data, next));
      const cleaned = durable.then(() => this.deleteGarbage(garbage));
      this.lastDurable = durable;
      this.persisting = cleaned.catch(() => {});
      return { durable };
    } catch (e) {
      if (!(e instanceof FsErrno) && !(e instanceof IntegrityError)) this.fail(e as Error);
      throw e;
    }
  }

  /**
   * What operations get once a commit failed: ENOSPC/EDQUOT when the
   * provider was full (the user's to act on: free space and remount),
   * EIO otherwise.
   */
  private failedError(): FsErrno {
    const code = (this.failed as { code?: unknown } | null)?.code;
    const why = `volume failed earlier: ${this.failed?.message ?? 'unknown'}`;
    return new FsErrno(code === 'ENOSPC' || code === 'EDQUOT' ? 'ENOSPC' : 'EIO', why);
  }

  /**
   * Before any change: EROFS on a read-only mount, and once a put or commit
   * failed, that failure's errno (docs/storage.md, "A full provider"), so
   * no change is accepted that could never become durable.
   */
  private assertWritable(): void {
    if (this.readOnly) throw new FsErrno('EROFS');
    if (this.failed) throw this.failedError();
    this.io.assertHealthy();
  }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    this.log.error('commit failed; the volume refuses further changes', { error: String(e) });
  }

  /**
   * Commit steps 2–4: wait for the batch's puts and make them durable, write
   * the superblock atomically and durably, advance the anchor. Runs without
   * the lock.
   */
  private async persist(batch: PutBatch, superblock: Buffer, next: Superblock): Promise<void> {
    try {
      if (this.failed) throw this.failedError();
      await batch.done;
      await this.store.sync(batch.names);
      await this.store.put('superblock', superblock, true);
      await this.anchor.write({ version: next.version, hash: superHash(superblock) });
      this.counters.commits++;
    } catch (e) {
      if (!(e instanceof FsErrno)) this.fail(e as Error);
      throw e;
    }
  }

  /**
   * Commit step 5: delete what the previous tree used, once the superblock
   * that no longer needs it is durable.
   */
  private async deleteGarbage(garbage: Ref[]): Promise<void> {
    const dead = garbage.map((r) => idName(r.id));
    try {
      await this.deleteAll(dead);
      this.counters.objectsDeleted += dead.length;
    } catch (e) {
      this.fail(e as Error);
      throw e;
    }
  }

  /** Deletes objects and temporaries that no committed tree references (after a crash). */
  private async sweep(): Promise<void> {
    const tmp = await this.store.sweepTemp();
    const dead = await this.unreferenced();
    await this.deleteAll(dead);
    this.log.info('swept orphans after an unclean shutdown', {
      objects: dead.length,
      temporaries: tmp,
    });
  }

  /** Names of the stored objects the committed tree does not reference (loads all metadata). */
  private async unreferenced(): Promise<string[]> {
    const live = await this.reachable();
    return (await this.store.list()).filter((name) => !live.has(name));
  }

  /** Deletes `names` 16 at a time: over NFS each delete is a round trip. */
  private deleteAll(names: string[]): Promise<void> {
    return inParallel(names, 16, (name) => this.store.delete(name));
  }

  /** Names of every object the committed tree references (loads all metadata). */
  async reachable(
    onLeaf?: (kind: Kind, ref: Ref, b: Binding) => Promise<void>,
  ): Promise<Set<string>> {
    const live = new Set<string>();
    const add = (r: Ref): void => {
      live.add(idName(r.id));
    };
    const pages: number[] = [];
    await this.itable.walk(
      (r, i) => {
        add(r);
        pages.push(i);
      },
      (r) => add(r),
    );
    for (const p of pages) {
      const set = await this.loadPage(p);
      for (const ino of set) {
        const n = this.inodes.get(ino)!;
        await n.tree.walk(
          async (r, i) => {
            add(r);
            if (onLeaf) await onLeaf(Kind.Chunk, r, { owner: ino, level: 0, index: i });
          },
          (r) => add(r),
        );
      }
    }
    return live;
  }

  /**
   * Verifies every object the volume references, walking the tree from the
   * root directory; reports each damaged object with the path it serves.
   * Caches are bypassed (dropped first), so everything is read and checked.
   */
  async check(): Promise<CheckReport> {
    await this.settled();
    await this.dropCaches();
    return this.lock.write(async () => {
      const rep: CheckReport = {
        objects: 0,
        files: 0,
        dirs: 0,
        symlinks: 0,
        bytes: 0,
        damaged: [],
        orphans: 0,
        lost: 0,
      };
      const seen = new Set<number>();
      const damage = (path: string, e: unknown): void => {
        if (e instanceof IntegrityError)
          rep.damaged.push({ path, object: e.object, reason: e.message });
        else throw e;
      };
      const visit = async (ino: number, path: string): Promise<void> => {
        let n: Inode;
        try {
          n = await this.inode(ino);
        } catch (e) {
          return damage(path, e);
        }
        if (seen.has(ino)) {
          rep.damaged.push({
            path,
            object: `inode ${ino}`,
            reason: 'directory entry repeats an inode',
          });
          return;
        }
        seen.add(ino);
        const type = n.rec.mode & S_IFMT;
        if (type === S_IFLNK) rep.symlinks++;
        try {
          await n.tree.walk(
            async (r, i) => {
              rep.objects++;
              if (type !== S_IFDIR)
                await this.loadObject(Kind.Chunk, r, { owner: ino, level: 0, index: i });
            },
            () => rep.objects++,
          );
        } catch (e) {
          return damage(path, e);
        }
        if (type === S_IFDIR) {
          rep.dirs++;
          let dir: Map<string, number>;
          try {
            dir = await this.dirOf(n);
          } catch (e) {
            return damage(path, e);
          }
          for (const [name, child] of dir)
            await visit(child, path === '/' ? `/${name}` : `${path}/${name}`);
        } else if (type === S_IFREG) {
          rep.files++;
          rep.bytes += n.rec.size;
        }
      };
      const pages: number[] = [];
      try {
        await this.itable.walk(
          (_r, i) => {
            rep.objects++;
            pages.push(i);
          },
          () => rep.objects++,
        );
      } catch (e) {
        damage('(inode table)', e);
      }
      await visit(ROOT_INO, '/');
      for (const p of pages) {
        let set: Set<number>;
        try {
          set = await this.loadPage(p);
        } catch (e) {
          damage(`(inode page ${p})`, e);
          continue;
        }
        for (const ino of set) if (!seen.has(ino) && this.inodes.get(ino)!.open === 0) rep.lost++;
      }
      if (rep.damaged.length === 0) {
        rep.orphans = (await this.unreferenced()).length;
      }
      return rep;
    });
  }

  /** The store names of the objects that hold `path` (for tests and forensics). */
  locate(
    path: string,
  ): Promise<{ ino: number; page: string | null; nodes: string[]; chunks: string[] }> {
    return this.lock.read(async () => {
      const n = await this.resolve(path);
      const nodes: string[] = [];
      const chunks: string[] = [];
      await n.tree.walk(
        (r, i) => {
          chunks[i] = idName(r.id);
        },
        (r) => nodes.push(idName(r.id)),
      );
      const page = await this.itable.get(pageOf(n.rec.ino));
      return { ino: n.rec.ino, page: page ? idName(page.id) : null, nodes, chunks };
    });
  }

  /** How many stored refs (nodes, pages, chunks) are sealed under an epoch other than `epoch`. */
  async refsOutside(epoch: number): Promise<number> {
    let n = 0;
    const count = (r: Ref): void => {
      if (r.epoch !== epoch) n++;
    };
    const pages: number[] = [];
    await this.itable.walk((r, i) => {
      count(r);
      pages.push(i);
    }, count);
    for (const p of pages)
      for (const ino of await this.loadPage(p)) await this.inodes.get(ino)!.tree.walk(count, count);
    return n;
  }

  /** Commits, cleanly, and stops the timer. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    try {
      if (!this.readOnly && !this.failed) await this.commit(true);
      await this.settled();
    } finally {
      // Released even after a failed commit: the volume is then left to the
      // next opener's sweep, which is what a crash leaves too.
      await this.lease?.release();
      this.lease = null;
    }
  }

  /** Forgets every clean cached object (they reload and re-verify on demand). */
  dropCaches(): Promise<void> {
    return this.lock.write(async () => {
      // Read-ahead in flight must not refill the cache afterwards.
      this.cacheGen++;
      for (const [, [n, i]] of this.lru) {
        const c = n.chunks.get(i);
        if (c && !c.dirty) {
          n.chunks.delete(i);
          this.freeChunkBuf(c.buf);
        }
      }
      this.lru.clear();
      this.cleanBytes = 0;
      // Metadata too: whole pages whose inodes hold nothing unwritten.
      const busy = (n: Inode): boolean =>
        n.dirty ||
        n.dirDirty ||
        n.open > 0 ||
        n.tree.changed ||
        [...n.chunks.values()].some((c) => c.dirty);
      for (const [p, set] of this.pages) {
        if (this.dirtyPages.has(p)) continue;
        const inodes = [...set].map((ino) => this.inodes.get(ino)!);
        if (inodes.some(busy) || [...this.deleted].some((d) => pageOf(d.rec.ino) === p)) continue;
        for (const n of inodes) this.inodes.delete(n.rec.ino);
        this.pages.delete(p);
      }
      for (const n of this.inodes.values()) n.tree.dropClean();
      this.itable.dropClean();
    });
  }

  /** The committed superblock (version, epoch). */
  get superblock(): Readonly<Superblock> {
    return this.sb;
  }

  // ---- POSIX operations (paths as FUSE's high-level API gives them) --------

  getattr(path: string): Promise<Stat> {
    return this.lock.read(async () => this.stat(await this.resolve(path)));
  }

  fgetattr(fh: number): Promise<Stat> {
    return this.lock.read(async () => this.stat(this.handle(fh)));
  }

  /**
   * The attributes of an open file now, without waiting for the lock: only
   * for the instant after an operation on it resolved (the FUSE layer hands
   * them to the kernel with that operation's answer, fs/fuse-ops.ts).
   */
  handleStat(fh: number): Stat {
    return this.stat(this.handle(fh));
  }

  readdir(path: string): Promise<string[]> {
    return this.lock.read(async () => [...(await this.dirOf(await this.resolve(path))).keys()]);
  }

  readlink(path: string): Promise<string> {
    return this.lock.read(async () => {
      const n = await this.resolve(path);
      if ((n.rec.mode & S_IFMT) !== S_IFLNK || !n.rec.link) throw new FsErrno('EINVAL');
      return n.rec.link.toString('utf8');
    });
  }

  private async addEntry(path: string, make: () => Promise<Inode>): Promise<Inode> {
    return (await this.addEntryIn(path, make)).n;
  }

  /** {@link addEntry}, also handing back the parent folder. */
  private async addEntryIn(
    path: string,
    make: () => Promise<Inode>,
  ): Promise<{ n: Inode; parent: Inode }> {
    const { parent, name } = await this.resolveParent(path);
    return { n: await this.addEntryAt(parent, name, make), parent };
  }

  /** Adds `name` to the folder `parent`, made by `make`. */
  private async addEntryAt(
    parent: Inode,
    name: string,
    make: () => Promise<Inode>,
  ): Promise<Inode> {
    this.assertWritable();
    const dir = await this.dirOf(parent);
    if (dir.has(name)) throw new FsErrno('EEXIST');
    const n = await make();
    dir.set(name, n.rec.ino);
    parent.dirDirty = true;
    if (n.isDir) parent.rec.nlink++;
    this.touch(parent);
    return n;
  }

  /** A file (or, for mknod, another non-directory) of `mode`, not yet in any folder. */
  private makeFile(mode: number, uid: number, gid: number): () => Promise<Inode> {
    const type = mode & S_IFMT || S_IFREG;
    if (type === S_IFDIR || type === S_IFLNK) throw new FsErrno('EINVAL');
    return () => this.allocInode(type | (mode & 0o7777), uid, gid);
  }

  private makeDir(mode: number, uid: number, gid: number): () => Promise<Inode> {
    return async () => {
      const n = await this.allocInode(S_IFDIR | (mode & 0o7777), uid, gid);
      n.rec.nlink = 2;
      n.dir = new Map();
      n.dirDirty = true;
      return n;
    };
  }

  private makeLink(target: string, uid: number, gid: number): () => Promise<Inode> {
    const link = Buffer.from(target, 'utf8');
    if (link.length > MAX_LINK) throw new FsErrno('ENAMETOOLONG');
    return async () => {
      const n = await this.allocInode(S_IFLNK | 0o777, uid, gid);
      n.rec.link = link;
      return n;
    };
  }

  /** Creates and opens a regular file (or, via mknod, another non-directory). */
  create(path: string, mode: number, uid: number, gid: number): Promise<number> {
    return this.createIn(path, mode, uid, gid).then((r) => r.fh);
  }

  /**
   * {@link create}, resolving also to the parent folder's attributes right
   * after the entry was added: the FUSE layer hands them to the kernel,
   * which asks for them next (fs/patches, "parent carry").
   */
  createIn(
    path: string,
    mode: number,
    uid: number,
    gid: number,
  ): Promise<{ fh: number; parent: Stat }> {
    return this.lock.write(async () => {
      const { n, parent } = await this.addEntryIn(path, this.makeFile(mode, uid, gid));
      return { fh: this.openInode(n), parent: this.stat(parent) };
    });
  }

  mknod(path: string, mode: number, rdev: number, uid: number, gid: number): Promise<void> {
    return this.lock.write(async () => {
      const n = await this.addEntry(path, this.makeFile(mode, uid, gid));
      n.rec.rdev = rdev;
    });
  }

  /** Creates a directory; resolves to its attributes. */
  mkdir(path: string, mode: number, uid: number, gid: number): Promise<Stat> {
    return this.lock.write(async () => {
      return this.stat(await this.addEntry(path, this.makeDir(mode, uid, gid)));
    });
  }

  symlink(target: string, path: string, uid: number, gid: number): Promise<void> {
    return this.lock.write(async () => {
      await this.addEntry(path, this.makeLink(target, uid, gid));
    });
  }

  private openInode(n: Inode): number {
    const fh = this.nextFh++;
    this.handles.set(fh, n);
    n.open++;
    return fh;
  }

  open(path: string, truncate = false): Promise<number> {
    if (!truncate) return this.lock.read(async () => this.openInode(await this.resolve(path)));
    return this.lock.write(async () => {
      const n = await this.resolve(path);
      if (!n.isDir) await this.truncateData(n, 0);
      return this.openInode(n);
    });
  }

  release(fh: number): Promise<void> {
    // Shared lock: this only changes the handle table and the inode's open
    // count, which no reader looks at; commits (exclusive) see it whole.
    return this.lock.read(async () => {
      const n = this.handle(fh);
      this.handles.delete(fh);
      n.open--;
      if (n.open === 0 && n.rec.nlink === 0) this.deleted.add(n);
    });
  }

  read(fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    return this.lock.read(async () => {
      const n = this.handle(fh);
      if (n.isDir) throw new FsErrno('EISDIR');
      const got = await this.readData(n, buf, len, pos);
      this.scheduleReadAhead(n, pos, got);
      return got;
    });
  }

  async write(fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    // Backpressure: writers wait while too many puts are still running, and
    // wait outside the lock, so other operations go on meanwhile.
    if (this.io.crowded) await this.io.room();
    return this.lock.write(async () => {
      // Also makes a failed write-behind put this writer's error (its seal
      // ran after an earlier reply, see sealSoon).
      this.assertWritable();
      const n = this.handle(fh);
      if (n.isDir) throw new FsErrno('EISDIR');
      return this.writeData(n, buf, len, pos);
    });
  }

  /** Sets a file's size; resolves to the attributes after the change. */
  truncate(path: string, size: number): Promise<Stat> {
    return this.lock.write(async () => {
      this.assertWritable();
      const n = await this.resolve(path);
      if (n.isDir) throw new FsErrno('EISDIR');
      await this.truncateData(n, size);
      return this.stat(n);
    });
  }

  /** Sets an open file's size; resolves to the attributes after the change. */
  ftruncate(fh: number, size: number): Promise<Stat> {
    return this.lock.write(async () => {
      this.assertWritable();
      const n = this.handle(fh);
      if (n.isDir) throw new FsErrno('EISDIR');
      await this.truncateData(n, size);
      return this.stat(n);
    });
  }

  private unlinkInode(n: Inode): void {
    n.rec.nlink = n.isDir ? 0 : Math.max(0, n.rec.nlink - 1);
    n.rec.ctime = this.now();
    if (n.rec.nlink === 0 && n.open === 0) this.deleted.add(n);
  }

  unlink(path: string): Promise<void> {
    return this.lock.write(async () => {
      const { parent, name } = await this.resolveParent(path);
      await this.unlinkAtInode(parent, name);
    });
  }

  private async unlinkAtInode(parent: Inode, name: string): Promise<void> {
    this.assertWritable();
    const dir = await this.dirOf(parent);
    const ino = dir.get(name);
    if (ino === undefined) throw new FsErrno('ENOENT');
    const n = await this.inode(ino);
    if (n.isDir) throw new FsErrno('EISDIR');
    dir.delete(name);
    parent.dirDirty = true;
    this.touch(parent);
    this.unlinkInode(n);
  }

  rmdir(path: string): Promise<void> {
    return this.lock.write(async () => {
      const { parent, name } = await this.resolveParent(path);
      await this.rmdirAtInode(parent, name);
    });
  }

  private async rmdirAtInode(parent: Inode, name: string): Promise<void> {
    this.assertWritable();
    const dir = await this.dirOf(parent);
    const ino = dir.get(name);
    if (ino === undefined) throw new FsErrno('ENOENT');
    const n = await this.inode(ino);
    if (!n.isDir) throw new FsErrno('ENOTDIR');
    if ((await this.dirOf(n)).size > 0) throw new FsErrno('ENOTEMPTY');
    dir.delete(name);
    parent.rec.nlink--;
    parent.dirDirty = true;
    this.touch(parent);
    this.unlinkInode(n);
  }

  rename(from: string, to: string): Promise<void> {
    return this.lock.write(async () => {
      const src = await this.resolveParent(from);
      const dst = await this.resolveParent(to);
      await this.renameAtInode(src, dst);
    });
  }

  private async renameAtInode(
    src: { parent: Inode; name: string },
    dst: { parent: Inode; name: string },
  ): Promise<void> {
    this.assertWritable();
    const sdir = await this.dirOf(src.parent);
    const ddir = await this.dirOf(dst.parent);
    const ino = sdir.get(src.name);
    if (ino === undefined) throw new FsErrno('ENOENT');
    const n = await this.inode(ino);
    if (src.parent === dst.parent && src.name === dst.name) return;
    if (n.isDir) {
      // A directory must not move below itself (the kernel checks too).
      for (let p: Inode = dst.parent; ;) {
        if (p === n) throw new FsErrno('EINVAL');
        if (p.rec.ino === ROOT_INO) break;
        const up = this.parentOf(p);
        // Not in memory: the kernel, which names folders by inode, made
        // the same check before it asked (vfs_rename under s_vfs_rename_mutex).
        if (!up) break;
        p = up;
      }
    }
    const targetIno = ddir.get(dst.name);
    if (targetIno !== undefined) {
      const t = await this.inode(targetIno);
      if (t.isDir) {
        if (!n.isDir) throw new FsErrno('EISDIR');
        if ((await this.dirOf(t)).size > 0) throw new FsErrno('ENOTEMPTY');
        dst.parent.rec.nlink--;
      } else if (n.isDir) throw new FsErrno('ENOTDIR');
      this.unlinkInode(t);
    }
    sdir.delete(src.name);
    ddir.set(dst.name, ino);
    if (n.isDir && src.parent !== dst.parent) {
      src.parent.rec.nlink--;
      dst.parent.rec.nlink++;
    }
    src.parent.dirDirty = true;
    dst.parent.dirDirty = true;
    this.touch(src.parent);
    this.touch(dst.parent);
    this.touch(n, 'c');
  }

  /**
   * The directory holding `n` (directories have exactly one parent), if its
   * listing is in memory: it always is when the path to `n` was resolved.
   */
  private parentOf(n: Inode): Inode | null {
    for (const d of this.inodes.values()) {
      if (d.dir) for (const ino of d.dir.values()) if (ino === n.rec.ino) return d;
    }
    return null;
  }

  /** Changes permission bits; resolves to the attributes after the change. */
  chmod(path: string, mode: number): Promise<Stat> {
    return this.lock.write(async () => {
      this.assertWritable();
      const n = await this.resolve(path);
      n.rec.mode = (n.rec.mode & S_IFMT) | (mode & 0o7777);
      this.touch(n, 'c');
      return this.stat(n);
    });
  }

  /** Changes owner and group; resolves to the attributes after the change. */
  chown(path: string, uid: number, gid: number): Promise<Stat> {
    return this.lock.write(async () => {
      this.assertWritable();
      const n = await this.resolve(path);
      // -1 (as u32) leaves a field unchanged, as chown(2) does.
      if (uid !== 0xffffffff && uid !== -1) n.rec.uid = uid;
      if (gid !== 0xffffffff && gid !== -1) n.rec.gid = gid;
      this.touch(n, 'c');
      return this.stat(n);
    });
  }

  /** Sets times in ms; null leaves one unchanged (UTIME_OMIT). Resolves to the attributes after. */
  utimens(path: string, atime: number | null, mtime: number | null): Promise<Stat> {
    return this.lock.write(async () => {
      this.assertWritable();
      const n = await this.resolve(path);
      if (atime !== null) n.rec.atime = atime;
      if (mtime !== null) n.rec.mtime = mtime;
      this.touch(n, 'c');
      return this.stat(n);
    });
  }

  // ---- POSIX operations by inode number (FUSE's low-level API) -----------
  //
  // fs/fuse-ll-ops.ts serves the kernel with these: the kernel names files by
  // the inode numbers lookups gave it, and the volume's numbers are never
  // reused (the superblock's nextIno only grows), so a number the kernel
  // still holds is that file or, once deleted and committed, no file at all
  // (ENOENT), never another one. No lookup counts need keeping.

  /** An inode the kernel may hold: ENOENT once it is gone. */
  private async held(ino: number): Promise<Inode> {
    const have = this.inodes.get(ino);
    if (have) return have;
    if (!Number.isSafeInteger(ino) || ino < ROOT_INO || ino >= this.sb.nextIno)
      throw new FsErrno('ENOENT');
    const set = await this.loadPage(pageOf(ino));
    const n = this.inodes.get(ino);
    if (!n || !set.has(ino)) throw new FsErrno('ENOENT');
    return n;
  }

  /** The inode of an open handle (`fh` ≥ 0) or else of `ino`. */
  private async target(ino: number, fh: number): Promise<Inode> {
    return fh >= 0 && this.handles.has(fh) ? this.handle(fh) : this.held(ino);
  }

  private static checkName(name: string): void {
    if (Buffer.byteLength(name) > MAX_NAME) throw new FsErrno('ENAMETOOLONG');
    if (name === '' || name === '.' || name === '..' || name.includes('/'))
      throw new FsErrno('EINVAL', `bad name ${JSON.stringify(name)}`);
  }

  /** The attributes of `name` in the folder `parent`. */
  lookup(parent: number, name: string): Promise<Stat> {
    return this.lock.read(async () => {
      Volume.checkName(name);
      const ino = (await this.dirOf(await this.held(parent))).get(name);
      if (ino === undefined) throw new FsErrno('ENOENT');
      return this.stat(await this.inode(ino));
    });
  }

  /** The attributes of `ino` (of the open handle `fh` if ≥ 0). */
  getattrIno(ino: number, fh = -1): Promise<Stat> {
    return this.lock.read(async () => this.stat(await this.target(ino, fh)));
  }

  readlinkIno(ino: number): Promise<string> {
    return this.lock.read(async () => {
      const n = await this.held(ino);
      if ((n.rec.mode & S_IFMT) !== S_IFLNK || !n.rec.link) throw new FsErrno('EINVAL');
      return n.rec.link.toString('utf8');
    });
  }

  /** The folder's entries now: names and their inode numbers, in the same order. */
  listIno(ino: number): Promise<{ names: string[]; inos: number[] }> {
    return this.lock.read(async () => {
      const dir = await this.dirOf(await this.held(ino));
      return { names: [...dir.keys()], inos: [...dir.values()] };
    });
  }

  /** Creates and opens a regular file; resolves to its handle and attributes. */
  createAt(
    parent: number,
    name: string,
    mode: number,
    uid: number,
    gid: number,
  ): Promise<{ fh: number; stat: Stat }> {
    return this.lock.write(async () => {
      Volume.checkName(name);
      const n = await this.addEntryAt(await this.held(parent), name, this.makeFile(mode, uid, gid));
      return { fh: this.openInode(n), stat: this.stat(n) };
    });
  }

  mknodAt(
    parent: number,
    name: string,
    mode: number,
    rdev: number,
    uid: number,
    gid: number,
  ): Promise<Stat> {
    return this.lock.write(async () => {
      Volume.checkName(name);
      const n = await this.addEntryAt(await this.held(parent), name, this.makeFile(mode, uid, gid));
      n.rec.rdev = rdev;
      return this.stat(n);
    });
  }

  mkdirAt(parent: number, name: string, mode: number, uid: number, gid: number): Promise<Stat> {
    return this.lock.write(async () => {
      Volume.checkName(name);
      return this.stat(
        await this.addEntryAt(await this.held(parent), name, this.makeDir(mode, uid, gid)),
      );
    });
  }

  symlinkAt(target: string, parent: number, name: string, uid: number, gid: number): Promise<Stat> {
    return this.lock.write(async () => {
      Volume.checkName(name);
      return this.stat(
        await this.addEntryAt(await this.held(parent), name, this.makeLink(target, uid, gid)),
      );
    });
  }

  unlinkAt(parent: number, name: string): Promise<void> {
    return this.lock.write(async () => this.unlinkAtInode(await this.held(parent), name));
  }

  rmdirAt(parent: number, name: string): Promise<void> {
    return this.lock.write(async () => this.rmdirAtInode(await this.held(parent), name));
  }

  renameAt(parent: number, name: string, newParent: number, newName: string): Promise<void> {
    return this.lock.write(async () => {
      Volume.checkName(newName);
      await this.renameAtInode(
        { parent: await this.held(parent), name },
        { parent: await this.held(newParent), name: newName },
      );
    });
  }

  openIno(ino: number): Promise<number> {
    return this.lock.read(async () => this.openInode(await this.held(ino)));
  }

  /**
   * Changes what `ch` names (FUSE's setattr: any of them at once, in one
   * step), on the open handle `fh` if ≥ 0; resolves to the attributes after.
   */
  setattr(ino: number, fh: number, ch: AttrChange): Promise<Stat> {
    return this.lock.write(async () => {
      const n = await this.target(ino, fh);
      this.assertWritable();
      if (ch.size !== undefined) {
        if (n.isDir) throw new FsErrno('EISDIR');
        await this.truncateData(n, ch.size);
      }
      if (ch.mode !== undefined) n.rec.mode = (n.rec.mode & S_IFMT) | (ch.mode & 0o7777);
      if (ch.uid !== undefined) n.rec.uid = ch.uid;
      if (ch.gid !== undefined) n.rec.gid = ch.gid;
      if (ch.atime !== undefined) n.rec.atime = ch.atime;
      if (ch.mtime !== undefined) n.rec.mtime = ch.mtime;
      if (
        ch.mode !== undefined ||
        ch.uid !== undefined ||
        ch.gid !== undefined ||
        ch.atime !== undefined ||
        ch.mtime !== undefined
      ) {
        n.rec.ctime = this.now();
        this.markDirty(n);
      }
      return this.stat(n);
    });
  }

  async statfs(): Promise<{
    bsize: number;
    frsize: number;
    blocks: number;
    bfree: number;
    bavail: number;
    files: number;
    ffree: number;
    favail: number;
    namemax: number;
  }> {
    const s = await this.store.statfs();
    return {
      bsize: 4096,
      frsize: 4096,
      blocks: Math.floor((s.blocks * s.bsize) / 4096),
      bfree: Math.floor((s.bfree * s.bsize) / 4096),
      bavail: Math.floor((s.bavail * s.bsize) / 4096),
      files: 1 << 30,
      ffree: (1 << 30) - this.inodes.size,
      favail: (1 << 30) - this.inodes.size,
      namemax: MAX_NAME,
    };
  }

  // ---- rekey ---------------------------------------------------------------

  /**
   * Starts the loads of a small file's chunks still under an old epoch, for
   * the rekey to find in flight when it reaches that file (REKEY_AHEAD_FILES).
   * A load is checked against the chunk's current ref when it lands, like
   * the rekey's own loads ahead, so a writer meanwhile costs only the fetch.
   */
  private prefetchSmallStale(ino: number, target: number): void {
    const n = this.inodes.get(ino);
    if (!n || n.isDir || n.rec.size === 0 || n.rec.size > REKEY_WINDOW * CHUNK_SIZE) return;
    const chunks = Math.ceil(n.rec.size / CHUNK_SIZE);
    void (async () => {
      for (let i = 0; i < chunks; i++) {
        if (n.chunks.has(i) || n.loading.has(i)) continue;
        const ref = await n.tree.get(i);
        if (ref && ref.epoch !== target) this.rekeyLoadAhead(n, i);
      }
    })().catch(() => {});
  }

  /**
   * Starts loading chunk `i` unless it is cached or already loading; a
   * failure surfaces when the rekey awaits (or retries) the chunk.
   */
  private rekeyLoadAhead(n: Inode, i: number): void {
    if (!n.chunks.has(i) && !n.loading.has(i)) this.startLoad(n, i).promise.catch(() => {});
  }

  /**
   * Re-encrypts every object under the keyring's newest epoch, in batches so
   * the mount keeps serving between them. Safe to interrupt: each batch ends
   * in a commit, and a later call continues with what is left.
   */
  async rekey(progress: (done: number, total: number) => void = () => {}): Promise<void> {
    if (this.readOnly) throw new FsErrno('EROFS');
    const target = this.keyring.current;
    const pages: number[] = [];
    let total = 0;
    await this.lock.write(async () => {
      this.sb.epoch = target;
      await this.itable.walk(
        (r, i) => {
          pages.push(i);
          if (r.epoch !== target) total++;
        },
        (r) => {
          if (r.epoch !== target) total++;
        },
      );
      for (const p of pages) {
        for (const ino of await this.loadPage(p)) {
          await this.inodes.get(ino)!.tree.walk(
            (r) => {
              if (r.epoch !== target) total++;
            },
            (r) => {
              if (r.epoch !== target) total++;
            },
          );
        }
      }
    });
    let done = 0;
    progress(done, total);
    // Checkpoints of the re-encryption (to bound memory, and so a crash
    // resumes near where it stopped) overlap with the work after them: at
    // most one commit is still becoming durable while the next batch is
    // read and re-sealed (waiting for each one left the link idle). Commits
    // become durable in order, so a crash still resumes from a consistent
    // tree; the final commit below is awaited in full.
    let pending: Promise<void> = Promise.resolve();
    let resealed = 0;
    let lastCheckpoint = performance.now();
    const checkpoint = async (): Promise<void> => {
      lastCheckpoint = performance.now();
      const { durable } = await this.snapshotLocked(false);
      durable.catch(() => {}); // surfaced through `pending` below
      const prev = pending;
      pending = durable;
      await prev;
    };
    for (const p of pages) {
      const inos = await this.lock.read(async () => [...(await this.loadPage(p))]);
      // inos[1 .. ahead) have had their prefetch started.
      let ahead = 1;
      for (const [x, ino] of inos.entries()) {
        for (; ahead < Math.min(inos.length, x + 1 + REKEY_AHEAD_FILES); ahead++)
          this.prefetchSmallStale(inos[ahead]!, target);
        // A file is re-sealed in slices of REKEY_SLICE chunks, each under the
        // write lock: between slices the mount serves writers too (holding
        // the lock for a whole large file stalled them for seconds), and
        // every dirtyLimit bytes re-sealed end in a checkpoint, so a crash
        // resumes near where it stopped. The stale list is taken once; a
        // chunk rewritten since then is already under the new epoch and is
        // merely sealed again, one truncated away is skipped.
        let stale: number[] | null = null;
        let k = 0;
        let more = true;
        while (more) {
          more = await this.lock.write(async () => {
            const n = this.inodes.get(ino);
            if (!n) return false;
            if (!stale) {
              const found: number[] = [];
              await n.tree.walk((r, i) => {
                if (r.epoch !== target) found.push(i);
              });
              stale = found;
              if (n.isDir) {
                await this.dirOf(n);
                n.dirDirty = true;
                k = stale.length;
              }
            }
            const end = Math.min(stale.length, k + REKEY_SLICE);
            // Reads pipelined: up to REKEY_WINDOW loads run ahead of the one
            // awaited (sequential awaits left the disk or link idle between
            // objects); the re-sealed chunks' puts run in the background.
            for (; k < end; k++) {
              for (let a = k; a < Math.min(stale.length, k + REKEY_WINDOW); a++)
                this.rekeyLoadAhead(n, stale[a]!);
              const i = stale[k]!;
              const c = await this.chunk(n, i, false);
              // Re-sealed at once and dropped, like a writer's full chunk:
              // the seal runs on the threadpool, the next load meanwhile.
              if (c) {
                this.makeDirty(n, i, c);
                resealed += c.buf.length;
                await this.sealChunk(n, i, c, false);
              }
              // Backpressure as for writers: puts in flight stay bounded
              // (they settle without the lock).
              if (this.io.crowded) await this.io.room();
            }
            const last = k >= stale.length;
            if (last) {
              if (await n.tree.hasNodeOutside(target)) await n.tree.touchAll();
            }
            this.markDirty(n);
            if (resealed > this.dirtyLimit || this.dirtyBytesNow > this.dirtyLimit) {
              resealed = 0;
              await checkpoint();
            }
            return !last;
          });
          progress(done + k, total);
        }
        done += (stale as number[] | null)?.length ?? 0;
      }
      await this.lock.write(async () => {
        this.dirtyPages.add(p);
        done++;
        // A page of small files re-seals in tens of milliseconds: a commit
        // (a round trip for the superblock) after each one was half of that.
        if (performance.now() - lastCheckpoint >= REKEY_CHECKPOINT_MS) await checkpoint();
      });
      progress(Math.min(done, total), total);
    }
    await pending;
    await this.lock.write(async () => {
      await this.itable.touchAll();
      await this.commitLocked(false);
      // Anything still sealed under an old epoch (orphans of a crash) goes too.
      const stale = await this.refsOutside(target);
      if (stale > 0) throw new FsErrno('EIO', `rekey left ${stale} objects under old epochs`);
      // Earlier commits' deletions first (they need no lock), then the rest.
      await this.persisting;
      await this.deleteAll(await this.unreferenced());
      const key = this.keyring.key(target)!;
      await this.store.put(
        'volume',
        encodeVolumeHeader({
          volumeId: this.volumeId,
          epoch: target,
          check: keyCheck(key, this.volumeId, target),
        }),
        true,
      );
      this.keyring.dropBefore(target);
    });
    progress(total, total);
  }
}
