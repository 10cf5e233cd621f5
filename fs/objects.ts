/**
 * Sealed-object I/O of one volume, with write-behind (docs/storage.md,
 * "Speed"). A seal yields the object's {@link Ref} at once, so the tree can
 * point at an object before the store has it; the put then runs in the
 * background. A seal on the threadpool ({@link ObjectIO.writeAsync}) fills
 * the ref's tag in when it is done: commits wait for {@link ObjectIO.sealed}
 * before they encode any tag, and readers of the object wait for its seal.
 * A commit takes a {@link ObjectIO.takeBatch} and waits for it before making
 * anything durable, so the commit protocol is unchanged: every object a
 * superblock references is stored and synced before that superblock is
 * written. Until its put settles, an object is served from memory (and
 * verified like any other), so a reader never finds it missing. Loads
 * ({@link ObjectIO.fetchOpen}) open off the event loop too, in the same job
 * as the file read on a store of local files.
 */
import {
  type Binding,
  type Kind,
  type KeyLookup,
  type Ref,
  OPEN_LAYOUT,
  activeAead,
  bucketFor,
  idName,
  newId,
  objectSize,
  openJob,
  openObjectAsync,
  openObjectInto,
  sealJob,
  sealObjectAsync,
  sealObjectInto,
} from './format.js';
import { type ObjectStore, sysError } from './store.js';
import type { BufferPool } from './bufpool.js';
import { FsErrno } from './errors.js';
import { constants } from 'node:os';
import { type Logger, nullLogger } from '../admin/logger.js';

const { ENOENT } = constants.errno;

interface InFlight {
  data: Buffer;
  size: number;
  /** Resolves once `data` holds the sealed object (at once for a synchronous seal). */
  sealed: Promise<void>;
  done: Promise<void>;
}

/** What {@link ObjectIO.takeBatch} hands a commit. */
export interface PutBatch {
  /** Names put since the previous batch (to sync). */
  names: string[];
  /** Settles when every put started so far has; rejects if any failed. */
  done: Promise<void>;
}

export class ObjectIO {
  private inflight = new Map<string, InFlight>();
  private inflightBytes = 0;
  private unsynced: string[] = [];
  private failure: Error | null = null;
  private waiters: Array<() => void> = [];
  /** Objects sealed and handed to the store. */
  written = 0;
  /** Completed puts not yet covered by an early sync. */
  private settledNames: string[] = [];
  private settledBytes = 0;
  private earlySync: Promise<void> | null = null;
  /** Seals running on the threadpool ({@link writeAsync}). */
  private sealing = new Set<Promise<void>>();

  /**
   * @param limit bytes of puts in flight before {@link room} makes writers wait
   * @param earlySyncBytes after this many bytes of completed puts, start
   *   making them durable in the background (0 = never): the disk writes
   *   overlap with what follows, and the commit's sync finds little left
   */
  constructor(
    private store: ObjectStore,
    private pool: BufferPool,
    private limit: number,
    private earlySyncBytes = 0,
    private log: Logger = nullLogger,
  ) {}

  /**
   * Seals `payload` as a new object (fresh random id) under `epoch`/`key`
   * and starts storing it. Returns the ref that pins it.
   */
  write(epoch: number, key: Buffer, kind: Kind, binding: Binding, payload: Buffer): Ref {
    this.assertHealthy();
    const size = objectSize(bucketFor(payload.length));
    const buf = this.pool.take(size);
    const { ref } = sealObjectInto(buf, epoch, key, kind, newId(), binding, payload);
    this.start(idName(ref.id), buf, size, Promise.resolve());
    return ref;
  }

