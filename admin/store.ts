/**
 * The storage seam of the admin service.
 *
 * Every piece of service state (Supernets, nodes, sessions, challenges,
 * channel epochs, VARP, audit) lives in a {@link Store}; the service keeps
 * only caches and open connections in memory, so a restart loses nothing.
 *
 * The model is a replicated key–value state machine, the shape most
 * control-plane databases have (a Raft-replicated log applied to a local copy):
 *
 * - `write(fn)` runs `fn` synchronously against the newest state, so it is
 *   atomic with respect to every other write without locks; if `fn` throws,
 *   its changes are undone. The returned promise settles only when the
 *   changes are durable (group commit: concurrent writes share one flush).
 * - `read(fn)` sees only DURABLE state. An answer is therefore never based on
 *   data that a crash could still lose — e.g. a channel key of epoch N that,
 *   after a restart, would be replaced by a different key of the same epoch.
 *
 * Values are JSON data, treated as immutable: replace a record with `put`,
 * never mutate what `get` returned (stores deep-freeze values to enforce it).
 * A later issue adds a distributed implementation behind the same interface.
 */

/** The collections the admin service uses. */
export const COLLECTIONS = [
  'meta',
  'supernets',
  'keys',
  'nodes',
  'leases',
  'sessions',
  'revoked',
  'challenges',
  'varp',
  'audit',
  /** Operator admissions (admin/grants.ts). */
  'grants',
  /** Storage volumes and roles (admin/storage-roles.ts). */
  'storage',
] as const;
export type Collection = (typeof COLLECTIONS)[number];

/** Read access inside {@link Store.read} or {@link Store.write}. */
export interface ReadTx {
  get<T>(col: Collection, key: string): T | undefined;
  /** All entries of `col` whose key starts with `prefix` (unordered). */
  list<T>(col: Collection, prefix?: string): Array<[string, T]>;
  /** Number of entries in `col`. */
  count(col: Collection): number;
}

/** Write access inside {@link Store.write}. */
export interface WriteTx extends ReadTx {
  put(col: Collection, key: string, value: unknown): void;
  delete(col: Collection, key: string): void;
  /** Marks a point to which {@link rollbackTo} can undo this transaction's later changes. */
  savepoint(): number;
  rollbackTo(savepoint: number): void;
}

export interface Store {
  read<T>(fn: (tx: ReadTx) => T): Promise<T>;
  write<T>(fn: (tx: WriteTx) => T): Promise<T>;
  /** Waits for outstanding writes and releases resources. */
  close(): Promise<void>;
}

/** The store cannot persist (disk full, I/O error); the service answers 503 until restarted. */
export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreError';
  }
}

/** What one flush makes durable: the changed keys with their new values (undefined = deleted). */
export interface PersistBatch {
  changes: Array<[Collection, string, unknown]>;
  /** JSON text of the whole state (a {@link StoreSnapshot}); call synchronously, before any await. */
  serialize(): string;
}

/** Serialised form of a whole store (what a file-backed store writes). */
export interface StoreSnapshot {
  kind: 'supernet-admin-db';
  v: number;
  data: Partial<Record<Collection, Record<string, unknown>>>;
}
export const STORE_SNAPSHOT_VERSION = 1;

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}

const SEP = '\u0000';
interface Undo {
  col: Collection;
  key: string;
  /** `undefined` = the key did not exist. */
  old: unknown;
}

/**
 * The shared engine of the in-memory and the file store: the newest state
 * ("head") in Maps, plus undo records of what changed since the last durable
 * flush, so readers can be answered from durable state without a second copy.
 */
export abstract class MapStore implements Store {
  protected readonly head = new Map<Collection, Map<string, unknown>>();
  /** Old values of keys changed since the flush now in progress started. */
  private pendingUndo = new Map<string, Undo>();
  /** Old values of keys in the flush now in progress (= durable values). */
  private flushingUndo = new Map<string, Undo>();
  private flushing: Promise<void> | null = null;
  private next: {
    promise: Promise<void>;
    resolve: () => void;
    reject: (e: unknown) => void;
  } | null = null;
  private failed: Error | null = null;
  private closed = false;

  constructor() {
    for (const c of COLLECTIONS) this.head.set(c, new Map());
  }

  /**
   * Makes one batch durable; called at most once at a time, synchronously
   * from the flush (so `batch.serialize()`, if called before the first
   * await, captures exactly the state the batch ends in).
   */
  protected abstract persist(batch: PersistBatch): Promise<void>;

  protected load(snapshot: StoreSnapshot): void {
    for (const c of COLLECTIONS) {
      const m = this.head.get(c)!;
      m.clear();
      const rec = snapshot.data[c];
      if (rec) for (const [k, v] of Object.entries(rec)) m.set(k, deepFreeze(v));
    }
  }

  /** Applies one journalled change while loading (no undo, no flush). */
  protected replay(col: Collection, key: string, value: unknown): void {
    const m = this.head.get(col)!;
    if (value === undefined) m.delete(key);
    else m.set(key, deepFreeze(value));
  }

  /** The whole state as the JSON text of a {@link StoreSnapshot}. */
  protected serialize(): string {
    const data: StoreSnapshot['data'] = {};
    for (const c of COLLECTIONS) data[c] = Object.fromEntries(this.head.get(c)!);
    return JSON.stringify({ kind: 'supernet-admin-db', v: STORE_SNAPSHOT_VERSION, data });
  }

  private durableGet(col: Collection, key: string): unknown {
    const k = col + SEP + key;
    const f = this.flushingUndo.get(k);
    if (f) return f.old;
    const p = this.pendingUndo.get(k);
    if (p) return p.old;
    return this.head.get(col)!.get(key);
  }

