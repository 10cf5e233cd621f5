/**
 * The configfs FUSE mount (paper §4.7: "/etc/resolv.conf → /proc/self/
 * resolv.conf"; docs/dns.md §configfs): one read-only directory per host,
 * e.g. /run/supernet/configfs, holding resolv.conf, hosts, hostname,
 * nsswitch.conf and networks, whose bytes depend on the calling process.
 *
 * The kernel must never answer one caller from what another caller read:
 * - `direct_io`: reads bypass the page cache, which is per inode, not per
 *   caller (two nodes reading at the same moment would otherwise share it).
 * - `attr_timeout=0`: every stat(2) reaches us, so size and mtime are the
 *   caller's (glibc re-reads resolv.conf when they change).
 * - the content is snapshotted at open(2), so a file that changes while a
 *   program reads it in pieces is never torn.
 * fuse-native has no option for direct_io; its `fsname` is pasted into `-o`
 * unchecked (design brief §4), which is how the option reaches libfuse.
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../admin/logger.js';
import type { Clock } from '../admin/clock.js';
import { loadFuse, type Cb, type FuseHandle } from '../fs/fuse.js';
import {
  ConfigContent,
  ERRNO,
  FS_SUBTYPE,
  configfsSource,
  hostEtc,
  type FileView,
} from './content.js';
import { makeDev, mountOf, readMountInfo } from './mountinfo.js';
import { placeholderIds, writePlaceholders, type PlaceholderIds } from './placeholder.js';

export { FS_SUBTYPE };
import type { NsProbe } from './caller.js';
import { CONFIG_FILES, isConfigFile, type NodeSpec } from './files.js';

export const DEFAULT_MOUNTPOINT = '/run/supernet/configfs';

const O_ACCMODE = 3;
const O_TRUNC = 0o1000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const W_OK = 2;
/** Open files per mount; each holds one small snapshot. */
const DEFAULT_MAX_HANDLES = 65536;
const EROFS = 30;
const ENFILE = 23;
const EBADF = 9;
/** callerPid() when the request has no usable caller: no task has this pid. */
const NO_CALLER = -1;

export interface ConfigFsOptions {
  mountpoint: string;
  logger: Logger;
  /** The host's configuration directory (default /etc). */
  hostEtcDir?: string;
  probe?: NsProbe;
  clock?: Clock;
  maxHandles?: number;
}

interface Stat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  mtime: Date;
  atime: Date;
  ctime: Date;
}

function fileStat(v: FileView): Stat {
  const t = new Date(v.mtime);
  return {
    mode: S_IFREG | 0o444,
    uid: 0,
    gid: 0,
    size: v.data.length,
    nlink: 1,
    mtime: t,
    atime: t,
    ctime: t,
  };
}