  /**
   * {@link write} with the sealing on the libuv threadpool: the ref comes
   * back at once, but its tag is valid only once `sealed` resolves, and
   * `payload` must stay untouched until then (the caller owns it again
   * afterwards). The put starts when the seal is done. Readers of the
   * object wait for the seal ({@link fetch}); a commit waits for every seal
   * through {@link sealed} before it writes any tag into a tree node.
   */
  writeAsync(
    epoch: number,
    key: Buffer,
    kind: Kind,
    binding: Binding,
    payload: Buffer,
  ): { ref: Ref; sealed: Promise<void> } {
    this.assertHealthy();
    const size = objectSize(bucketFor(payload.length));
    const buf = this.pool.take(size);
    const id = newId();
    const addon = activeAead();
    const job =
      this.store.objectPath && addon && sealJob(buf, epoch, key, kind, id, binding, payload);
    let ref: Ref;
    let sealed: Promise<void>;
    let put: Promise<void> | null = null;
    if (job) {
      // A store of local files: seal and write in one threadpool job, so
      // the tag is known when the object is written.
      ref = job.ref;
      const path = this.store.objectPath!(idName(ref.id));
      put = sealed = new Promise<void>((resolve, reject) =>
        addon.sealPutFile(path, false, ...job.args, job.size, (e) => {
          if (e !== 0) return reject(sysError(e, 'write', path));
          job.done();
          resolve();
        }),
      );
    } else ({ ref, sealed } = sealObjectAsync(buf, epoch, key, kind, id, binding, payload));
    this.sealing.add(sealed);
    const settled = sealed.then(
      () => {
        this.sealing.delete(sealed);
      },
      (e: Error) => {
        this.sealing.delete(sealed);
        this.failure ??= e;
        throw e;
      },
    );
    this.start(idName(ref.id), buf, size, settled, put);
    return { ref, sealed: settled };
  }

  /** Tracks an object from its seal to its stored copy; `put`: already storing it (else a store put follows the seal). */
  private start(
    name: string,
    buf: Buffer,
    size: number,
    sealed: Promise<void>,
    put: Promise<void> | null = null,
  ): void {
    const entry: InFlight = { data: buf, size, sealed, done: Promise.resolve() };
    this.inflight.set(name, entry);
    this.inflightBytes += size;
    entry.done = (put ?? sealed.then(() => this.store.put(name, buf.subarray(0, size)))).then(
      () => this.settle(name, entry),
      (e: Error) => {
        // The first failed put is the one worth reading; later ones follow from it.
        if (!this.failure)
          this.log.error('object put failed; the volume refuses further changes', {
            object: name,
            error: String(e),
          });
        this.failure ??= e;
        this.settle(name, entry);
      },
    );
    this.unsynced.push(name);
    this.written++;
  }

  /** Resolves once every seal started so far is done (rejects if one failed). */
  async sealed(): Promise<void> {
    while (this.sealing.size > 0) await Promise.all([...this.sealing]);
  }

  /** Throws what writers get once a put failed: ENOSPC for a full provider (docs/storage.md), else EIO. */
  assertHealthy(): void {
    if (!this.failure) return;
    const code = (this.failure as { code?: unknown }).code;
    throw new FsErrno(
      code === 'ENOSPC' || code === 'EDQUOT' ? 'ENOSPC' : 'EIO',
      `an earlier put failed: ${this.failure.message}`,
    );
  }

  private settle(name: string, entry: InFlight): void {
    this.inflight.delete(name);
    this.inflightBytes -= entry.size;
    this.pool.give(entry.data);
    if (this.earlySyncBytes > 0) {
      this.settledNames.push(name);
      this.settledBytes += entry.size;
      if (this.settledBytes >= this.earlySyncBytes && !this.earlySync) this.syncEarly();
    }
    if (this.inflightBytes <= this.limit || this.failure) {
      const w = this.waiters;
      this.waiters = [];
      for (const wake of w) wake();
    }
  }

  /**
   * Best effort: a failure here changes nothing, as every commit still syncs
   * its whole batch before it writes a superblock.
   */
  private syncEarly(): void {
    const names = this.settledNames;
    this.settledNames = [];
    this.settledBytes = 0;
    this.earlySync = this.store
      .sync(names)
      .catch(() => {})
      .finally(() => {
        this.earlySync = null;
      });
  }

  /** Resolves once no more than the limit is in flight (writers wait here: backpressure). */
  async room(): Promise<void> {
    while (this.inflightBytes > this.limit && !this.failure)
      await new Promise<void>((r) => this.waiters.push(r));
  }

