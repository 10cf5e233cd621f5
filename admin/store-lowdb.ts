/**
 * The file-backed {@link Store}: a lowdb 7 snapshot plus a write-ahead journal.
 *
 * Files (next to each other, in the service's mode-0700 state folder):
 *
 * - `db.json` — the whole state, written by lowdb through
 *   {@link SecureTextFile}: temp file (mode 0600) → fsync → rename → fsync
 *   of the folder. (lowdb's own JSONFile goes through steno, which renames
 *   atomically but neither fsyncs nor controls the mode.)
 * - `db.json.journal` — one line per flushed batch, `[[collection, key,
 *   value], …]` (a 2-element entry deletes), appended and fsynced before the
 *   writers are answered. A flush thus costs the size of its CHANGES, not of
 *   the database (~1.3 MB at 1,000 nodes). When the journal outgrows
 *   {@link COMPACT_MIN_BYTES} and the snapshot, the next flush writes a full
 *   snapshot instead and truncates the journal.
 * - `db.json.lock` — holds the owner's pid; keeps two services off one
 *   database (a lock whose pid no longer runs is taken over).
 *
 * Opening loads the snapshot and replays the journal. Replaying is
 * idempotent (each entry sets a final value), so a crash between writing a
 * snapshot and truncating the journal is harmless. A torn last line — a
 * batch whose append never completed, so nobody was answered — is dropped;
 * damage anywhere else is refused with the line number.
 */