  private readonly durableTx: ReadTx = {
    get: <T>(col: Collection, key: string) => this.durableGet(col, key) as T | undefined,
    list: <T>(col: Collection, prefix = '') => {
      const out: Array<[string, T]> = [];
      const seen = new Set<string>();
      const visit = (key: string): void => {
        if (seen.has(key) || !key.startsWith(prefix)) return;
        seen.add(key);
        const v = this.durableGet(col, key);
        if (v !== undefined) out.push([key, v as T]);
      };
      const hasUndo = this.pendingUndo.size > 0 || this.flushingUndo.size > 0;
      for (const key of this.head.get(col)!.keys()) {
        if (!hasUndo) {
          if (key.startsWith(prefix)) out.push([key, this.head.get(col)!.get(key) as T]);
        } else visit(key);
      }
      if (hasUndo) {
        for (const u of this.flushingUndo.values()) if (u.col === col) visit(u.key);
        for (const u of this.pendingUndo.values()) if (u.col === col) visit(u.key);
      }
      return out;
    },
    count: (col: Collection) => {
      let n = this.head.get(col)!.size;
      if (this.pendingUndo.size === 0 && this.flushingUndo.size === 0) return n;
      n = 0;
      this.durableTx.list(col).forEach(() => n++);
      return n;
    },
  };

  async read<T>(fn: (tx: ReadTx) => T): Promise<T> {
    return fn(this.durableTx);
  }

  async write<T>(fn: (tx: WriteTx) => T): Promise<T> {
    if (this.closed) throw new StoreError('store is closed');
    if (this.failed) throw new StoreError(`store unavailable: ${this.failed.message}`);
    const undo: Undo[] = [];
    const addedPending: string[] = [];
    const record = (col: Collection, key: string): void => {
      const m = this.head.get(col)!;
      const old = m.get(key);
      undo.push({ col, key, old });
      const k = col + SEP + key;
      if (!this.pendingUndo.has(k)) {
        this.pendingUndo.set(k, { col, key, old });
        addedPending.push(k);
      }
    };
    const rollbackTo = (sp: number): void => {
      while (undo.length > sp) {
        const u = undo.pop()!;
        const m = this.head.get(u.col)!;
        if (u.old === undefined) m.delete(u.key);
        else m.set(u.key, u.old);
      }
    };
    const tx: WriteTx = {
      get: <T>(col: Collection, key: string) => this.head.get(col)!.get(key) as T | undefined,
      list: <T>(col: Collection, prefix = '') => {
        const out: Array<[string, T]> = [];
        for (const [k, v] of this.head.get(col)!) if (k.startsWith(prefix)) out.push([k, v as T]);
        return out;
      },
      count: (col: Collection) => this.head.get(col)!.size,
      put: (col, key, value) => {
        if (value === undefined) throw new TypeError('store: cannot put undefined');
        record(col, key);
        this.head.get(col)!.set(key, deepFreeze(value));
      },
      delete: (col, key) => {
        if (!this.head.get(col)!.has(key)) return;
        record(col, key);
        this.head.get(col)!.delete(key);
      },
      savepoint: () => undo.length,
      rollbackTo,
    };
    let result: T;
    try {
      result = fn(tx);
      if (result instanceof Promise)
        throw new TypeError('store: write functions must be synchronous');
    } catch (err) {
      rollbackTo(0);
      // Keys first touched by this transaction are back to their durable value.
      for (const k of addedPending) this.pendingUndo.delete(k);
      throw err;
    }
    if (undo.length === 0) {
      // Nothing changed, but the result may rest on writes not yet durable.
      const waiting = this.next?.promise ?? this.flushing;
      if (waiting) await waiting;
      return result;
    }
    await this.flush();
    return result;
  }

  /** Group commit: one persist in flight; everything written meanwhile goes into the next one. */
  private flush(): Promise<void> {
    if (!this.next) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.next = { promise, resolve, reject };
      if (!this.flushing) queueMicrotask(() => this.startFlush());
    }
    return this.next.promise;
  }

  private startFlush(): void {
    const batch = this.next;
    if (!batch) return;
    this.next = null;
    this.flushingUndo = this.pendingUndo;
    this.pendingUndo = new Map();
    const changes: PersistBatch['changes'] = [];
    for (const u of this.flushingUndo.values())
      changes.push([u.col, u.key, this.head.get(u.col)!.get(u.key)]);
    let persisting: Promise<void>;
    try {
      persisting = this.persist({ changes, serialize: () => this.serialize() });
    } catch (err) {
      this.fail(err, batch);
      return;
    }
    this.flushing = persisting.then(
      () => {
        this.flushingUndo = new Map();
        this.flushing = null;
        batch.resolve();
        if (this.next) this.startFlush();
      },
      (err: unknown) => {
        this.flushing = null;
        this.fail(err, batch);
      },
    );
  }

  private fail(err: unknown, batch: { reject: (e: unknown) => void }): void {
    // The in-memory head is now ahead of the disk; refuse further writes
    // rather than answer from state that may never become durable.
    this.failed = err instanceof Error ? err : new Error(String(err));
    const e = new StoreError(`store unavailable: ${this.failed.message}`);
    batch.reject(e);
    if (this.next) {
      this.next.reject(e);
      this.next = null;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing || this.next) {
      try {
        await (this.flushing ?? this.next?.promise);
      } catch {
        // Reported to the writer that was waiting.
      }
      if (this.failed) break;
    }
  }
}

/** A store held only in memory (unit tests). Writes still resolve asynchronously. */
export class MemoryStore extends MapStore {
  /** Number of persists so far (tests check batching). */
  persists = 0;
  protected async persist(): Promise<void> {
    this.persists++;
    await new Promise<void>((r) => setImmediate(r));
  }
}