const execFileP = promisify(execFile);
async function run(cmd: string, args: string[]): Promise<void> {
  try {
    await execFileP(cmd, args, { timeout: 10_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr || e.message).trim()}`, {
      cause: err,
    });
  }
}

/** What stat(2) shows of a file the caller may not read. */
const PLACEHOLDER: FileView = { data: Buffer.alloc(0), mtime: 0 };

/** A mounted configfs. Node changes take effect at the next open/stat; no remount. */
export class ConfigFs {
  readonly content: ConfigContent;
  /** FUSE-level counters (content counters are in `content.stats`). */
  readonly stats = { requests: 0, opens: 0, denied: 0, handles: 0 };
  private readonly logger: Logger;
  private readonly mountpoint: string;
  private readonly maxHandles: number;
  private readonly handles = new Map<number, FileView>();
  private nextHandle = 1;
  private fuse: FuseHandle | null = null;
  private unmounting = false;
  private dev: number | null = null;
  private placeholderIds: PlaceholderIds | null = null;
  private readonly mountedAt = new Date();

  constructor(opts: ConfigFsOptions) {
    this.logger = opts.logger;
    this.mountpoint = resolve(opts.mountpoint);
    this.maxHandles = opts.maxHandles ?? DEFAULT_MAX_HANDLES;
    this.content = new ConfigContent({
      logger: opts.logger,
      host: hostEtc(opts.hostEtcDir ?? '/etc'),
      probe: opts.probe,
      clock: opts.clock,
    });
  }

  setNode(key: string, netns: string, spec: NodeSpec): void {
    this.content.setNode(key, netns, spec);
  }
  breakNode(key: string): void {
    this.content.breakNode(key);
  }
  removeNode(key: string): void {
    this.content.removeNode(key);
  }

  /** Where binds of the fail-closed placeholders can be recognised (null before mount). */
  get placeholders(): PlaceholderIds | null {
    return this.placeholderIds;
  }

  /** The device number of the live mount (null before mount). */
  get device(): number | null {
    return this.dev;
  }

  /**
   * Mounts. A stale mount left at the mount point by a killed predecessor
   * ("Transport endpoint is not connected") is lazily unmounted first.
   */
  async mount(): Promise<void> {
    await this.clearStale();
    await this.ensureShared();
    // hostText never throws (null when the host has no readable file).
    writePlaceholders(this.mountpoint, this.content.hostText('nsswitch.conf'));
    this.placeholderIds = placeholderIds(
      readMountInfo('self'),
      this.mountpoint,
      `fuse.${FS_SUBTYPE}`,
    );
    const Fuse = loadFuse();
    const fuse = new Fuse(this.mountpoint, this.ops(), {
      // See the file comment: direct_io travels inside fsname; nonempty
      // because the placeholders live in the mount point directory.
      // The source names this instance (configfsSource): repairs match on it.
      fsname: `${configfsSource(this.mountpoint)},direct_io,nonempty`,
      subtype: FS_SUBTYPE,
      allowOther: true,
      autoUnmount: true,
      force: true,
      mkdir: true,
      attrTimeout: '0',
      entryTimeout: '1',
    });
    await new Promise<void>((resolve, reject) =>
      fuse.mount((err) => (err ? reject(err) : resolve())),
    );
    this.fuse = fuse;
    // Never stat(2) our own mount from this thread (it would wait for itself).
    const m = mountOf(readMountInfo('self'), this.mountpoint);
    this.dev =
      m !== null && m.mountPoint === this.mountpoint && m.fstype === `fuse.${FS_SUBTYPE}`
        ? makeDev(m.major, m.minor)
        : null;
    this.logger.info('configfs: mounted', { mountpoint: this.mountpoint });
  }

  /**
   * A configfs mount already at the mount point is either a dead one (its
   * process was killed without auto-unmount: stat fails with ENOTCONN),
   * which is lazily unmounted, or a live one: another configfs serves this
   * host, and starting a second is refused.
   */
  private async clearStale(): Promise<void> {
    const fuseHere = readMountInfo('self').some(
      (e) => e.mountPoint === this.mountpoint && e.fstype === `fuse.${FS_SUBTYPE}`,
    );
    if (!fuseHere) return;
    // Another process serves it, if anyone: an async stat cannot deadlock us.
    const probe = stat(this.mountpoint).then(
      () => 'live',
      (err: NodeJS.ErrnoException) => (err.code === 'ENOTCONN' ? 'dead' : 'live'),
    );
    const timeout = new Promise<string>((r) => setTimeout(() => r('hung'), 2000).unref());
    const state = await Promise.race([probe, timeout]);
    if (state !== 'dead') {
      throw new Error(`a configfs is already mounted at ${this.mountpoint} (${state})`);
    }
    await run('fusermount', ['-u', '-z', this.mountpoint]);
    this.logger.warn('configfs: removed a dead configfs mount', { mountpoint: this.mountpoint });
  }

  /**
   * Makes the mount point's PARENT directory a shared mount of its own (a
   * bind of the directory onto itself, then `--make-shared`), unless the
   * mount it is on already is shared. Node mount namespaces copied from the
   * host's later then receive every configfs mount and unmount made here,
   * also after a restart, whatever the propagation of / is (private on
   * hosts without systemd). The parent, not the mount point itself: on
   * unmount fuse-native detaches the mount point twice (fusermount, then
   * libfuse), which would take a bind at the mount point with it and cut
   * existing nodes off from the next configfs.
   */
  private async ensureShared(): Promise<void> {
    const parent = dirname(this.mountpoint);
    try {
      mkdirSync(this.mountpoint, { recursive: true, mode: 0o755 });
    } catch {
      // exists (possibly as a dead mount, dealt with by clearStale)
    }
    const under = mountOf(
      readMountInfo('self').filter((e) => e.fstype !== `fuse.${FS_SUBTYPE}`),
      parent,
    );
    if (under?.shared) return;
    if (under?.mountPoint !== parent) await run('mount', ['--bind', parent, parent]);
    await run('mount', ['--make-shared', parent]);
    this.logger.info("configfs: made the mount point's parent a shared mount", { parent });
  }

  async unmount(): Promise<void> {
    const fuse = this.fuse;
    if (!fuse || this.unmounting) return;
    // The handle stays set until the session is closed: requests keep
    // arriving while it closes (from nodes' bind mounts, which outlive the
    // lazy unmount of the mount point), and each must still be attributed
    // to its caller. Dropping it first made them look like pid 0, which was
    // served the HOST's files (the agent kill -9 leak, docs/dns.md §Who is
    // calling).
    this.unmounting = true;
    this.dev = null;
    try {
      await new Promise<void>((resolve, reject) =>
        fuse.unmount((err) => (err ? reject(err) : resolve())),
      );
    } finally {
      this.fuse = null;
      this.unmounting = false;
    }
    this.handles.clear();
    this.stats.handles = 0;
    this.logger.info('configfs: unmounted', { mountpoint: this.mountpoint });
  }

  /**
   * The pid of the current request's caller; must be called synchronously in
   * a handler. Without a request context (no session) the answer is
   * {@link NO_CALLER}, which the locator reports as unknown (EACCES): never
   * 0, which used to stand for the host.
   */
  private callerPid(): number {
    const pid = this.fuse?.context()?.pid;
    return typeof pid === 'number' && Number.isInteger(pid) && pid > 0 ? pid : NO_CALLER;
  }

  /** File `path` as the current caller sees it: a view, or a negative errno. */
  private lookup(path: string): FileView | number {
    const name = path.slice(1);
    if (path[0] !== '/' || !isConfigFile(name)) return -ERRNO.ENOENT;
    const v = this.content.lookup(this.callerPid(), name);
    if (typeof v === 'number') {
      this.stats.denied++;
      return -v;
    }
    return v ?? -ERRNO.ENOENT;
  }

  /** Permission bits of `path` as getattr reports them, or a negative errno. */
  private modeOf(path: string): number {
    if (path === '/') return 0o555;
    const v = this.lookup(path);
    if (typeof v !== 'number' || v === -ERRNO.EIO || v === -ERRNO.EACCES) return 0o444;
    return v;
  }

  private ops(): Record<string, unknown> {
    return {
      getattr: (path: string, cb: Cb<Stat>) => {
        this.stats.requests++;
        if (path === '/') {
          const t = this.mountedAt;
          return cb(0, {
            mode: S_IFDIR | 0o555,
            uid: 0,
            gid: 0,
            size: 0,
            nlink: 2,
            mtime: t,
            atime: t,
            ctime: t,
          });
        }
        const v = this.lookup(path);
        if (typeof v !== 'number') return cb(0, fileStat(v));
        // A denied or broken file still exists (empty, unreadable): if stat
        // failed, `ip netns exec` would skip its bind mount and leave the
        // node reading the HOST's /etc file. Open and read fail instead.
        if (v === -ERRNO.EIO || v === -ERRNO.EACCES) return cb(0, fileStat(PLACEHOLDER));
        return cb(v);
      },
      fgetattr: (path: string, fd: number, cb: Cb<Stat>) => {
        this.stats.requests++;
        const v = this.handles.get(fd);
        if (v === undefined) return path === '/' ? cb(-ERRNO.ENOENT) : cb(-EBADF);
        return cb(0, fileStat(v));
      },
      readdir: (path: string, cb: Cb<string[]>) => {
        this.stats.requests++;
        if (path !== '/') return cb(-ERRNO.ENOENT);
        return cb(0, [...CONFIG_FILES]);
      },
      access: (path: string, mode: number, cb: Cb) => {
        this.stats.requests++;
        if (path === '/') return cb(mode & W_OK ? -EROFS : 0);
        const v = this.lookup(path);
        if (typeof v === 'number') return cb(v);
        return cb(mode & W_OK ? -EROFS : 0);
      },
      open: (path: string, flags: number, cb: Cb<number>) => {
        this.stats.requests++;
        if ((flags & O_ACCMODE) !== 0 || (flags & O_TRUNC) !== 0) return cb(-EROFS);
        const v = this.lookup(path);
        if (typeof v === 'number') return cb(v);
        if (this.handles.size >= this.maxHandles) {
          this.logger.warn('configfs: too many open files', { max: this.maxHandles });
          return cb(-ENFILE);
        }
        let fd = this.nextHandle;
        while (this.handles.has(fd)) fd = fd >= 0x7fffffff ? 1 : fd + 1;
        this.nextHandle = fd >= 0x7fffffff ? 1 : fd + 1;
        this.handles.set(fd, v);
        this.stats.opens++;
        this.stats.handles = this.handles.size;
        return cb(0, fd);
      },
      read: (_path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb<number>) => {
        this.stats.requests++;
        const v = this.handles.get(fd);
        if (v === undefined) return cb(-EBADF);
        if (pos >= v.data.length) return cb(0);
        const n = v.data.copy(buf, 0, pos, Math.min(v.data.length, pos + len));
        return cb(n);
      },
      release: (_path: string, fd: number, cb: Cb) => {
        this.stats.requests++;
        this.handles.delete(fd);
        this.stats.handles = this.handles.size;
        return cb(0);
      },
      // Nothing can change, but asking for what already is succeeds (as
      // chmod -R a+rX over a tree holding the mount expects); anything else
      // is EROFS. Without these handlers FUSE answers ENOSYS.
      chmod: (path: string, mode: number, cb: Cb) => {
        this.stats.requests++;
        const have = this.modeOf(path);
        if (have < 0) return cb(have);
        return cb((mode & 0o7777) === have ? 0 : -EROFS);
      },
      chown: (path: string, uid: number, gid: number, cb: Cb) => {
        this.stats.requests++;
        const have = this.modeOf(path);
        if (have < 0) return cb(have);
        // -1 (as unsigned 32 bits too) means "leave as is".
        const keep = (id: number): boolean => id === 0 || id === -1 || id === 0xffffffff;
        return cb(keep(uid) && keep(gid) ? 0 : -EROFS);
      },
      statfs: (_path: string, cb: Cb<Record<string, number>>) => {
        this.stats.requests++;
        return cb(0, {
          bsize: 4096,
          frsize: 4096,
          blocks: 0,
          bfree: 0,
          bavail: 0,
          files: CONFIG_FILES.length,
          ffree: 0,
          favail: 0,
          fsid: 0,
          flag: 1, // ST_RDONLY
          namemax: 255,
        });
      },
    };
  }
}
