/**
 * The {@link ObjectStore} over the built-in NFSv3 client: the volume lives
 * at the root of an NFS export, laid out exactly like {@link DirStore}'s
 * (`volume`, `superblock`, `objects/<32 hex>`), so a second NFS client (or
 * the provider's own folder) sees the same opaque objects.
 *
 * put (always durable, RFC 1813 §3.3.7 / §3.3.21):
 *   CREATE (UNCHECKED: the name is ours alone, so a retransmitted CREATE is
 *   harmless) → WRITE UNSTABLE pieces, pipelined → COMMIT → compare the
 *   COMMIT verifier with every WRITE's: a different one means the server
 *   restarted and may have lost unstable data, so the data is written and
 *   committed again. An object that fits one WRITE goes as one FILE_SYNC
 *   WRITE instead of WRITE + COMMIT (stable when answered; one round trip
 *   less).
 *   `volume`, `superblock` and `lease` are replaced atomically: created as
 *   `.tmp-NAME-RANDOM`, committed, then RENAMEd over NAME, so the name never
 *   points at data the server has not made stable. Objects are written in
 *   place under their final name (as {@link DirStore} does): their ids are
 *   fresh and never reused, and no superblock references one before its put
 *   completed (stable), so a put torn by a crash leaves an unreferenced
 *   object that the next mount sweeps — one RENAME round trip saved per
 *   object. Either way every put is durable and {@link NfsStore.sync} has
 *   nothing left to do.
 *
 * Handles: the export root's comes from MOUNT, `objects/`'s from LOOKUP;
 * both are cached. NFS3ERR_STALE/BADHANDLE on any step drops the cache (a
 * stale root is MOUNTed again) and the whole operation runs once more with
 * fresh handles; a name that is gone then answers as missing.
 *
 * Retransmitted non-idempotent calls (after a reconnect, the server's
 * duplicate-request cache may have been lost in a restart): REMOVE of a name
 * that is then missing succeeded; RENAME whose source is then missing
 * succeeded if NAME now has the temporary file's fileid.
 */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { DirStore, type ObjectStore, type StoreStat } from './store.js';
import { Nfs3Client, type Nfs3Options } from './nfs/nfs3.js';
import { NFS3, NfsError, isNfsStatus } from './nfs/errors.js';
import { CREATE_MODE, FTYPE, STABLE, readReplyLen, type Fattr } from './nfs/nfs3-wire.js';
import { BufferPool } from './bufpool.js';
import { isNfsUrl, parseNfsUrl, formatNfsUrl } from './nfs/url.js';
import { type Logger, nullLogger } from '../admin/logger.js';

const OBJ_NAME = /^[0-9a-f]{32}$/;
const SPECIAL = new Set(['volume', 'superblock', 'lease']);
const OBJECTS = 'objects';
const TMP_PREFIX = '.tmp-';
/**
 * Largest READ/WRITE we issue, whatever the server offers (bounded memory per
 * call); 2 MiB moves the largest object (1 MiB bucket + 44 bytes) in one call.
 */
export const MAX_IO = 2 << 20;
/** A put whose verifier keeps changing (a server restarting over and over) gives up after this many writes. */
const MAX_REWRITES = 5;
/** Stale-handle retries of one operation. */
const STALE_RETRIES = 2;
/** Entries left in a directory that is still "empty" for `fs init`. */
const IGNORABLE = new Set(['lost+found']);
/** Reply buffers kept for reuse (a few in flight per read-ahead window). */
const REPLY_POOL_BYTES = 16 << 20;
/** Reply buffers come in sizes of this granularity, so objects of nearby sizes share them. */
const REPLY_CLASS = 64 << 10;
/** Object handles kept (about 100 bytes each). */
const HANDLE_CACHE = 100_000;

function checkName(name: string): void {
  if (!OBJ_NAME.test(name) && !SPECIAL.has(name))
    throw new Error(`invalid object name ${JSON.stringify(name)}`);
}

const isStale = (e: unknown): boolean =>
  isNfsStatus(e, NFS3.ERR_STALE) || isNfsStatus(e, NFS3.ERR_BADHANDLE);

/** Options of {@link NfsStore.open}. */
export interface NfsStoreOptions extends Nfs3Options {
  logger?: Logger;
  /**
   * Write objects that fit one WRITE with FILE_SYNC instead of UNSTABLE +
   * COMMIT (one round trip less per put; default true).
   */
  syncSmall?: boolean;
}