import { open, rename, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { openSync, closeSync, writeSync, readFileSync, unlinkSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { Low, type Adapter } from 'lowdb';
import {
  MapStore,
  StoreError,
  STORE_SNAPSHOT_VERSION,
  COLLECTIONS,
  type Collection,
  type PersistBatch,
  type StoreSnapshot,
} from './store.js';

/** The journal is folded into the snapshot once it is larger than this and than the snapshot. */
export const COMPACT_MIN_BYTES = 1 << 20;

async function fsyncDir(path: string): Promise<void> {
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/**
 * Atomic, durable, mode-0600 text file adapter for lowdb. It carries the
 * database as JSON text: the store serialises and parses it itself.
 */
export class SecureTextFile implements Adapter<string | null> {
  private readonly tmp: string;
  constructor(readonly path: string) {
    this.tmp = join(dirname(path), `.${basename(path)}.tmp`);
  }

  async read(): Promise<string | null> {
    try {
      return await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async write(text: string | null): Promise<void> {
    if (text === null) throw new StoreError(`${this.path}: nothing to write`);
    const fh = await open(this.tmp, 'w', 0o600);
    try {
      await fh.chmod(0o600); // an older temp file may have had another mode
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(this.tmp, this.path);
    await fsyncDir(this.path);
  }
}

function checkSnapshot(text: string | null, path: string): StoreSnapshot {
  if (text === null) return { kind: 'supernet-admin-db', v: STORE_SNAPSHOT_VERSION, data: {} };
  let s: unknown;
  try {
    s = JSON.parse(text);
  } catch {
    throw new StoreError(`${path}: not valid JSON (corrupt database?)`);
  }
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

/** Parses journal text into changes; drops a torn last line, refuses damage elsewhere. */
function parseJournal(text: string, path: string): Array<[Collection, string, unknown]> {
  const lines = text.split('\n');
  const out: Array<[Collection, string, unknown]> = [];
  // The text after the last newline is an append that never completed.
  lines.pop();
  lines.forEach((line, i) => {
    let batch: unknown;
    try {
      batch = JSON.parse(line);
    } catch {
      throw new StoreError(`${path}: line ${i + 1} is not valid JSON (corrupt journal?)`);
    }
    if (!Array.isArray(batch)) throw new StoreError(`${path}: line ${i + 1} is not a batch`);
    for (const e of batch as unknown[]) {
      const ok =
        Array.isArray(e) &&
        (e.length === 2 || e.length === 3) &&
        (COLLECTIONS as readonly string[]).includes(e[0] as string) &&
        typeof e[1] === 'string';
      if (!ok) throw new StoreError(`${path}: line ${i + 1} holds a malformed change`);
      const entry = e as [Collection, string, unknown?];
      out.push([entry[0], entry[1], entry.length === 3 ? entry[2] : undefined]);
    }
  });
  return out;
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

/** {@link Store} backed by a lowdb snapshot and a journal. Open with {@link LowdbStore.open}. */
export class LowdbStore extends MapStore {
  private journalBytes = 0;
  private snapshotBytes = 0;
  /** Number of full snapshots written since open (tests and benchmarks look). */
  snapshots = 0;

  private constructor(
    private readonly db: Low<string | null>,
    private readonly journal: FileHandle,
    private readonly lockPath: string | null,
    private readonly compactMinBytes: number,
  ) {
    super();
  }

  /** Opens (or creates) the database at `path`, taking its lock unless `lock: false`. */
  static async open(
    path: string,
    opts: { lock?: boolean; compactMinBytes?: number } = {},
  ): Promise<LowdbStore> {
    const lockPath = opts.lock === false ? null : `${path}.lock`;
    if (lockPath) takeLock(lockPath);
    let journal: FileHandle | null = null;
    try {
      const db = new Low<string | null>(new SecureTextFile(path), null);
      await db.read();
      const snapshot = checkSnapshot(db.data, path);
      const journalPath = `${path}.journal`;
      let journalText = '';
      try {
        journalText = await readFile(journalPath, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      const changes = parseJournal(journalText, journalPath);
      journal = await open(journalPath, 'a', 0o600);
      await journal.chmod(0o600);
      await fsyncDir(journalPath);
      const store = new LowdbStore(
        db,
        journal,
        lockPath,
        opts.compactMinBytes ?? COMPACT_MIN_BYTES,
      );
      store.load(snapshot);
      for (const [c, k, v] of changes) store.replay(c, k, v);
      store.snapshotBytes = db.data?.length ?? 0;
      store.journalBytes = Buffer.byteLength(journalText);
      // Fold what was replayed (and drop a torn tail) before accepting writes.
      if (changes.length > 0 || journalText.length > 0 || db.data === null)
        await store.compact(store.serialize());
      return store;
    } catch (err) {
      await journal?.close().catch(() => undefined);
      if (lockPath) {
        heldLocks.delete(lockPath);
        await unlink(lockPath).catch(() => undefined);
      }
      throw err;
    }
  }

  private async compact(text: string): Promise<void> {
    this.db.data = text;
    await this.db.write();
    await this.journal.truncate(0);
    await this.journal.sync();
    this.snapshotBytes = Buffer.byteLength(text);
    this.journalBytes = 0;
    this.snapshots++;
  }

  protected persist(batch: PersistBatch): Promise<void> {
    if (this.journalBytes > this.compactMinBytes && this.journalBytes > this.snapshotBytes) {
      return this.compact(batch.serialize()); // serialised now: the state this batch ends in
    }
    const line =
      JSON.stringify(batch.changes.map(([c, k, v]) => (v === undefined ? [c, k] : [c, k, v]))) +
      '\n';
    return this.append(line);
  }

  private async append(line: string): Promise<void> {
    await this.journal.appendFile(line, 'utf8');
    await this.journal.datasync();
    this.journalBytes += Buffer.byteLength(line);
  }

  override async close(): Promise<void> {
    await super.close();
    await this.journal.close().catch(() => undefined);
    if (this.lockPath) {
      await unlink(this.lockPath).catch(() => undefined);
      heldLocks.delete(this.lockPath);
    }
  }
}

/**
 * Reads one collection of the database at `path` (snapshot + journal)
 * WITHOUT opening it: no lock, no writes, no compaction — for checks on a
 * live database or a backup copy (`supernet audit verify --db`). Entries
 * come in key order.
 */
export async function readCollection(
  path: string,
  col: Collection,
): Promise<Array<[string, unknown]>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new StoreError(`${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const snapshot = checkSnapshot(text, path);
  const m = new Map<string, unknown>(Object.entries(snapshot.data[col] ?? {}));
  let journalText = '';
  try {
    journalText = await readFile(`${path}.journal`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  for (const [c, k, v] of parseJournal(journalText, `${path}.journal`)) {
    if (c !== col) continue;
    if (v === undefined) m.delete(k);
    else m.set(k, v);
  }
  return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
