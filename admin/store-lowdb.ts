/**
 * The file-backed {@link Store}: lowdb 7 over one JSON file.
 *
 * lowdb's own JSONFile adapter writes through steno (temp file + rename),
 * which is atomic but neither fsyncs nor controls the file mode. The admin
 * database holds session hashes and channel keys (sealed to the admin's own
 * X25519 key, see keys-flat.ts), so this adapter writes the temp file with
 * mode 0600, fsyncs it, renames it over the database and fsyncs the folder:
 * after a crash the file is either the old or the new snapshot, never a mix,
 * and an acknowledged write survives power loss.
 *
 * A lock file (`<db>.lock`, holding the owner's pid) keeps two services from
 * writing the same database; a lock whose pid no longer runs is taken over.
 */
import { open, rename, readFile, unlink } from 'node:fs/promises';
import { openSync, closeSync, writeSync, readFileSync, unlinkSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { Low, type Adapter } from 'lowdb';
import {
  MapStore,
  StoreError,
  STORE_SNAPSHOT_VERSION,
  COLLECTIONS,
  type StoreSnapshot,
} from './store.js';

/** Atomic, durable, mode-0600 JSON file adapter for lowdb. */
export class SecureJsonFile<T> implements Adapter<T> {
  private readonly tmp: string;
  constructor(readonly path: string) {
    this.tmp = join(dirname(path), `.${basename(path)}.tmp`);
  }

  async read(): Promise<T | null> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new StoreError(`${this.path}: not valid JSON (corrupt database?)`);
    }
  }

  async write(data: T): Promise<void> {
    // Serialise synchronously, before any await, so the snapshot is consistent.
    const text = JSON.stringify(data);
    const fh = await open(this.tmp, 'w', 0o600);
    try {
      await fh.chmod(0o600); // an older temp file may have had another mode
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(this.tmp, this.path);
    const dir = await open(dirname(this.path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

function checkSnapshot(s: unknown, path: string): StoreSnapshot {
  const o = s as Partial<StoreSnapshot> | null;
  if (!o || typeof o !== 'object' || o.kind !== 'supernet-admin-db') {
    throw new StoreError(`${path}: not a Supernet admin database`);
  }
  if (o.v !== STORE_SNAPSHOT_VERSION) {
    throw new StoreError(
      `${path}: database version ${String(o.v)}, this service reads version ${STORE_SNAPSHOT_VERSION}`,
    );
  }
  if (typeof o.data !== 'object' || o.data === null) throw new StoreError(`${path}: missing data`);
  for (const k of Object.keys(o.data)) {
    if (!(COLLECTIONS as readonly string[]).includes(k)) {
      throw new StoreError(`${path}: unknown collection ${JSON.stringify(k)}`);
    }
    const c = (o.data as Record<string, unknown>)[k];
    if (typeof c !== 'object' || c === null || Array.isArray(c)) {
      throw new StoreError(`${path}: collection ${k} is not an object`);
    }
  }
  return o as StoreSnapshot;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Locks held by this process (a pid check cannot tell two opens in one process apart). */
const heldLocks = new Set<string>();

function takeLock(lockPath: string): void {
  if (heldLocks.has(lockPath)) {
    throw new StoreError(`${lockPath}: database is in use by process ${process.pid} (this one)`);
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      heldLocks.add(lockPath);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(lockPath, 'utf8').trim());
      // Our own pid without an entry in heldLocks is a leftover of an earlier process that had our pid.
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
        throw new StoreError(`${lockPath}: database is in use by process ${pid}`);
      }
      unlinkSync(lockPath); // stale: its owner is gone
    }
  }
  throw new StoreError(`${lockPath}: cannot take the database lock`);
}

/** {@link Store} backed by a lowdb JSON file. Open with {@link LowdbStore.open}. */
export class LowdbStore extends MapStore {
  private constructor(
    private readonly db: Low<StoreSnapshot>,
    private readonly lockPath: string | null,
  ) {
    super();
  }

  /** Opens (or creates) the database file at `path`, taking its lock unless `lock: false`. */
  static async open(path: string, opts: { lock?: boolean } = {}): Promise<LowdbStore> {
    const lockPath = opts.lock === false ? null : `${path}.lock`;
    if (lockPath) takeLock(lockPath);
    try {
      const empty: StoreSnapshot = {
        kind: 'supernet-admin-db',
        v: STORE_SNAPSHOT_VERSION,
        data: {},
      };
      const db = new Low<StoreSnapshot>(new SecureJsonFile<StoreSnapshot>(path), empty);
      await db.read();
      const store = new LowdbStore(db, lockPath);
      store.load(checkSnapshot(db.data, path));
      return store;
    } catch (err) {
      if (lockPath) {
        heldLocks.delete(lockPath);
        await unlink(lockPath).catch(() => undefined);
      }
      throw err;
    }
  }

  protected async persist(snapshot: StoreSnapshot): Promise<void> {
    this.db.data = snapshot;
    await this.db.write();
  }

  override async close(): Promise<void> {
    await super.close();
    if (this.lockPath) {
      await unlink(this.lockPath).catch(() => undefined);
      heldLocks.delete(this.lockPath);
    }
  }
}
