/**
 * The storage backend seam. A provider stores named blobs; the filesystem
 * never asks it for anything but these few calls, so a local directory, a
 * kernel-mounted NFS directory and (later) a userspace NFSv3 client are
 * interchangeable. Names are 32 hex digits (objects) or `volume` /
 * `superblock`.
 */
import { mkdir, open, readdir, readFile, rename, rm, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** Capacity numbers of the provider, as statfs(2) reports them. */
export interface StoreStat {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
}

export interface ObjectStore {
  /** The blob `name`, or null when it does not exist. */
  get(name: string): Promise<Buffer | null>;
  /**
   * Stores `data` under `name` so that readers see either nothing (or the
   * previous blob) or all of it, never a part. With `durable`, it is on
   * stable storage when the promise resolves; otherwise only after {@link sync}.
   */
  put(name: string, data: Buffer, durable?: boolean): Promise<void>;
  /** Makes earlier non-durable puts of `names` durable. */
  sync(names: string[]): Promise<void>;
  /** Removes `name`; removing a missing blob is not an error. */
  delete(name: string): Promise<void>;
  /** All object names (32 hex digits), not `volume`/`superblock`. */
  list(): Promise<string[]>;
  /** Removes leftovers of interrupted puts. */
  sweepTemp(): Promise<number>;
  statfs(): Promise<StoreStat>;
}

const OBJ_NAME = /^[0-9a-f]{32}$/;
/** Above this many objects per commit, {@link DirStore.sync} uses one syncfs. */
const SYNCFS_ABOVE = 16;
const execp = promisify(execFile);
const SPECIAL = new Set(['volume', 'superblock']);

function checkName(name: string): void {
  if (!OBJ_NAME.test(name) && !SPECIAL.has(name))
    throw new Error(`invalid object name ${JSON.stringify(name)}`);
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function inParallel<T>(
  items: T[],
  limit: number,
  fn: (x: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * A directory on a local or kernel-mounted filesystem:
 * `DIR/volume`, `DIR/superblock`, `DIR/objects/<id>`. Puts write a temporary
 * file and rename it into place (atomic on POSIX filesystems and NFS).
 */
export class DirStore implements ObjectStore {
  readonly objects: string;
  constructor(readonly root: string) {
    this.objects = join(root, 'objects');
  }

  /** Creates the folders of a new store. */
  async init(): Promise<void> {
    await mkdir(this.objects, { recursive: true, mode: 0o700 });
  }

  private path(name: string): string {
    return SPECIAL.has(name) ? join(this.root, name) : join(this.objects, name);
  }

  async get(name: string): Promise<Buffer | null> {
    checkName(name);
    try {
      return await readFile(this.path(name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async put(name: string, data: Buffer, durable = false): Promise<void> {
    checkName(name);
    const final = this.path(name);
    const dir = SPECIAL.has(name) ? this.root : this.objects;
    const tmp = join(dir, `.tmp-${name}-${randomBytes(6).toString('hex')}`);
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.write(data, 0, data.length, 0);
      if (durable) await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, final);
    if (durable) await this.syncDir(dir);
  }

  private async syncDir(dir: string): Promise<void> {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  async sync(names: string[]): Promise<void> {
    if (names.length > SYNCFS_ABOVE) {
      // Many objects: one syncfs(2) of the backing filesystem (sync -f) costs
      // far less than an fdatasync per object.
      await execp('sync', ['-f', this.objects]);
      await this.syncDir(this.objects);
      return;
    }
    await inParallel(names, 16, async (name) => {
      let fh;
      try {
        fh = await open(this.path(name), 'r');
      } catch (e) {
        // Superseded and deleted before the commit: nothing to make durable.
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw e;
      }
      try {
        await fh.datasync();
      } finally {
        await fh.close();
      }
    });
    if (names.length) await this.syncDir(this.objects);
  }

  async delete(name: string): Promise<void> {
    checkName(name);
    try {
      await unlink(this.path(name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  async list(): Promise<string[]> {
    return (await readdir(this.objects)).filter((n) => OBJ_NAME.test(n));
  }

  async sweepTemp(): Promise<number> {
    let n = 0;
    for (const dir of [this.root, this.objects]) {
      for (const f of await readdir(dir)) {
        if (f.startsWith('.tmp-')) {
          await rm(join(dir, f), { force: true });
          n++;
        }
      }
    }
    return n;
  }

  async statfs(): Promise<StoreStat> {
    const s = await statfs(this.root);
    return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail };
  }
}

/** In-memory store for unit tests of one module. */
export class MemStore implements ObjectStore {
  readonly blobs = new Map<string, Buffer>();
  async get(name: string): Promise<Buffer | null> {
    checkName(name);
    const b = this.blobs.get(name);
    return b ? Buffer.from(b) : null;
  }
  async put(name: string, data: Buffer): Promise<void> {
    checkName(name);
    this.blobs.set(name, Buffer.from(data));
  }
  async sync(): Promise<void> {}
  async delete(name: string): Promise<void> {
    this.blobs.delete(name);
  }
  async list(): Promise<string[]> {
    return [...this.blobs.keys()].filter((n) => OBJ_NAME.test(n));
  }
  async sweepTemp(): Promise<number> {
    return 0;
  }
  async statfs(): Promise<StoreStat> {
    return { bsize: 4096, blocks: 1 << 20, bfree: 1 << 19, bavail: 1 << 19 };
  }
}