/** Counters beyond the RPC layer's. */
export interface NfsStoreCounters {
  puts: number;
  gets: number;
  rewrites: number;
  staleRetries: number;
  /** gets served from a cached handle (no LOOKUP) */
  cachedHandles: number;
}

/** An object store at the root of an NFSv3 export. */
export class NfsStore implements ObjectStore {
  readonly counters: NfsStoreCounters = {
    puts: 0,
    gets: 0,
    rewrites: 0,
    staleRetries: 0,
    cachedHandles: 0,
  };
  private objectsFh: Buffer | null = null;
  /**
   * Handles of objects (never `volume`/`superblock`, which are replaced by
   * rename), so a get is one READ instead of LOOKUP + READ. Object names are
   * never reused: a cached handle can only go stale (the object was deleted),
   * which the server says, and the get then looks the name up again.
   */
  private readonly handles = new Map<string, { fh: Buffer; size: number }>();
  /** READ reply buffers of {@link getInto}, reused: no garbage per object read. */
  private readonly replies = new BufferPool(REPLY_POOL_BYTES);
  private rsize = MAX_IO;
  private wsize = MAX_IO;
  private readonly log: Logger;
  private readonly syncSmall: boolean;

  private constructor(
    readonly url: string,
    readonly client: Nfs3Client,
    opts: NfsStoreOptions,
  ) {
    this.log = opts.logger ?? nullLogger;
    this.syncSmall = opts.syncSmall ?? true;
  }

  /** Mounts the export named by `url` (see fs/nfs/url.ts) and reads its limits. */
  static async open(url: string, opts: NfsStoreOptions = {}): Promise<NfsStore> {
    const target = parseNfsUrl(url);
    const client = await Nfs3Client.mount(target, opts);
    const s = new NfsStore(formatNfsUrl(target), client, opts);
    try {
      const info = await client.fsinfo();
      const floor = (n: number, mult: number): number =>
        mult > 1 ? Math.max(mult, n - (n % mult)) : n;
      s.rsize = floor(Math.min(MAX_IO, info.rtmax || MAX_IO), info.rtmult);
      s.wsize = floor(Math.min(MAX_IO, info.wtmax || MAX_IO), info.wtmult);
      if (s.rsize < 4096 || s.wsize < 4096)
        throw new Error(`${s.url}: server allows only ${s.rsize}/${s.wsize}-byte reads/writes`);
    } catch (e) {
      client.close();
      throw e;
    }
    return s;
  }

  /** Closes the connection. */
  close(): void {
    this.client.close();
  }

  /** Creates `objects/` of a new store. */
  async init(): Promise<void> {
    await this.retryStale('init', async () => {
      try {
        await this.client.mkdir(this.client.root, OBJECTS, { mode: 0o700 });
      } catch (e) {
        if (!isNfsStatus(e, NFS3.ERR_EXIST)) throw e;
        const l = await this.client.lookup(this.client.root, OBJECTS);
        const a = l.attr ?? (await this.client.getattr(l.fh));
        if (a.type !== FTYPE.DIR)
          throw new Error(`${this.url}: ${OBJECTS} exists and is not a directory`, { cause: e });
      }
    });
  }

  /** True when the export root holds nothing (but lost+found). */
  async isEmpty(): Promise<boolean> {
    const names = await this.retryStale('isEmpty', () => this.client.readdirplus(this.client.root));
    return names.every((e) => IGNORABLE.has(e.name));
  }

  /** The directory holding `name`. */
  private async dir(name: string): Promise<Buffer> {
    return SPECIAL.has(name) ? this.client.root : this.objectsDir();
  }

  private async objectsDir(): Promise<Buffer> {
    if (!this.objectsFh) {
      const l = await this.client.lookup(this.client.root, OBJECTS);
      this.objectsFh = l.fh;
    }
    return this.objectsFh;
  }

