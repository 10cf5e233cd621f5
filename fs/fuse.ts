/**
 * Loads fuse-native (CommonJS) with the project's patch (fs/patches; design
 * brief §4): big writes, utimens with the right mtime and UTIME_OMIT,
 * fgetattr with its file handle, a numeric 0 timeout, and the calling
 * process's pid/uid/gid (fuse_get_context()) via {@link FuseHandle.context}.
 */
import { createRequire } from 'node:module';

/** The caller of the current FUSE request. */
export interface FuseCaller {
  pid: number;
  uid: number;
  gid: number;
  umask: number;
}

/** Node-style callback of fuse-native handlers. */
export type Cb<T = never> = (err: number, value?: T) => void;

export interface FuseHandle {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
  /** Valid synchronously at the start of a handler. */
  context(): FuseCaller | null;
}

export interface FuseModule {
  new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>): FuseHandle;
  SUPERNET_PATCH: number;
  unmount(mnt: string, cb: (err: Error | null) => void): void;
  [errno: string]: unknown;
}

let cached: FuseModule | null = null;

/** fuse-native, refusing an unpatched build (it would silently lose data, e.g. mtimes). */
export function loadFuse(): FuseModule {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const Fuse = require('fuse-native') as FuseModule;
  if (Fuse.SUPERNET_PATCH !== 1)
    throw new Error(
      'fuse-native is not built with fs/patches (run `npm install`, whose postinstall applies and builds it)',
    );
  cached = Fuse;
  return Fuse;
}

/** Negative errno for a name (fuse-native's table). */
export function errno(name: string): number {
  const v = loadFuse()[name];
  return typeof v === 'number' ? v : -5;
}
