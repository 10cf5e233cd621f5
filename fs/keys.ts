/**
 * Volume keys. A volume has a sequence of epochs, each with its own random
 * 256-bit key; objects name the epoch they are sealed under. `rekey` adds an
 * epoch, re-encrypts every object under it and then drops the old key, so a
 * former holder of an old key opens nothing the provider still has (paper
 * §3.1: ex-members must be unable to decrypt). Standalone volumes keep the
 * keyring in a key file; later the admin service distributes it to the
 * members of the volume's storage key group (design brief §5).
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile, rename, open } from 'node:fs/promises';
import { KEY_LEN } from './format.js';
import { VolumeError } from './errors.js';

export const KEY_FILE_FORMAT = 'supernet-fs-key';
export const KEY_FILE_VERSION = 1;

/** The keys of one volume, by epoch. */
export class Keyring {
  readonly keys = new Map<number, Buffer>();
  constructor(readonly volumeId: Buffer) {}

  /** A keyring with one fresh key at `epoch`. */
  static generate(volumeId: Buffer, epoch = 1): Keyring {
    const k = new Keyring(volumeId);
    k.keys.set(epoch, randomBytes(KEY_LEN));
    return k;
  }

  /** The newest epoch. */
  get current(): number {
    return Math.max(...this.keys.keys());
  }

  key(epoch: number): Buffer | null {
    return this.keys.get(epoch) ?? null;
  }

  /** Adds a fresh key for the next epoch and returns that epoch. */
  addEpoch(): number {
    const e = this.current + 1;
    this.keys.set(e, randomBytes(KEY_LEN));
    return e;
  }

  /** Forgets every key older than `epoch`. */
  dropBefore(epoch: number): void {
    for (const e of [...this.keys.keys()]) if (e < epoch) this.keys.delete(e);
  }

  toJSON(): unknown {
    return {
      format: KEY_FILE_FORMAT,
      version: KEY_FILE_VERSION,
      volume: this.volumeId.toString('hex'),
      keys: [...this.keys]
        .sort((a, b) => a[0] - b[0])
        .map(([epoch, key]) => ({ epoch, key: key.toString('base64url') })),
    };
  }

  static fromJSON(j: unknown, what = 'key file'): Keyring {
    const o = j as { format?: unknown; version?: unknown; volume?: unknown; keys?: unknown };
    if (!o || o.format !== KEY_FILE_FORMAT)
      throw new VolumeError('wrong-key', `${what} is not a Supernet fs key file`);
    if (o.version !== KEY_FILE_VERSION)
      throw new VolumeError('unsupported', `${what}: key file version ${String(o.version)}`);
    if (typeof o.volume !== 'string' || !/^[0-9a-f]{32}$/.test(o.volume))
      throw new VolumeError('wrong-key', `${what}: bad volume id`);
    if (!Array.isArray(o.keys) || o.keys.length === 0)
      throw new VolumeError('wrong-key', `${what}: no keys`);
    const k = new Keyring(Buffer.from(o.volume, 'hex'));
    for (const e of o.keys as Array<{ epoch?: unknown; key?: unknown }>) {
      if (!Number.isInteger(e.epoch) || (e.epoch as number) < 1 || (e.epoch as number) > 0xffffffff)
        throw new VolumeError('wrong-key', `${what}: bad epoch`);
      const key = typeof e.key === 'string' ? Buffer.from(e.key, 'base64url') : Buffer.alloc(0);
      if (key.length !== KEY_LEN || key.every((x) => x === 0))
        throw new VolumeError(
          'wrong-key',
          `${what}: epoch ${String(e.epoch)} key is not ${KEY_LEN} bytes`,
        );
      k.keys.set(e.epoch as number, key);
    }
    return k;
  }
}

/** Reads a key file. */
export async function readKeyFile(path: string): Promise<Keyring> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new VolumeError('wrong-key', `cannot read key file ${path}: ${(e as Error).message}`);
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw new VolumeError('wrong-key', `key file ${path} is not JSON`);
  }
  return Keyring.fromJSON(j, `key file ${path}`);
}

/** Writes a key file atomically and durably, readable by its owner only. */
export async function writeKeyFile(path: string, k: Keyring): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, JSON.stringify(k.toJSON(), null, 2) + '\n', { mode: 0o600 });
  const fh = await open(tmp, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}