  /** Runs `op`; on a stale handle forgets the cached ones and runs it again. */
  private async retryStale<T>(what: string, op: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await op();
      } catch (e) {
        if (!isStale(e) || attempt >= STALE_RETRIES) throw e;
        this.counters.staleRetries++;
        this.log.info('stale NFS handle; looking up again', { op: what, error: String(e) });
        this.objectsFh = null;
        this.handles.clear();
        if (attempt > 0 || (await this.rootIsStale())) await this.client.remount();
      }
    }
  }

  private async rootIsStale(): Promise<boolean> {
    try {
      await this.client.getattr(this.client.root);
      return false;
    } catch (e) {
      if (isStale(e)) return true;
      throw e;
    }
  }

  private remember(name: string, fh: Buffer, size: number): void {
    if (SPECIAL.has(name)) return;
    if (this.handles.size >= HANDLE_CACHE) {
      const oldest = this.handles.keys().next().value;
      if (oldest !== undefined) this.handles.delete(oldest);
    }
    this.handles.set(name, { fh, size });
  }

  /** This store's counters and its NFS client's (RPC calls, retransmits, reconnects, JUKEBOX retries). */
  stats(): Record<string, number> {
    return { ...this.counters, ...this.client.counters };
  }

  async get(name: string): Promise<Buffer | null> {
    return this.readBlob(
      name,
      (fh, size) => this.readAll(fh, size),
      (data) => data.length,
    );
  }

  /**
   * {@link get} into the caller's buffer. A blob that fits one READ (every
   * data chunk object) arrives in a reply buffer of this store's, reused
   * from call to call, and is copied to `buf`: a 1 GiB rekey otherwise left
   * a fresh 256 KiB buffer per object to the garbage collector, whose major
   * collections then took about 40% of the mount daemon's CPU (docs/nfs.md,
   * Performance).
   */
  async getInto(name: string, buf: Buffer): Promise<number | null> {
    return this.readBlob(
      name,
      (fh, size) => this.readInto(fh, size, buf),
      (n, size) => (n < buf.length ? n : size),
    );
  }

  /**
   * Reads blob `name` with `readFile` by its cached handle, or looks it up
   * (null if missing) and caches its handle with the size `sizeOf` gives.
   */
  private async readBlob<T>(
    name: string,
    readFile: (fh: Buffer, size: number) => Promise<T>,
    sizeOf: (got: T, attrSize: number) => number,
  ): Promise<T | null> {
    checkName(name);
    this.counters.gets++;
    const known = this.handles.get(name);
    if (known) {
      try {
        const got = await readFile(known.fh, known.size);
        this.counters.cachedHandles++;
        return got;
      } catch (e) {
        if (!isStale(e)) throw e;
        this.handles.delete(name); // deleted meanwhile (by another client?): look it up
      }
    }
    return this.retryStale(`get ${name}`, async () => {
      let fh: Buffer;
      let attr: Fattr;
      try {
        const l = await this.client.lookup(await this.dir(name), name);
        fh = l.fh;
        attr = l.attr ?? (await this.client.getattr(fh));
      } catch (e) {
        if (isNfsStatus(e, NFS3.ERR_NOENT)) return null;
        throw e;
      }
      if (attr.type !== FTYPE.REG) throw new NfsError(NFS3.ERR_ISDIR, `get ${name}`);
      const got = await readFile(fh, attr.size);
      this.remember(name, fh, sizeOf(got, attr.size));
      return got;
    });
  }

  /** Reads a file of (expected) `size` bytes into `buf`; returns the bytes read (at most `buf.length`). */
  private async readInto(fh: Buffer, size: number, buf: Buffer): Promise<number> {
    if (size <= this.rsize && size < buf.length) {
      const want = Math.max(size, 1);
      const cls = Math.ceil(readReplyLen(want) / REPLY_CLASS) * REPLY_CLASS;
      const reply = this.replies.take(cls);
      // Given back only once the call succeeded: a call that failed may have
      // left a half-received record there (the client disowns it, but the
      // rare error path need not rely on that).
      const r = await this.client.read(fh, 0, want, reply);
      if (r.eof || r.count === 0) {
        const n = r.data.copy(buf, 0, 0, Math.min(r.count, buf.length));
        this.replies.give(reply);
        return n;
      }
      this.replies.give(reply);
      // Longer than its attributes said, or a short read: the general path.
    }
    const data = await this.readAll(fh, size);
    return data.copy(buf, 0, 0, Math.min(data.length, buf.length));
  }

  /** Reads a whole file of (expected) `size` bytes; tolerates short reads; stops at eof. */
  private async readAll(fh: Buffer, size: number): Promise<Buffer> {
    if (size <= this.rsize) {
      // One READ (every data chunk object): hand out the reply's own bytes
      // instead of copying them into a fresh buffer (page faults dominate).
      const r = await this.client.read(fh, 0, Math.max(size, 1));
      if (r.count === size && r.eof) return r.data;
      if (r.count === size) return this.readRest(fh, r.data);
      if (r.eof || r.count === 0) return r.data;
    }
    const out = Buffer.allocUnsafe(size);
    const pieces: Array<{ off: number; len: number }> = [];
    for (let off = 0; off < size; off += this.rsize)
      pieces.push({ off, len: Math.min(this.rsize, size - off) });
    let end = size;
    let eof = false;
    await Promise.all(
      pieces.map(async ({ off, len }) => {
        let at = off;
        while (at < off + len) {
          const r = await this.client.read(fh, at, off + len - at);
          r.data.copy(out, at);
          at += r.count;
          if (r.eof && at >= size) eof = true;
          if (r.eof || r.count === 0) {
            // Shorter than its attributes said: hand over what is there (the
            // caller's integrity check decides), never bytes we did not read.
            end = Math.min(end, at);
            break;
          }
        }
      }),
    );
    if (end < size) return out.subarray(0, end);
    return eof ? out : this.readRest(fh, out);
  }

  /** `head` was read from offset 0 without eof: the file is longer than its attributes said. */
  private async readRest(fh: Buffer, head: Buffer): Promise<Buffer> {
    const more: Buffer[] = [];
    let at = head.length;
    for (;;) {
      const r = await this.client.read(fh, at, this.rsize);
      if (r.count) more.push(Buffer.from(r.data));
      at += r.count;
      if (r.eof || r.count === 0) break;
    }
    return more.length ? Buffer.concat([head, ...more]) : head;
  }

  /** Always durable, whatever `durable` says (see the module comment). */
  async put(name: string, data: Buffer, durable = true): Promise<void> {
    void durable;
    checkName(name);
    this.counters.puts++;
    // Objects are written in place; the special names through a temporary
    // that is RENAMEd over them (see the module comment).
    const atomic = SPECIAL.has(name);
    const target = atomic ? `${TMP_PREFIX}${name}-${randomBytes(6).toString('hex')}` : name;
    await this.retryStale(`put ${name}`, async () => {
      const dir = await this.dir(name);
      const c = await this.client.create(dir, target, CREATE_MODE.UNCHECKED, {
        mode: 0o600,
        size: 0,
      });
      const fh = c.fh ?? (await this.client.lookup(dir, target)).fh;
      try {
        const fileid = atomic ? (c.attr ?? (await this.client.getattr(fh))).fileid : 0n;
        await this.writeDurably(fh, data, name);
        if (atomic) await this.renameInto(dir, target, name, fileid);
        // RENAME keeps the file: the temporary's handle is the object's.
        this.remember(name, fh, data.length);
      } catch (e) {
        // Neither a torn object nor a temporary stays behind.
        await this.client.remove(dir, target).catch(() => {});
        throw e;
      }
    });
  }

  /** WRITE UNSTABLE + COMMIT until the COMMIT verifier matches every WRITE's. */
  private async writeDurably(fh: Buffer, data: Buffer, name: string): Promise<void> {
    if (this.syncSmall && data.length > 0 && data.length <= this.wsize) {
      // One WRITE carries it all: ask for FILE_SYNC and save the COMMIT's
      // round trip. A FILE_SYNC reply means the data is on stable storage
      // (RFC 1813 §3.3.7), so no verifier can make it stale; a server that
      // answers with less falls through to COMMIT below.
      const w = await this.client.write(fh, 0, data, STABLE.FILE_SYNC);
      if (w.count === data.length && w.committed === STABLE.FILE_SYNC) return;
    }
    for (let round = 0; ; round++) {
      const verfs: Buffer[] = [];
      let allSync = true;
      const pieces: number[] = [];
      for (let off = 0; off < data.length; off += this.wsize) pieces.push(off);
      await Promise.all(
        pieces.map(async (off) => {
          const end = Math.min(off + this.wsize, data.length);
          let at = off;
          while (at < end) {
            const w = await this.client.write(fh, at, data.subarray(at, end), STABLE.UNSTABLE);
            if (w.count === 0 && at < end)
              throw new NfsError(NFS3.ERR_IO, `WRITE ${name}: server wrote 0 bytes`);
            verfs.push(w.verf);
            if (w.committed !== STABLE.FILE_SYNC) allSync = false;
            at += w.count;
          }
        }),
      );
      if (allSync && data.length > 0) return;
      const verf = await this.client.commit(fh, 0, 0);
      if (verfs.every((v) => v.equals(verf))) return;
      // The server's write verifier changed between our WRITEs and the
      // COMMIT: it restarted and may have dropped unstable data (RFC 1813
      // §3.3.21). Write it all again.
      this.counters.rewrites++;
      if (round + 1 >= MAX_REWRITES)
        throw new NfsError(
          NFS3.ERR_IO,
          `put ${name}: write verifier changed ${MAX_REWRITES} times (server restarting?)`,
        );
      this.log.warn('NFS write verifier changed; rewriting', { object: name, round });
    }
  }

  private async renameInto(dir: Buffer, tmp: string, name: string, fileid: bigint): Promise<void> {
    try {
      await this.client.rename(dir, tmp, dir, name);
    } catch (e) {
      // A RENAME that was done once already answers NOENT when retransmitted
      // to a server that lost its reply cache: NAME is then our file.
      if (!isNfsStatus(e, NFS3.ERR_NOENT)) throw e;
      const l = await this.client.lookup(dir, name).catch(() => null);
      const a = l ? (l.attr ?? (await this.client.getattr(l.fh))) : null;
      if (a?.fileid !== fileid) throw e;
    }
  }

  /** Every put is durable already (see the module comment). */
  async sync(names: string[]): Promise<void> {
    void names;
  }

  async delete(name: string): Promise<void> {
    checkName(name);
    this.handles.delete(name);
    await this.retryStale(`delete ${name}`, async () => {
      try {
        await this.client.remove(await this.dir(name), name);
      } catch (e) {
        if (!isNfsStatus(e, NFS3.ERR_NOENT)) throw e;
      }
    });
  }

  async list(): Promise<string[]> {
    return this.retryStale('list', async () => {
      const names: string[] = [];
      for (const e of await this.client.readdirplus(await this.objectsDir())) {
        if (!OBJ_NAME.test(e.name)) continue;
        names.push(e.name);
        // READDIRPLUS hands out every object's handle and size: keep them.
        if (e.fh && e.attr?.type === FTYPE.REG) this.remember(e.name, e.fh, e.attr.size);
      }
      return names;
    });
  }

  async sweepTemp(): Promise<number> {
    return this.retryStale('sweepTemp', async () => {
      let n = 0;
      for (const dir of [this.client.root, await this.objectsDir()]) {
        for (const e of await this.client.readdirplus(dir)) {
          if (!e.name.startsWith(TMP_PREFIX)) continue;
          try {
            await this.client.remove(dir, e.name);
          } catch (err) {
            if (!isNfsStatus(err, NFS3.ERR_NOENT)) throw err;
          }
          n++;
        }
      }
      return n;
    });
  }

  async statfs(): Promise<StoreStat> {
    const s = await this.retryStale('statfs', () => this.client.fsstat(this.client.root));
    const bsize = 4096;
    return {
      bsize,
      blocks: Math.floor(s.tbytes / bsize),
      bfree: Math.floor(s.fbytes / bsize),
      bavail: Math.floor(s.abytes / bsize),
    };
  }
}

/** A store that can also be created, checked for emptiness and closed. */
export type BackingStore = ObjectStore & {
  init(): Promise<void>;
  isEmpty(): Promise<boolean>;
  close(): void;
};

/**
 * The backend for `backing`: an `nfs://` URL gives an {@link NfsStore},
 * anything else is a directory ({@link DirStore}).
 */
export async function storeFor(backing: string, opts: NfsStoreOptions = {}): Promise<BackingStore> {
  if (isNfsUrl(backing)) return NfsStore.open(backing, opts);
  const d = new DirStore(resolve(backing));
  return Object.assign(d, {
    isEmpty: async () => {
      const { readdir } = await import('node:fs/promises');
      const names = await readdir(d.root).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return [] as string[];
        throw e;
      });
      return names.every((n) => IGNORABLE.has(n));
    },
    close: () => {},
  });
}

/** A backing argument as given: an `nfs://` URL stays as it is, a path becomes absolute. */
export function backingArg(s: string): string {
  return isNfsUrl(s) ? s : resolve(s);
}
