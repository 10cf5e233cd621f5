/**
 * The root anchor: where the newest superblock version lives so that the
 * provider cannot roll the whole tree back (design brief §6). The provider
 * can replace every object with an older, perfectly valid copy; only a
 * version held outside its reach tells that it did. Standalone volumes keep it
 * in a local trusted state file; the admin service implements the same seam.
 */
import { readFile, writeFile, rename, open, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { VolumeError } from './errors.js';

/** Version and SHA-256 of the newest committed superblock. */
export interface AnchorState {
  version: bigint;
  hash: Buffer;
}

export interface RootAnchor {
  /** The newest recorded state, or null if the volume has never been anchored here. */
  read(): Promise<AnchorState | null>;
  /** Records a newer state (durably, before resolving). */
  write(s: AnchorState): Promise<void>;
}

/** In-memory anchor for unit tests. */
export class MemoryAnchor implements RootAnchor {
  state: AnchorState | null = null;
  async read(): Promise<AnchorState | null> {
    return this.state;
  }
  async write(s: AnchorState): Promise<void> {
    this.state = { version: s.version, hash: Buffer.from(s.hash) };
  }
}

export const ANCHOR_FILE_FORMAT = 'supernet-fs-anchor';
export const ANCHOR_FILE_VERSION = 1;

/** A JSON file on the client's own (trusted) disk. */
export class FileAnchor implements RootAnchor {
  constructor(
    readonly path: string,
    readonly volumeId: string,
  ) {}

  async read(): Promise<AnchorState | null> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    let j: {
      format?: unknown;
      version?: unknown;
      volume?: unknown;
      superblock?: unknown;
      hash?: unknown;
    };
    try {
      j = JSON.parse(text);
    } catch {
      throw new VolumeError('damaged', `anchor file ${this.path} is not JSON`);
    }
    if (j.format !== ANCHOR_FILE_FORMAT || j.version !== ANCHOR_FILE_VERSION)
      throw new VolumeError('damaged', `anchor file ${this.path}: unknown format`);
    if (j.volume !== this.volumeId)
      throw new VolumeError(
        'damaged',
        `anchor file ${this.path} belongs to volume ${String(j.volume)}`,
      );
    if (
      typeof j.superblock !== 'string' ||
      !/^[0-9]+$/.test(j.superblock) ||
      typeof j.hash !== 'string'
    )
      throw new VolumeError('damaged', `anchor file ${this.path}: bad fields`);
    const hash = Buffer.from(j.hash, 'hex');
    if (hash.length !== 32) throw new VolumeError('damaged', `anchor file ${this.path}: bad hash`);
    return { version: BigInt(j.superblock), hash };
  }

  async write(s: AnchorState): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp`;
    const body = JSON.stringify({
      format: ANCHOR_FILE_FORMAT,
      version: ANCHOR_FILE_VERSION,
      volume: this.volumeId,
      superblock: s.version.toString(),
      hash: s.hash.toString('hex'),
    });
    await writeFile(tmp, body + '\n', { mode: 0o600 });
    const fh = await open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path);
    const d = await open(dirname(this.path), 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }
}
