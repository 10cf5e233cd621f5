/**
 * The filesystem's native AEAD (aead.c and fileio.c in this folder, built with
 * `node-gyp rebuild -C fs/native` against this machine's Node headers into
 * `fs/native/build/Release/supernet_fs.node`). It seals and opens objects
 * into the caller's buffers; fs/format.ts uses it when it is built and falls
 * back to node:crypto (same bytes, slower: an allocation per update) when it
 * is not, or when `SUPERNET_FS_NATIVE=0`. fs/store.ts uses its whole-object
 * file I/O (one threadpool job per object) the same way.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** seal's arguments: see {@link AeadAddon.seal}. */
export type SealArgs = [
  epochKey: Buffer,
  id: Buffer,
  info: Buffer,
  nonce: Buffer,
  aad: Buffer,
  payload: Buffer,
  pad: number,
  tail: Buffer,
  out: Buffer,
  off: number,
];

/** open's arguments: see {@link AeadAddon.open}. */
export type OpenArgs = [
  epochKey: Buffer,
  id: Buffer,
  info: Buffer,
  nonce: Buffer,
  aad: Buffer,
  ct: Buffer,
  tag: Buffer,
  out: Buffer,
  tail: Buffer,
];

/** What aead.c exports. */
export interface AeadAddon {
  version: number;
  /**
   * Seals `payload ‖ pad zero bytes ‖ tail` with AES-256-GCM under
   * HKDF-SHA256(ikm = epochKey, salt = id, info) into `out` at `off`,
   * followed by the 16-byte tag.
   */
  seal(...args: SealArgs): void;
  /**
   * Decrypts `ct` into `out` (its first `out.length` bytes) and `tail` (the
   * rest) and verifies `tag`; false (and both wiped) when it does not verify.
   */
  open(...args: OpenArgs): boolean;
  /**
   * {@link seal} as a libuv threadpool job; `cb(true)` once `out` holds the
   * object. The small arguments are copied at the call; `payload` and `out`
   * must stay untouched until the callback.
   */
  sealAsync(...args: [...SealArgs, cb: (ok: boolean) => void]): void;
  /**
   * {@link open} as a libuv threadpool job; `cb(verified)`. `ct`, `out` and
   * `tail` must stay untouched until the callback.
   */
  openAsync(...args: [...OpenArgs, cb: (verified: boolean) => void]): void;
  /**
   * On the libuv threadpool, as one job: creates `path` (O_EXCL, mode 0600),
   * writes all of `buf`, fdatasyncs when `durable`, closes. `cb(errno, n)`:
   * errno 0 on success.
   */
  putFile(
    path: string,
    buf: Buffer,
    durable: boolean,
    cb: (errno: number, written: number) => void,
  ): void;
  /**
   * On the libuv threadpool, as one job: opens `path`, reads into `buf` until
   * it is full or the file ends, closes. `cb(errno, n)`.
   */
  getFile(path: string, buf: Buffer, cb: (errno: number, read: number) => void): void;
  /**
   * {@link seal} then {@link putFile} of `out[0, size)` (not durable unless
   * asked), as one threadpool job. errno EIO when the seal failed.
   */
  sealPutFile(
    ...args: [
      path: string,
      durable: boolean,
      ...SealArgs,
      size: number,
      cb: (errno: number, written: number) => void,
    ]
  ): void;
  /**
   * {@link getFile} then, when the object read can be one, {@link open} of
   * it into `out`/`tail`, as one threadpool job (the AAD is the object's
   * first headerLen bytes followed by `aadRest`; fileio.c has the layout).
   * `verified` is false when it did not authenticate (or was not opened).
   */
  getOpenFile(
    path: string,
    buf: Buffer,
    epochKey: Buffer,
    id: Buffer,
    info: Buffer,
    aadRest: Buffer,
    headerLen: number,
    nonceOff: number,
    trailerLen: number,
    out: Buffer,
    tail: Buffer,
    cb: (errno: number, read: number, verified: boolean) => void,
  ): void;
}

const ADDON = 'supernet_fs.node';
const ADDON_VERSION = 4;

/**
 * Finds an addon of this folder's binding.gyp (`file`, e.g. supernet_fs.node)
 * above this module (dist/fs/native → package root).
 */
export function locateAddon(file: string): string | null {
  const rel = join('fs', 'native', 'build', 'Release', file);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, rel);
    if (existsSync(p)) return p;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return null;
}

let loaded: AeadAddon | null | undefined;

/** The addon, or null when it is not built (or disabled). Loaded once. */
export function aeadAddon(): AeadAddon | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env.SUPERNET_FS_NATIVE === '0') return null;
  const path = locateAddon(ADDON);
  if (!path) return null;
  try {
    const m = createRequire(import.meta.url)(path) as AeadAddon;
    if (m.version === ADDON_VERSION) loaded = m;
  } catch {
    // A stale or foreign build: node:crypto serves instead.
  }
  return loaded;
}