  /** True while writers should wait in {@link room}. */
  get crowded(): boolean {
    return this.inflightBytes > this.limit && !this.failure;
  }

  /** Bytes of puts in flight now. */
  get pendingBytes(): number {
    return this.inflightBytes;
  }

  /** The first put failure, if any (the volume then refuses changes). */
  get failed(): Error | null {
    return this.failure;
  }

  /** Hands the names put so far to a commit, with a promise of all their puts. */
  takeBatch(): PutBatch {
    const names = this.unsynced;
    this.unsynced = [];
    // The commit syncs all of these; early syncs start counting afresh.
    this.settledNames = [];
    this.settledBytes = 0;
    const pending = [...this.inflight.values()].map((e) => e.done);
    return {
      names,
      done: Promise.all(pending).then(() => {
        if (this.failure) throw this.failure;
      }),
    };
  }

  /**
   * Fetches the stored bytes of `name` (at most `maxSize` are accepted; a
   * longer blob arrives as `maxSize + 1` bytes) and passes them to `use`;
   * null = no such object. The buffer is reused once `use` (or the promise
   * it returns) settles. An object whose put is in flight comes from memory
   * (`fromMemory`): that buffer is only safe to read synchronously, as the
   * put's completion recycles it.
   */
  async fetch<T>(
    name: string,
    maxSize: number,
    use: (data: Buffer | null, fromMemory: boolean) => T | Promise<T>,
  ): Promise<T> {
    const f = this.inflight.get(name);
    if (f) {
      // Its buffer is given back only when the put settles, which is never
      // before the seal plus a store round trip: it is still ours here.
      await f.sealed;
      if (this.inflight.get(name) === f) return use(f.data.subarray(0, f.size), true);
    }
    if (!this.store.getInto) {
      const data = await this.store.get(name);
      return use(data && data.length > maxSize ? data.subarray(0, maxSize + 1) : data, false);
    }
    const buf = this.pool.take(maxSize + 1);
    try {
      const n = await this.store.getInto(name, buf);
      return await use(n === null ? null : buf.subarray(0, n), false);
    } finally {
      this.pool.give(buf);
    }
  }

  /**
   * Fetches object `name` and opens it as `ref` pins it into `dst` (which
   * must hold the largest bucket accepted: its length bounds the object),
   * off the event loop: a store of local files reads and opens it in one
   * threadpool job; others fetch, then open on the threadpool. Resolves to
   * the payload length, or null when the object does not exist; an object
   * that fails verification is an IntegrityError (dst wiped).
   */
  async fetchOpen(
    name: string,
    keys: KeyLookup,
    kind: Kind,
    ref: Ref,
    binding: Binding,
    dst: Buffer,
  ): Promise<number | null> {
    const max = objectSize(dst.length);
    const addon = activeAead();
    if (!this.inflight.has(name) && this.store.objectPath && addon) {
      const job = openJob(keys, kind, ref, binding);
      const path = this.store.objectPath(name);
      const buf = this.pool.take(max + 1);
      try {
        const got = await new Promise<[number, boolean] | null>((resolve, reject) =>
          addon.getOpenFile(
            path,
            buf,
            job.key,
            ref.id,
            job.info,
            job.aadRest,
            ...OPEN_LAYOUT,
            dst,
            job.trailer,
            (e, n, ok) => {
              if (e === 0) resolve([n, ok]);
              else if (e === ENOENT) resolve(null);
              else reject(sysError(e, 'read', path));
            },
          ),
        );
        if (!got) return null;
        return job.finish(buf.subarray(0, got[0]), got[1], dst);
      } finally {
        this.pool.give(buf);
      }
    }
    return this.fetch(name, max, (data, fromMemory) => {
      if (!data) return null;
      // The bytes of an in-flight put may be recycled once it settles: open those at once.
      if (fromMemory) return openObjectInto(keys, kind, ref, binding, data, dst);
      return openObjectAsync(keys, kind, ref, binding, data, dst);
    });
  }
}
